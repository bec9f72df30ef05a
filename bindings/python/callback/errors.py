"""The exceptions of the callback module.

Every error the service reports is a :class:`callback.Error` with ``code`` (stable, for
programs: ``"invalid_phone_number"``), ``message`` (for people), ``field`` (where: ``"callee"``,
``"line 12"``, or ``""``) and ``rule`` (the policy rule that refused it, or ``""``). Its class says
what kind of error it is.
"""


class Error(Exception):
    """An error reported by the callback service."""

    def __init__(self, code: str, message: str, field: str = "", rule: str = "", kind: str = ""):
        text = f"{field}: {message}" if field else message
        if rule:
            text += f" [rule: {rule}]"
        super().__init__(text)
        self.code = code
        self.message = message
        self.field = field
        self.rule = rule
        self.kind = kind


class InvalidInput(Error, ValueError):
    """The request is wrong: a bad number, a bad amount, a missing field."""


class NotFound(Error, LookupError):
    """No such callback, account, rate or tariff."""


class Refused(Error):
    """Refused by a policy, a credential, the payer's balance or a rate limit."""


class Conflict(Error):
    """It exists already, or it has ended."""


class Unavailable(Error):
    """Cannot now: not started, stopping, overloaded, no engine, billing disabled, a store fault."""


# ErrorKind's names (callback/error.hpp) -> class.
KINDS = {
    "invalid": InvalidInput,
    "too_large": InvalidInput,
    "unsupported_media": InvalidInput,
    "method_not_allowed": InvalidInput,
    "not_found": NotFound,
    "unauthorized": Refused,
    "payment_required": Refused,
    "forbidden": Refused,
    "rate_limited": Refused,
    "conflict": Conflict,
    "internal": Unavailable,
    "unavailable": Unavailable,
}
