#!/usr/bin/env python3
"""The outcome runs of tests/real_asterisk/outcomes.sh, read and compared.

  runs.py last OUT                       the last callback state in a `callbackctl --json call`
                                         output: "<id> <outcome, else state>"
  runs.py keep OUT STATUS CASE HEARD     one case as JSON on stdout: its last state, its CDR rows
                                         (STATUS: `callbackctl --json status ID`), the prompts heard
  runs.py compare DIR_A DIR_B            two --keep folders (e.g. --engine ami and --engine ari),
                                         case by case: state, outcome, each leg's cause and billsec,
                                         cost, the CDR rows column by column, the prompts heard.
                                         Columns that name one run's own channels and times
                                         (channel, dstchannel, calldate, callback_id) are compared
                                         by shape only, uniqueid (each engine's own ids) by being
                                         set or not; duration and billsec are allowed
                                         +-1 s (two calls never last to the millisecond alike).
                                         Exit 1 if any case differs.
"""
import json
import os
import re
import sys


def last_state(path):
    last = {}
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            try:
                value = json.loads(line)
            except ValueError:
                continue
            if isinstance(value, dict) and "state" in value:
                last = value
    return last


OWN = {"channel", "dstchannel", "calldate", "callback_id"}
TIMES = {"duration", "billsec"}


def shape(value):
    """What an own value looks like: digits and hex runs replaced, so names compare by form."""
    return re.sub(r"[0-9a-f]{6,}|[0-9]+", "N", str(value)) if value else ""


def differences(a, b):
    out = []
    fa, fb = a["final"], b["final"]
    for key in ("state", "outcome"):
        if fa.get(key) != fb.get(key):
            out.append(f"{key}: {fa.get(key)} / {fb.get(key)}")
    for leg in ("a", "b"):
        la, lb = fa.get("legs", {}).get(leg, {}), fb.get("legs", {}).get(leg, {})
        for key in ("state", "cause", "billsec"):
            va, vb = la.get(key), lb.get(key)
            if key == "billsec" and isinstance(va, int) and isinstance(vb, int) and abs(va - vb) <= 1:
                continue
            if va != vb:
                out.append(f"leg {leg} {key}: {va} / {vb}")
    if (fa.get("cost") or {}).get("amount") != (fb.get("cost") or {}).get("amount"):
        out.append(f"cost: {fa.get('cost')} / {fb.get('cost')}")
    ca = {c["leg"]: c for c in a["cdrs"]}
    cb = {c["leg"]: c for c in b["cdrs"]}
    if sorted(ca) != sorted(cb):
        out.append(f"CDR legs: {sorted(ca)} / {sorted(cb)}")
    for leg in sorted(set(ca) & set(cb)):
        for column in sorted(set(ca[leg]) | set(cb[leg])):
            va, vb = ca[leg].get(column), cb[leg].get(column)
            if column in OWN:
                va, vb = shape(va), shape(vb)
            elif column == "uniqueid":
                va, vb = bool(va), bool(vb)
            elif column in TIMES and isinstance(va, int) and isinstance(vb, int) and abs(va - vb) <= 1:
                continue
            if va != vb:
                out.append(f"CDR {leg} {column}: {va!r} / {vb!r}")
    if a["heard"] != b["heard"]:
        out.append(f"heard: {' '.join(a['heard']) or 'nothing'} / {' '.join(b['heard']) or 'nothing'}")
    return out


def compare(dir_a, dir_b):
    names = sorted(n for n in set(os.listdir(dir_a)) | set(os.listdir(dir_b)) if n.endswith(".json"))
    bad = 0
    for name in names:
        try:
            with open(os.path.join(dir_a, name)) as fa, open(os.path.join(dir_b, name)) as fb:
                a, b = json.load(fa), json.load(fb)
        except FileNotFoundError:
            print(f"{name}: only in one run")
            bad += 1
            continue
        diff = differences(a, b)
        print(f"{'same ' if not diff else 'DIFF '} {a['case']}")
        for d in diff:
            print(f"        {d}")
        bad += bool(diff)
    print(f"{len(names) - bad} of {len(names)} cases the same")
    return 1 if bad else 0


def main(argv):
    if len(argv) == 3 and argv[1] == "last":
        last = last_state(argv[2])
        print(last.get("id", "-"), last.get("outcome") or last.get("state") or "-")
        return 0
    if len(argv) == 6 and argv[1] == "keep":
        print(json.dumps({"case": argv[4], "final": last_state(argv[2]), "cdrs": json.loads(argv[3])["cdrs"],
                          "heard": argv[5].split()}))
        return 0
    if len(argv) == 4 and argv[1] == "compare":
        return compare(argv[2], argv[3])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
