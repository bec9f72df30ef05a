"""The callback module against the Asterisk fake: outcomes, events, money, records, errors."""

import asyncio
import datetime
import os
import subprocess
import sys
import threading
from decimal import Decimal

import pytest

import callback
from callback import CallState
from conftest import PLUGIN_DIR, write_config


def collect():
    events = []
    return events, events.append


def test_a_call_that_talks_until_b_hangs_up_tells_every_step(service):
    events, on_event = collect()
    handle = service.submit("1001", "2001", campaign="free", on_event=on_event)
    done = handle.wait(timeout=60)
    assert done.id == handle.id
    assert done.state == CallState.completed and done.final
    assert done.outcome == "partner_hangup"
    states = [e.state for e in events]
    assert states[-1] == CallState.completed
    for step in (CallState.dialing_a, CallState.a_answered, CallState.dialing_b, CallState.bridged):
        assert step in states
    # One event a change, each one starting where the one before left off.
    for before, after in zip(events, events[1:]):
        assert after.previous_state == before.state
    assert done.caller == callback.PhoneNumber("1001") and done.callee.e164 == "+2001"
    assert done.campaign == "free" and done.account is None
    assert done.b.answered_at is not None and done.b.answered_at.tzinfo is not None
    assert done.a.cause.name == "NORMAL_CLEARING" or done.b.cause.name == "NORMAL_CLEARING"
    assert done.cost is None  # a free campaign
    assert done.limit_seconds == 30
    assert service.get(handle.id).state == CallState.completed


@pytest.mark.parametrize("caller, callee, state, outcome, leg, cause", [
    ("1001", "3001", CallState.completed, "partner_busy", "b", "USER_BUSY"),
    ("1001", "5001", CallState.completed, "system_busy", "b", "NORMAL_CIRCUIT_CONGESTION"),
    ("1001", "6001", CallState.completed, "partner_busy", "b", "CALL_REJECTED"),
    ("3001", "1002", CallState.failed, "caller_unreachable", "a", "USER_BUSY"),
])
def test_each_outcome_ends_the_callback_as_the_fake_asterisk_has_it(service, caller, callee, state, outcome, leg,
                                                                    cause):
    done = service.run(caller, callee, campaign="free", timeout=60)
    assert (done.state, done.outcome) == (state, outcome)
    assert getattr(done, leg).cause.name == cause
    assert done.b.answered_at is None
    assert len(service.cdrs(callback_id=done.id)) == (2 if leg == "b" else 1)


def test_the_limit_ends_the_call_and_the_cdrs_say_so(service):
    done = service.run("1001", "1002", campaign="free", limit=2, timeout=60)
    assert done.outcome == "time_up" and done.limit_seconds == 2
    cdrs = {c.leg: c for c in service.cdrs(callback_id=done.id)}
    assert set(cdrs) == {"A", "B"}
    assert cdrs["B"].disposition == "ANSWERED" and 1 <= cdrs["B"].billsec <= 3
    assert cdrs["A"].src and cdrs["B"].dst == "1002"


def test_a_cancel_at_dialing_b_ends_it_canceled(service):
    reached = threading.Event()

    def on_event(cb):
        if cb.state == CallState.dialing_b:
            reached.set()

    handle = service.submit("1001", "4001", campaign="free", on_event=on_event)  # B rings forever
    assert reached.wait(60)
    handle.cancel()
    done = handle.wait(60)
    assert done.state == CallState.canceled and done.outcome == "canceled"
    with pytest.raises(callback.Conflict) as e:
        service.cancel(handle.id)
    assert e.value.code == "finished" and e.value.field == "id"


