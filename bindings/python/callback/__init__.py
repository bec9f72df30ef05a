"""callback: phone-to-phone callbacks on Asterisk, run inside a Python program.

    import callback
    with callback.Service("callback.json") as service:          # starts; stops on exit
        call = service.submit("1001", "1002", campaign="free",
                              on_event=lambda cb: print(cb.state))
        done = call.wait(timeout=600)
        print(done.outcome, done.cost)                            # 'completed', Money(...) or None

Money is exact: amounts go in and come out as decimal.Decimal, never float. Errors are
callback.Error subclasses with .code, .message and .field. Event handlers run on the
service's own thread (the GIL is taken for them); an exception in one is logged and the
service goes on. For asyncio: ``async for cb in service.events(call.id): ...``.
"""

import asyncio
import atexit as _atexit
import json as _json
import os as _os
import weakref as _weakref
from typing import AsyncIterator, Callable, Iterable, Optional, Union

from . import errors
from .errors import Conflict, Error, InvalidInput, NotFound, Refused, Unavailable
from ._callback import (
    Account,
    Callback,
    CallbackHandle,
    CallState,
    Cdr,
    HangupCause,
    LedgerEntry,
    Leg,
    Money,
    PhoneNumber,
    Rate,
    Subscription,
    __version__,
)
from ._callback import _Service

__all__ = [
    "Account", "Callback", "CallbackHandle", "CallState", "Cdr", "Conflict", "Error", "HangupCause",
    "InvalidInput", "LedgerEntry", "Leg", "Money", "NotFound", "PhoneNumber", "Rate", "Refused", "Service",
    "Subscription", "Unavailable", "errors", "__version__",
]


# Services still running when Python exits are stopped while Python still runs: their last
# events may reach handlers, and the service thread never meets a Python being torn down.
_live: "_weakref.WeakSet[Service]" = _weakref.WeakSet()


@_atexit.register
def _stop_all() -> None:
    for service in list(_live):
        service.stop()


class Service(_Service):
    """The callback service: store, billing, engine, triggers and front ends, from a config.

    ``Service("callback.json")`` reads a config file; ``Service(config={...})`` takes the same
    as a dict (or JSON text). ``plugin_dirs`` are searched for plugins before the config's own;
    ``log_file`` receives the service's log (default: standard error); ``start()`` waits up to
    ``engine_wait`` seconds for an Asterisk server. Nothing runs until ``start()``; a ``with``
    block starts it and stops it at the end.
    """

    def __init__(self, config_file: Union[str, "_os.PathLike[str]", None] = None, *,
                 config: Union[dict, str, None] = None, plugin_dirs: Iterable[str] = (),
                 log_file: Optional[str] = None, engine_wait: float = 10.0):
        if config is not None and not isinstance(config, (dict, str)):
            raise TypeError("config must be a dict or a JSON text")
        text = _json.dumps(config) if isinstance(config, dict) else config
        path = _os.fspath(config_file) if config_file is not None else None
        super().__init__(path, text, [_os.fspath(d) for d in plugin_dirs], log_file, engine_wait)
        _live.add(self)

    def __enter__(self) -> "Service":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    async def events(self, callback_id: str) -> AsyncIterator[Callback]:
        """This callback's events as an async iterator: its latest state first, then each
        change, ending after the final one."""
        loop = asyncio.get_running_loop()
        queue: "asyncio.Queue[Callback]" = asyncio.Queue()

        def handler(cb: Callback) -> None:  # on the service thread
            loop.call_soon_threadsafe(queue.put_nowait, cb)

        subscription = self.watch(callback_id, handler)
        try:
            while True:
                cb = await queue.get()
                yield cb
                if cb.final:
                    return
        finally:
            subscription.close()

    def run(self, caller: str, callee: Optional[str] = None, *, timeout: Optional[float] = None,
            on_event: Optional[Callable[[Callback], None]] = None, **payer) -> Callback:
        """submit() and wait(): the final event of one callback."""
        return self.submit(caller, callee, on_event=on_event, **payer).wait(timeout)
