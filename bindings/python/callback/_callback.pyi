# Type stubs of the compiled part of the callback package (bindings/python/module.cpp).
import datetime
import decimal
import enum
from typing import Callable, Dict, List, Optional, Union

from .errors import Error

__version__: str

Amount = Union[decimal.Decimal, int, str]  # never float

class CallState(enum.Enum):
    created: CallState
    authorizing: CallState
    dialing_a: CallState
    a_answered: CallState
    dialing_b: CallState
    bridged: CallState
    completed: CallState
    failed: CallState
    canceled: CallState
    @property
    def name(self) -> str: ...

class Money:
    def __init__(self, amount: Amount, currency: str) -> None: ...
    @property
    def amount(self) -> decimal.Decimal: ...
    @property
    def currency(self) -> str: ...

class PhoneNumber:
    def __init__(self, e164: str) -> None: ...
    @property
    def digits(self) -> str: ...
    @property
    def e164(self) -> str: ...

class HangupCause:
    def __init__(self, code: int) -> None: ...
    @staticmethod
    def from_name(name: str) -> HangupCause: ...
    @property
    def code(self) -> int: ...
    @property
    def name(self) -> str: ...
    @property
    def description(self) -> str: ...
    @property
    def outcome(self) -> str: ...

class Leg:
    role: str
    number: Optional[PhoneNumber]
    state: str
    channel: str
    uniqueid: str
    started_at: Optional[datetime.datetime]
    answered_at: Optional[datetime.datetime]
    ended_at: Optional[datetime.datetime]
    cause: HangupCause
    billsec: int

class Callback:
    id: str
    state: CallState
    previous_state: CallState
    final: bool
    caller: PhoneNumber
    callee: Optional[PhoneNumber]
    account: Optional[str]
    campaign: Optional[str]
    outcome: Optional[str]
    cost: Optional[Money]
    limit_seconds: int
    announcement: Optional[str]
    error: Optional[Error]
    a: Leg
    b: Leg
    created_at: datetime.datetime
    updated_at: datetime.datetime
    replayed: bool
    def to_json(self) -> str: ...

class Cdr:
    calldate: datetime.datetime
    clid: str
    src: str
    dst: str
    dcontext: str
    channel: str
    dstchannel: str
    lastapp: str
    lastdata: str
    duration: int
    billsec: int
    disposition: str
    amaflags: int
    accountcode: str
    uniqueid: str
    userfield: str
    callback_id: str
    leg: str
    cost: Optional[Money]
    hangup_cause: HangupCause

class Account:
    id: str
    name: str
    currency: str
    balance: Money
    credit_limit: Money
    reserved: Money
    active: bool
    tariff: str
    numbers: List[PhoneNumber]
    emails: List[str]
    language: str

class LedgerEntry:
    id: int
    account_id: str
    amount: Money
    kind: str
    reference: str
    at: datetime.datetime
    balance_after: Money

class Rate:
    prefix: str
    description: str
    price_per_minute: Money
    initial_increment: int
    subsequent_increment: int
    connection_fee: Money
    minimum_duration: int
    def cost(self, billsec: int) -> Money: ...

class Subscription:
    def close(self) -> None: ...
    @property
    def active(self) -> bool: ...
    def __enter__(self) -> Subscription: ...
    def __exit__(self, *exc: object) -> None: ...

class CallbackHandle:
    @property
    def id(self) -> str: ...
    @property
    def latest(self) -> Callback: ...
    @property
    def finished(self) -> bool: ...
    def wait(self, timeout: Optional[float] = ...) -> Callback: ...
    def cancel(self) -> None: ...

class _Service:
    def __init__(self, config_file: Optional[str] = ..., config_json: Optional[str] = ...,
                 plugin_dirs: List[str] = ..., log_file: Optional[str] = ..., engine_wait: float = ...) -> None: ...
    def start(self) -> None: ...
    def stop(self, grace: float = ...) -> None: ...
    @property
    def running(self) -> bool: ...
    def submit(self, caller: str, callee: Optional[str] = ..., *, account: Optional[str] = ...,
               campaign: Optional[str] = ..., pin: Optional[str] = ..., limit: Optional[int] = ...,
               language: Optional[str] = ..., idempotency_key: Optional[str] = ...,
               metadata: Dict[str, str] = ..., on_event: Optional[Callable[[Callback], None]] = ...) -> CallbackHandle: ...
    def cancel(self, id: str) -> None: ...
    def get(self, id: str) -> Callback: ...
    def list(self, state: Optional[CallState] = ..., limit: int = ...) -> List[Callback]: ...
    def subscribe(self, handler: Callable[[Callback], None]) -> Subscription: ...
    def watch(self, id: str, handler: Callable[[Callback], None]) -> Subscription: ...
    @property
    def in_flight(self) -> int: ...
    def create_account(self, id: str, *, balance: Amount = ..., currency: str = ..., name: str = ...,
                       credit_limit: Amount = ..., tariff: str = ..., pin: str = ..., numbers: List[str] = ...,
                       emails: List[str] = ..., language: str = ...) -> Account: ...
    def account(self, id: str) -> Account: ...
    def accounts(self) -> List[Account]: ...
    def top_up(self, account: str, amount: Amount, reference: str = ...) -> LedgerEntry: ...
    def ledger(self, account: str, limit: int = ...) -> List[LedgerEntry]: ...
    def import_rates(self, tariff: str, csv: str, currency: str = ...) -> int: ...
    def rate(self, tariff: str, number: str) -> Rate: ...
    def cdrs(self, *, callback_id: Optional[str] = ..., account: Optional[str] = ..., number: Optional[str] = ...,
             since: Optional[datetime.datetime] = ..., until: Optional[datetime.datetime] = ...,
             limit: int = ...) -> List[Cdr]: ...
