#!/usr/bin/env python3
"""Writes a carrier-style rate deck of N rows (default 1,000,000) to stdout:
prefix;description;rate;increment. Prefixes are E.164-like: a country code, then area
and operator digits, 3 to 11 digits long, all distinct. Deterministic (seeded)."""
import random
import sys

n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
rng = random.Random(20261126)
countries = ["1", "7", "20", "27", "30", "31", "33", "34", "36", "39", "40", "41", "44", "45", "46", "47", "48",
             "49", "51", "52", "54", "55", "56", "57", "58", "60", "61", "62", "63", "64", "65", "66", "81", "82",
             "84", "86", "90", "91", "92", "93", "94", "95", "98", "212", "213", "216", "234", "254", "255", "256",
             "351", "352", "353", "354", "358", "359", "370", "371", "372", "380", "381", "385", "386", "420",
             "421", "852", "853", "855", "856", "880", "886", "960", "961", "962", "963", "964", "965", "966",
             "971", "972", "973", "974", "975", "976", "977", "992", "993", "994", "995", "996", "998"]
kinds = ["Fixed", "Mobile", "Premium", "Special"]
seen = set()
out = sys.stdout
out.write("prefix;description;rate;increment\n")
increments = ["60/60", "30/6", "1/1"]
while len(seen) < n:
    cc = rng.choice(countries)
    prefix = cc + "".join(rng.choice("0123456789") for _ in range(rng.randint(2, 11 - len(cc))))
    if prefix in seen:
        continue
    seen.add(prefix)
    out.write(f"{prefix};{cc} {rng.choice(kinds)};{rng.randint(1, 50000) / 100000:.5f};{rng.choice(increments)}\n")
