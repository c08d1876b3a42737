"""sandpit: a Python client for `sandpit serve` (JSON-RPC 2.0 on a Unix
socket), standard library only.

    from sandpit import Sandpit

    with Sandpit() as sb:                 # a private serve, or Sandpit(SOCKET)
        with sb.create(memory="512M") as ws:
            ws.files.write("hello.py", 'print("hi")\\n')
            r = ws.exec(["python3", "hello.py"], on_stdout=print)
            print(r.exit_code)
"""

from .client import (ExecResult, Files, Sandpit, Services, Shell, Shells,
                     Workspace)
from .errors import (Cancelled, ConnectionLost, HostError, InvalidParams,
                     OperationFailed, PatchFailed, PolicyDenied, ProtocolError,
                     SandpitError, ServeFailed, TooManyRequests, UsageError)

__version__ = "0.1.0"
__all__ = ["Sandpit", "Workspace", "ExecResult", "Files", "Shells", "Shell",
           "Services", "SandpitError", "ConnectionLost", "ServeFailed",
           "ProtocolError", "InvalidParams", "PatchFailed", "OperationFailed",
           "UsageError", "HostError", "Cancelled", "PolicyDenied",
           "TooManyRequests"]
