#!/usr/bin/env python3
"""Callbacks per second driven from Python against the Asterisk fake, next to the same loop
in C++ (embedded_load), and the cost of an event crossing into Python (issue 14).

    benchmarks/python_load.py [--build build-release] [--calls 20000] [--in-flight 500] [--runs 3]

Each run: a fresh callback-fake-asterisk (--time-scale 0: every phone answers or hangs up at
once), a service on SQLite with billing off, A = 9XXX, B = 98XX (answers and hangs up). The
Python loop submits, keeps --in-flight going and waits for the oldest, as embedded_load does.
The cost per event is the process CPU time (user + system) with a Python handler on every
callback less that without, over the number of events the handlers received.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time


def cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def start_fake(build):
    fake = subprocess.Popen([os.path.join(build, "bin/callback-fake-asterisk"), "--port", "0", "--time-scale", "0"],
                            stdout=subprocess.PIPE, text=True)
    return fake, int(fake.stdout.readline().rsplit(":", 1)[1])


def write_config(folder, port):
    path = os.path.join(folder, "callback.json")
    with open(path, "w") as f:
        json.dump({
            "numbering": {"country_code": "", "trunk_prefix": "", "international_prefixes": []},
            "store": {"plugin": "callback.store.sqlite", "config": {"path": os.path.join(folder, "callback.db")}},
            "billing": {"plugin": "callback.billing.sqlite", "enabled": False},
            "engines": [{"plugin": "callback.engine.ami",
                         "config": {"servers": [f"127.0.0.1:{port}"], "secret": "callbacksecret"}}],
            "service": {"campaigns": {"free": {"limit_seconds": 30}}, "max_in_flight": 0},
            "log": {"level": "warning"},
        }, f)
    return path


def python_run(callback, build, calls, in_flight, with_events):
    fake, port = start_fake(build)
    folder = tempfile.mkdtemp()
    events = [0]

    def on_event(cb):
        events[0] += 1

    try:
        with callback.Service(write_config(folder, port), plugin_dirs=[os.path.join(build, "lib/callback/plugins")],
                              log_file=os.path.join(folder, "service.log")) as service:
            handler = on_event if with_events else None
            cpu, wall = cpu_seconds(), time.monotonic()
            pending, completed = [], 0
            for i in range(calls):
                pending.append(service.submit(f"9{i % 800:03d}", f"98{i % 100:02d}", campaign="free",
                                              on_event=handler))
                if len(pending) >= in_flight:
                    completed += pending.pop(0).wait(60).state == callback.CallState.completed
            for h in pending:
                completed += h.wait(60).state == callback.CallState.completed
            wall, cpu = time.monotonic() - wall, cpu_seconds() - cpu
    finally:
        fake.terminate()
        fake.wait()
    return calls / wall, cpu, completed, events[0]


def cpp_run(build, calls, in_flight, with_events):
    fake, port = start_fake(build)
    folder = tempfile.mkdtemp()
    try:
        out = subprocess.run([os.path.join(build, "bin/embedded_load"), "--config", write_config(folder, port),
                              "--calls", str(calls), "--in-flight", str(in_flight)] + (["--events"] if with_events else []),
                             capture_output=True, text=True, check=True).stdout
    finally:
        fake.terminate()
        fake.wait()
    return out.strip()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--build", default="build-release")
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--in-flight", type=int, default=500)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    sys.path.insert(0, os.path.join(args.build, "python"))
    import callback

    for run in range(1, args.runs + 1):
        print(f"run {run}")
        print("  " + cpp_run(args.build, args.calls, args.in_flight, False))
        print("  " + cpp_run(args.build, args.calls, args.in_flight, True))
        rate, cpu_plain, completed, _ = python_run(callback, args.build, args.calls, args.in_flight, False)
        print(f"  Python: {rate:,.0f} callbacks/s, {completed} completed, {cpu_plain:.2f} s CPU (no handler)")
        rate, cpu_events, completed, events = python_run(callback, args.build, args.calls, args.in_flight, True)
        per_event = (cpu_events - cpu_plain) / events * 1e6 if events else float("nan")
        print(f"  Python: {rate:,.0f} callbacks/s, {completed} completed, {cpu_events:.2f} s CPU, {events} events "
              f"into a Python handler: {per_event:.1f} us CPU an event")


if __name__ == "__main__":
    main()
