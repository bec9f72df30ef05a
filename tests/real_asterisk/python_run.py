"""The Python module on a real Asterisk (python.sh runs it): each outcome, a burst, a cancel.
Usage: python_run.py CONFIG PLUGIN_DIR BURST; exit 1 if anything was not as it should be."""
import sys
import threading
import time

import callback
from callback import CallState

config, plugins, burst = sys.argv[1], sys.argv[2], int(sys.argv[3])
wrong = 0


def check(what, got, want):
    global wrong
    ok = got == want
    wrong += not ok
    print(f"{'ok   ' if ok else 'WRONG'} {what}: {got}" + ("" if ok else f" (want {want})"), flush=True)


with callback.Service(config, plugin_dirs=[plugins], log_file=config + ".log") as s:
    cases = [("1001", "1002", 5, "time_up"), ("1001", "2001", None, "partner_hangup"),
             ("1001", "3001", None, "partner_busy"), ("1001", "5001", None, "system_busy"),
             ("1001", "4001", None, "partner_away"), ("3001", "1002", None, "caller_unreachable")]
    for a, b, limit, want in cases:
        done = s.run(a, b, campaign="free", limit=limit, timeout=120)
        check(f"{a} -> {b}", done.outcome, want)
        rows = s.cdrs(callback_id=done.id)
        check(f"{a} -> {b} CDR rows", len(rows), 1 if want == "caller_unreachable" else 2)
        if want == "time_up":
            check("time_up B billsec", [r.billsec for r in rows if r.leg == "B"], [5])

    events, lock = {}, threading.Lock()

    def on_event(cb):
        with lock:
            events.setdefault(cb.id, []).append(cb.state)

    start = time.monotonic()
    handles = [s.submit(f"1{i:03d}", f"2{i:03d}", campaign="free", on_event=on_event) for i in range(burst)]
    finals = [h.wait(180) for h in handles]
    print(f"burst of {burst}: {time.monotonic() - start:.1f} s", flush=True)
    check(f"burst of {burst}: outcomes", sorted({f.outcome for f in finals}), ["partner_hangup"])
    check(f"burst of {burst}: each told from its start to its end",
          sum(1 for h in handles if events[h.id][-1] == CallState.completed and CallState.bridged in events[h.id]),
          burst)
    check(f"burst of {burst}: CDR rows", sum(len(s.cdrs(callback_id=h.id)) for h in handles), 2 * burst)

    reached = threading.Event()
    ringing = s.submit("1001", "4002", campaign="free",
                       on_event=lambda cb: cb.state == CallState.dialing_b and reached.set())
    check("B ringing", reached.wait(60), True)
    ringing.cancel()
    check("cancel while B rings", ringing.wait(60).outcome, "canceled")
sys.exit(1 if wrong else 0)