def test_money_is_exact_decimal_in_and_out(billed):
    account = billed.account("123")
    assert account.balance.amount == Decimal("5.00") and account.balance.currency == "CNY"
    rate = billed.rate("default", "1002")
    assert rate.prefix == "10" and rate.price_per_minute.amount == Decimal("0.30")
    done = billed.run("1001", "1002", account="123", pin="2468", limit=2, timeout=60)
    assert done.outcome == "time_up"
    assert done.cost == callback.Money(Decimal("0.30"), "CNY")  # 2 s, billed by the minute
    assert isinstance(done.cost.amount, Decimal)
    assert billed.account("123").balance.amount == Decimal("4.70")
    charges = [e for e in billed.ledger("123") if e.reference == done.id]
    assert [c.amount.amount for c in charges] == [Decimal("-0.30")]
    cdr_costs = [c.cost.amount for c in billed.cdrs(callback_id=done.id) if c.cost is not None]
    assert sum(cdr_costs) == Decimal("0.30")
    entry = billed.top_up("123", Decimal("10.05"), reference="receipt 7")
    assert entry.balance_after.amount == Decimal("14.75")
    assert billed.account("123").balance.amount == Decimal("14.75")


def test_a_payer_who_cannot_pay_is_refused_and_nothing_moves(billed):
    billed.create_account("poor", balance=Decimal("0.10"), pin="1357")
    done = billed.run("1001", "1002", account="poor", pin="1357", timeout=60)
    assert done.state == CallState.failed and done.outcome == "refused"
    assert isinstance(done.error, callback.Refused) and done.error.code
    assert billed.account("poor").balance.amount == Decimal("0.10")
    wrong_pin = billed.run("1001", "1002", account="123", pin="0000", timeout=60)
    assert wrong_pin.outcome == "refused" and isinstance(wrong_pin.error, callback.Refused)


def test_bad_input_raises_clear_exceptions_and_moves_nothing(billed):
    with pytest.raises(callback.InvalidInput) as e:
        billed.submit("1001", "12ab", account="123", pin="2468")
    assert e.value.field == "callee" and e.value.code and "12ab" not in e.value.code
    with pytest.raises(callback.InvalidInput) as e:
        billed.submit("1001", "1002")
    assert e.value.field == "account"
    with pytest.raises(callback.InvalidInput) as e:
        billed.submit("1001", "1002", campaign="free", language="zh\nAction: X")
    assert e.value.field == "language"
    with pytest.raises(callback.InvalidInput) as e:
        billed.submit("1001", "1002", campaign="free", limit=0)
    assert e.value.field == "limit"
    with pytest.raises(TypeError):
        billed.submit(1001, "1002", campaign="free")
    with pytest.raises(TypeError, match="float"):
        billed.top_up("123", 0.1)
    with pytest.raises(TypeError, match="float"):
        billed.create_account("f", balance=5.0)
    with pytest.raises(TypeError, match="float"):
        callback.Money(0.3, "CNY")
    with pytest.raises(callback.InvalidInput) as e:
        billed.top_up("123", Decimal("-1.00"))
    assert e.value.field == "amount"
    with pytest.raises(callback.InvalidInput):
        billed.top_up("123", Decimal("NaN"))
    with pytest.raises(callback.NotFound):
        billed.top_up("nobody", Decimal("1.00"))
    with pytest.raises(callback.InvalidInput) as e:
        billed.import_rates("default", "prefix;description;rate\n1;ones;abc\n")
    assert "line" in e.value.field
    assert billed.rate("default", "1002").price_per_minute.amount == Decimal("0.30")  # the old deck stands
    with pytest.raises(callback.NotFound):
        billed.rate("default", "2002")
    with pytest.raises(callback.NotFound):
        billed.get("cb-nothing-1")
    with pytest.raises(callback.NotFound):
        billed.cancel("cb-nothing-1")
    with pytest.raises(callback.Conflict):
        billed.create_account("123")
    with pytest.raises(callback.InvalidInput) as e:
        billed.cdrs(since=datetime.datetime(2026, 1, 1))
    assert e.value.field == "since"
    assert billed.account("123").balance.amount == Decimal("5.00")
    assert billed.in_flight == 0


def test_a_wait_that_runs_out_raises_and_the_call_goes_on(service):
    handle = service.submit("1001", "4001", campaign="free")
    with pytest.raises(callback.Unavailable) as e:
        handle.wait(timeout=0.05)
    assert e.value.code == "timeout"
    assert not handle.finished
    handle.cancel()
    assert handle.wait(60).state == CallState.canceled


