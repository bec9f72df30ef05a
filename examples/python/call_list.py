#!/usr/bin/env python3
"""Runs a list of callbacks from a CSV file of (caller, callee) rows, a few at a time, and
shows the progress. A row that is wrong is reported with its line and skipped.

    python3 call_list.py --config callback.json calls.csv --campaign free --parallel 10

calls.csv:
    caller,callee
    1001,2001
    1002,3001
"""

import argparse
import csv
import sys
import threading

import callback


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("csv_file")
    parser.add_argument("--config", required=True)
    parser.add_argument("--plugin-dir", action="append", default=[])
    payer = parser.add_mutually_exclusive_group(required=True)
    payer.add_argument("--campaign")
    payer.add_argument("--account")
    parser.add_argument("--pin")
    parser.add_argument("--parallel", type=int, default=10, help="callbacks at once")
    args = parser.parse_args()

    with open(args.csv_file, newline="") as f:
        rows = [(reader.line_num, row) for reader in [csv.DictReader(f)] for row in reader]
    slots = threading.Semaphore(args.parallel)
    lock = threading.Lock()
    done, outcomes, handles = [0], {}, []

    def ended(line, row):
        def on_event(cb):  # on the service's thread
            if not cb.final:
                return
            with lock:
                done[0] += 1
                outcomes[cb.outcome] = outcomes.get(cb.outcome, 0) + 1
                cost = f", cost {cb.cost}" if cb.cost is not None else ""
                print(f"[{done[0]}/{len(rows)}] line {line}: {row['caller']} -> {row['callee']}: {cb.outcome}{cost}",
                      flush=True)
            slots.release()
        return on_event

    with callback.Service(args.config, plugin_dirs=args.plugin_dir) as service:
        for line, row in rows:
            slots.acquire()
            try:
                handles.append(service.submit(row.get("caller") or "", row.get("callee") or "",
                                              campaign=args.campaign, account=args.account, pin=args.pin,
                                              on_event=ended(line, row)))
            except callback.InvalidInput as e:
                slots.release()
                with lock:
                    done[0] += 1
                    outcomes["skipped"] = outcomes.get("skipped", 0) + 1
                    print(f"[{done[0]}/{len(rows)}] line {line}: skipped: {e}", flush=True)
        for handle in handles:
            handle.wait()
    print("done: " + ", ".join(f"{n} {outcome}" for outcome, n in sorted(outcomes.items())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
