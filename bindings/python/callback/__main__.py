"""python3 -m callback: what ``callbackctl call`` does, from Python.

    python3 -m callback --config callback.json call 1001 1002 --campaign free
    python3 -m callback --config callback.json --json call 1001 1002 --account 123 --pin 2468

Runs the service in this process until the call ends, printing each change (or, with
--json, the REST API's callback object a line). Exit codes as callbackctl's: 0 talked,
2 bad input, 3 placed but B never answered, 4 refused, 1 any other failure.
"""

import argparse
import datetime
import json
import sys

import callback

EXIT_OK, EXIT_FAILURE, EXIT_BAD_INPUT, EXIT_NOT_CONNECTED, EXIT_REFUSED = 0, 1, 2, 3, 4


def describe(cb: callback.Callback) -> str:
    state = cb.state.name
    callee = cb.callee.e164 if cb.callee else "the number dialled"
    if state in ("created", "authorizing"):
        return "checking the account"
    if state == "dialing_a":
        return f"calling {cb.caller.e164}..."
    if state == "a_answered":
        return f"{cb.caller.e164} answered"
    if state == "dialing_b":
        return f"connecting {callee}..."
    if state == "bridged":
        return "connected" + (f", at most {cb.limit_seconds} s" if cb.limit_seconds else "")
    line = "ended: " + (cb.outcome or state)
    if cb.error is not None:
        line += f" ({cb.error.message})"
    if cb.cost is not None:
        line += f", cost {cb.cost.amount} {cb.cost.currency}"
    return line


def exit_code_for_error(e: callback.Error) -> int:
    if isinstance(e, callback.Refused):
        return EXIT_REFUSED
    if isinstance(e, callback.Unavailable):
        return EXIT_FAILURE
    return EXIT_BAD_INPUT


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m callback", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", required=True, help="callback.json")
    parser.add_argument("--plugin-dir", action="append", default=[], help="searched for plugins first")
    parser.add_argument("--json", action="store_true", help="one callback object (JSON) a line")
    commands = parser.add_subparsers(dest="command", required=True)
    call = commands.add_parser("call", help="place one callback and follow it to its end")
    call.add_argument("caller")
    call.add_argument("callee")
    payer = call.add_mutually_exclusive_group(required=True)
    payer.add_argument("--account")
    payer.add_argument("--campaign")
    call.add_argument("--pin")
    call.add_argument("--limit", type=int, help="at most this many seconds")
    call.add_argument("--language")
    call.add_argument("--idempotency-key")
    args = parser.parse_args(argv)

    def show(cb: callback.Callback) -> None:
        if args.json:
            print(cb.to_json(), flush=True)
        else:
            now = datetime.datetime.now(datetime.timezone.utc).strftime("%H:%M:%S.%f")[:-3]
            print(f"{now}  {cb.id}  {describe(cb)}", flush=True)

    try:
        with callback.Service(args.config, plugin_dirs=args.plugin_dir) as service:
            handle = service.submit(args.caller, args.callee, account=args.account, campaign=args.campaign,
                                    pin=args.pin, limit=args.limit, language=args.language,
                                    idempotency_key=args.idempotency_key, on_event=show)
            last = handle.wait()
    except callback.Error as e:
        print(f"python3 -m callback: {e}", file=sys.stderr)
        return exit_code_for_error(e)
    if last.outcome == "refused":
        return EXIT_REFUSED
    return EXIT_OK if last.b.answered_at is not None else EXIT_NOT_CONNECTED


if __name__ == "__main__":
    sys.exit(main())
