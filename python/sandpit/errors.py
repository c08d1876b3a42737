"""Typed exceptions for the errors `sandpit serve` answers (docs/serve.md,
"Errors"): each carries the JSON-RPC code, serve's `data.kind` and its
message, which names what was wrong."""


class SandpitError(Exception):
    """Any error from sandpit serve, or from talking to it."""

    def __init__(self, message, code=None, kind=None, data=None):
        super().__init__(message)
        self.message = message
        self.code = code
        self.kind = kind
        self.data = data

    def __repr__(self):
        return (f"{type(self).__name__}({self.message!r}, code={self.code}, "
                f"kind={self.kind!r})")


class ConnectionLost(SandpitError):
    """The server could not be reached or closed the connection; the
    request's outcome is unknown."""


class ServeFailed(SandpitError):
    """A private `sandpit serve` could not be started."""


class ProtocolError(SandpitError):
    """The request was malformed (-32700, -32600) or named an unknown
    method (-32601): a bug in this client or a server of another version."""


class InvalidParams(SandpitError):
    """-32602: an unknown or missing argument, a wrong type or value
    (kind "params"). Nothing was changed."""


class OperationFailed(SandpitError):
    """-32000: the library failed or refused (kind "usage": no such
    workspace, not running, a bad name; "system": the host failed;
    "failed": anything else)."""


class PatchFailed(OperationFailed):
    """patch.apply: the patch did not apply and nothing was changed
    (-32000, kind "patch"). `report` is serve's report (failure.path,
    failure.hunk, expected, actual: docs/serve.md)."""

    def __init__(self, message, code=None, kind=None, data=None, report=None):
        super().__init__(message, code, kind, data)
        self.report = report


class UsageError(OperationFailed):
    """-32000, kind "usage": the request cannot be done as asked (no such
    workspace or file, not running, a name in use)."""


class HostError(OperationFailed):
    """-32000, kind "system": the host refused or failed (out of memory,
    a missing kernel feature)."""


class Cancelled(OperationFailed):
    """-32000, kind "cancelled": the exec was cancelled (exec.cancel, or
    the client went away)."""


class PolicyDenied(SandpitError):
    """-32001, kind "denied": the operator's policy (serve --policy) does
    not allow it."""


class TooManyRequests(SandpitError):
    """-32002: too many requests in flight on one connection."""


_BY_KIND = {"usage": UsageError, "system": HostError, "failed": OperationFailed,
            "cancelled": Cancelled, "denied": PolicyDenied, "params": InvalidParams}
_BY_CODE = {-32700: ProtocolError, -32600: ProtocolError, -32601: ProtocolError,
            -32602: InvalidParams, -32000: OperationFailed, -32001: PolicyDenied,
            -32002: TooManyRequests}

def from_error(err):
    """The exception for one JSON-RPC error object."""
    if not isinstance(err, dict):
        return ProtocolError(f"malformed error from the server: {err!r}")
    code = err.get("code")
    msg = str(err.get("message", "error"))
    data = err.get("data")
    kind = data.get("kind") if isinstance(data, dict) else None
    if kind == "patch":
        return PatchFailed(msg, code, kind, data, data.get("report"))
    cls = _BY_KIND.get(kind) or _BY_CODE.get(code, SandpitError)
    return cls(msg, code, kind, data)