def test_a_config_mistake_names_its_field(tmp_path):
    with pytest.raises(callback.Error) as e:
        callback.Service(config={"store": {"plugin": "callback.store.nope"}}, plugin_dirs=[PLUGIN_DIR])
    assert "store" in e.value.field
    with pytest.raises(TypeError):
        callback.Service(config=42)


def test_before_start_and_after_stop_calls_are_refused(config, log_file):
    s = callback.Service(config=config, plugin_dirs=[PLUGIN_DIR], log_file=log_file)
    with pytest.raises(callback.Unavailable) as e:
        s.submit("1001", "1002", campaign="free")
    assert e.value.code == "not_running"
    s.start()
    done = s.run("1001", "2001", campaign="free", timeout=60)
    s.stop()
    assert not s.running
    with pytest.raises(callback.Unavailable):
        s.submit("1001", "1002", campaign="free")
    assert s.get(done.id).outcome == "partner_hangup"  # still readable


def test_a_handler_that_raises_is_logged_and_the_service_goes_on(service, log_file):
    def broken(cb):
        raise ZeroDivisionError("handler bug " + cb.state.name)

    first = service.submit("1001", "2001", campaign="free", on_event=broken).wait(60)
    assert first.outcome == "partner_hangup"
    second = service.run("1001", "3001", campaign="free", timeout=60)
    assert second.outcome == "partner_busy"
    log = open(log_file).read()
    assert "ZeroDivisionError" in log and "handler bug" in log and first.id in log


def test_events_reach_python_with_the_gil_while_python_threads_run(service):
    counter = [0]
    stop = threading.Event()

    def spin():
        while not stop.is_set():
            counter[0] += 1

    spinner = threading.Thread(target=spin)
    spinner.start()
    seen = []
    lock = threading.Lock()

    def on_event(cb):
        with lock:
            seen.append((cb.id, cb.state, counter[0], threading.get_ident()))

    try:
        handles = [service.submit(f"90{i:02d}", f"98{i:02d}", campaign="free", on_event=on_event)
                   for i in range(50)]
        finals = [h.wait(60) for h in handles]
    finally:
        stop.set()
        spinner.join()
    assert all(f.final for f in finals)
    assert {cb_id for cb_id, state, _, _ in seen if state in (CallState.completed, CallState.failed)} == \
        {h.id for h in handles}
    # Handlers ran on the service's thread, not this one or the spinner's...
    assert threading.get_ident() not in {t for *_, t in seen}
    # ...while the spinner went on running Python between them.
    counts = [c for _, _, c, _ in seen]
    assert counts[-1] > counts[0]


def test_async_for_follows_a_callback_to_its_end(service):
    async def follow():
        handle = service.submit("1001", "2001", campaign="free")
        states = [cb.state async for cb in service.events(handle.id)]
        return handle, states

    handle, states = asyncio.run(follow())
    assert states[-1] == CallState.completed
    assert CallState.bridged in states
    assert states == sorted(states, key=lambda s: list(CallState.__members__.values()).index(s))
    # A finished one: its final event, once.
    async def again():
        return [cb.state async for cb in service.events(handle.id)]
    assert asyncio.run(again()) == [CallState.completed]


def test_subscribe_sees_every_callback_until_closed(service):
    seen = []
    sub = service.subscribe(lambda cb: seen.append(cb.id))
    first = service.run("1001", "3001", campaign="free", timeout=60)
    assert first.id in seen
    sub.close()
    assert not sub.active
    second = service.run("1001", "3001", campaign="free", timeout=60)  # its handlers ran before wait() returned
    assert second.id not in seen


def test_list_and_get(service):
    ids = [service.run("1001", callee, campaign="free", timeout=60).id for callee in ("3001", "2001")]
    listed = service.list(limit=10)
    assert [cb.id for cb in listed][:2] == list(reversed(ids))
    busy = service.list(state=CallState.completed)
    assert {cb.id for cb in busy} >= set(ids)
    assert service.get(ids[0]).outcome == "partner_busy"
    assert '"partner_busy"' in service.get(ids[0]).to_json()


def run_module(tmp_path, config, *args):
    path = write_config(tmp_path, config)
    return subprocess.run([sys.executable, "-m", "callback", "--config", path, "--plugin-dir", PLUGIN_DIR, *args],
                          capture_output=True, text=True, timeout=120)


def test_python_m_callback_does_what_callbackctl_call_does(tmp_path, config):
    talked = run_module(tmp_path, config, "call", "1001", "2001", "--campaign", "free")
    assert talked.returncode == 0, talked.stderr
    assert "calling +1001..." in talked.stdout and "connecting +2001..." in talked.stdout
    assert "ended: partner_hangup" in talked.stdout
    busy = run_module(tmp_path, config, "--json", "call", "1001", "3001", "--campaign", "free")
    assert busy.returncode == 3, busy.stderr
    assert '"outcome":"partner_busy"' in busy.stdout.splitlines()[-1]
    bad = run_module(tmp_path, config, "call", "1001", "12ab", "--campaign", "free")
    assert bad.returncode == 2 and "callee: " in bad.stderr


def test_the_readme_csv_example_runs_a_call_list(tmp_path, config):
    source = os.environ.get("CALLBACK_SOURCE_DIR", ".")
    calls = tmp_path / "calls.csv"
    calls.write_text("caller,callee\n1001,2001\n1002,3001\n1003,12ab\n1004,5001\n")
    run = subprocess.run([sys.executable, os.path.join(source, "examples/python/call_list.py"), str(calls),
                          "--config", write_config(tmp_path, config), "--plugin-dir", PLUGIN_DIR,
                          "--campaign", "free", "--parallel", "2"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "line 2: 1001 -> 2001: partner_hangup" in run.stdout
    assert "line 3: 1002 -> 3001: partner_busy" in run.stdout
    assert "line 4: skipped: callee: " in run.stdout
    assert run.stdout.splitlines()[-1] == "done: 1 partner_busy, 1 partner_hangup, 1 skipped, 1 system_busy"


def test_a_handler_may_cancel_but_not_submit_or_wait(service):
    tried = {}

    def on_event(cb):
        if cb.state == CallState.dialing_b and not tried:
            try:
                service.submit("1001", "1002", campaign="free")
            except callback.Conflict as e:
                tried["submit"] = e.code
            try:
                service.get(cb.id)
                handle_box[0].wait(timeout=30)
            except callback.Unavailable as e:
                tried["wait"] = e.code
            service.cancel(cb.id)
            tried["cancel"] = "ok"

    handle_box = [None]
    handle_box[0] = handle = service.submit("1001", "4001", campaign="free", on_event=on_event)
    assert handle.wait(60).outcome == "canceled"
    assert tried == {"submit": "from_handler", "wait": "timeout", "cancel": "ok"}


def test_out_of_range_input_is_refused_not_wrapped(billed):
    with pytest.raises(callback.InvalidInput) as e:
        billed.cdrs(until=datetime.datetime.max.replace(tzinfo=datetime.timezone.utc))
    assert e.value.field == "until"
    with pytest.raises(callback.InvalidInput) as e:
        billed.top_up("123", Decimal("1E+999999999"))
    assert e.value.field == "amount"
    with pytest.raises(callback.InvalidInput):
        billed.top_up("123", Decimal("1E-999999999"))
    handle = billed.submit("1001", "1002", account="123", pin="2468", limit=1)
    with pytest.raises(callback.InvalidInput):
        handle.wait(timeout=float("nan"))
    assert handle.wait(timeout=float("inf")).final
    since = datetime.datetime.now(datetime.timezone(datetime.timedelta(hours=8))) - datetime.timedelta(hours=1)
    assert handle.id in {c.callback_id for c in billed.cdrs(since=since)}
    assert handle.id not in {c.callback_id for c in billed.cdrs(since=since + datetime.timedelta(hours=2))}


def test_python_exiting_with_a_service_running_stops_it_cleanly(tmp_path, config):
    script = tmp_path / "leave.py"
    script.write_text(f"""
import callback, sys
s = callback.Service({write_config(tmp_path, config)!r}, plugin_dirs=[{PLUGIN_DIR!r}])
s.start()
seen = []
h = s.submit("1001", "4001", campaign="free", on_event=lambda cb: seen.append(cb.state.name))
while "dialing_b" not in seen:
    pass
print("leaving with", h.id, "ringing", flush=True)
""")
    run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "ringing" in run.stdout
