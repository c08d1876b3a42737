"""The client: a Sandpit connects to `sandpit serve` (or starts a private
one) and hands out Workspace objects; one JSON-RPC 2.0 connection, a reader
thread that routes replies and streamed exec output, so calls from several
threads run at once."""

import base64
import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

from .errors import (Cancelled, ConnectionLost, ProtocolError, SandpitError,
                     ServeFailed, from_error)

Command = Union[str, Sequence[str]]
Callback = Optional[Callable[[str], None]]


class _Pending:
    __slots__ = ("event", "reply", "on_output")

    def __init__(self, on_output=None):
        self.event = threading.Event()
        self.reply = None
        self.on_output = on_output


class _Connection:
    """One socket, one reader thread."""

    def __init__(self, path: str, connect_timeout: float):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(connect_timeout)
        try:
            self.sock.connect(path)
        except OSError as e:
            self.sock.close()
            raise ConnectionLost(f"cannot connect to sandpit serve at {path}: {e}") from e
        self.sock.settimeout(None)
        self.path = path
        self.ids = itertools.count(1)
        self.lock = threading.Lock()        # pending, closed
        self.wlock = threading.Lock()       # whole messages on the socket
        self.pending: Dict[int, _Pending] = {}
        self.closed: Optional[str] = None
        self.reader = threading.Thread(target=self._read, name="sandpit-reader",
                                       daemon=True)
        self.reader.start()

    def _read(self):
        f = self.sock.makefile("rb")
        reason = "the server closed the connection"
        try:
            for line in f:
                try:
                    msg = json.loads(line)
                except ValueError:
                    continue
                self._dispatch(msg)
        except OSError as e:
            reason = f"connection to sandpit serve lost: {e}"
        finally:
            f.close()
            with self.lock:
                self.closed = self.closed or reason
                pend, self.pending = self.pending, {}
            for p in pend.values():
                p.event.set()

    def _dispatch(self, msg):
        if isinstance(msg, list):
            for m in msg:
                self._dispatch(m)
            return
        if not isinstance(msg, dict):
            return
        if msg.get("method") == "exec.output":
            params = msg.get("params") or {}
            with self.lock:
                p = self.pending.get(params.get("id"))
            if p and p.on_output:
                try:
                    p.on_output(params.get("stream"), params.get("data", ""))
                except Exception:  # a callback's bug must not stop the reader
                    pass
            return
        with self.lock:
            p = self.pending.pop(msg.get("id"), None)
        if p:
            p.reply = msg
            p.event.set()

    def call(self, method: str, params: Optional[dict] = None, on_output=None,
             timeout: Optional[float] = None):
        rid = next(self.ids)
        p = _Pending(on_output)
        with self.lock:
            if self.closed:
                raise ConnectionLost(self.closed)
            self.pending[rid] = p
        data = json.dumps({"jsonrpc": "2.0", "id": rid, "method": method,
                           "params": params or {}}).encode() + b"\n"
        try:
            with self.wlock:
                self.sock.sendall(data)
        except OSError as e:
            with self.lock:
                self.pending.pop(rid, None)
            raise ConnectionLost(f"cannot send to sandpit serve: {e}") from e
        if not p.event.wait(timeout):
            # Ours gave up first: cancel it on the server (exec only; the
            # other methods answer at once).
            try:
                self.call("exec.cancel", {"request": rid}, timeout=10)
            except SandpitError:
                pass
            p.event.wait(10)
            with self.lock:
                self.pending.pop(rid, None)
            raise Cancelled(f"{method}: no answer within {timeout} s (cancelled)",
                            kind="cancelled")
        if p.reply is None:
            raise ConnectionLost(self.closed or "connection closed")
        if "error" in p.reply:
            raise from_error(p.reply["error"])
        if "result" not in p.reply:
            raise ProtocolError(f"reply without result or error: {p.reply!r}")
        return p.reply["result"]

    def close(self):
        with self.lock:
            self.closed = self.closed or "closed by the client"
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        if self.reader is not threading.current_thread():
            self.reader.join(5)


@dataclass
class ExecResult:
    """What `exec` answered: the command's exit code (124 when its timeout
    ran out), its output (at most serve's --max-output of each stream; the
    byte counts are whole), how long it ran."""
    exit_code: int
    stdout: str
    stderr: str
    timed_out: bool = False
    truncated: bool = False
    stdout_bytes: int = 0
    stderr_bytes: int = 0
    duration_ms: float = 0.0
    raw: dict = field(default_factory=dict, repr=False)

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out


def _drop_none(d: dict) -> dict:
    return {k: v for k, v in d.items() if v is not None}


class Files:
    """ws.files: paths are relative to /workspace and never reach outside it."""

    def __init__(self, ws: "Workspace"):
        self._ws = ws

    def read(self, path: str, *, offset: int = None, length: int = None) -> str:
        """The file's content as text (a binary file: use read_bytes)."""
        r = self._read(path, offset, length)
        if "content" in r:
            return r["content"]
        return base64.b64decode(r.get("content_base64", "")).decode("utf-8", "replace")

    def read_bytes(self, path: str, *, offset: int = None, length: int = None) -> bytes:
        r = self._read(path, offset, length)
        if "content_base64" in r:
            return base64.b64decode(r["content_base64"])
        return r.get("content", "").encode()

    def _read(self, path, offset, length):
        return self._ws._call("file.read", path=path, offset=offset, length=length)

    def write(self, path: str, content: Union[str, bytes], *, mode: int = None) -> int:
        """Write atomically (temp file, fsync, rename); returns the bytes written."""
        if isinstance(content, (bytes, bytearray, memoryview)):
            r = self._ws._call("file.write", path=path, mode=mode,
                               content_base64=base64.b64encode(bytes(content)).decode())
        else:
            r = self._ws._call("file.write", path=path, content=content, mode=mode)
        return r.get("bytes", 0)

    def list(self, path: str = ".", *, recursive: bool = False) -> List[dict]:
        """Entries: {path, type, size, mode, mtime}."""
        return self._ws._call("file.list", path=path, recursive=recursive)["entries"]

    def delete(self, path: str, *, recursive: bool = False) -> None:
        self._ws._call("file.delete", path=path, recursive=recursive)

    def patch(self, diff: str, *, strip: int = 1, dry_run: bool = False) -> dict:
        """Apply a unified diff, all or nothing; raises PatchFailed (with
        its report) when it does not apply."""
        return self._ws._call("patch.apply", patch=diff, strip=strip, dry_run=dry_run)


class Shell:
    """A PTY shell in a workspace; output is read by cursor."""

    def __init__(self, ws: "Workspace", shell_id: int):
        self._ws = ws
        self.id = shell_id
        self.cursor = 0
        self.ended = False
        self.exit_code = None

    def write(self, text: str) -> None:
        self._ws._call("shell.write", shell=self.id, input=text)

    def read(self, *, wait: float = 0, max_bytes: int = None) -> str:
        """Output since the last read (waits up to `wait` s for some)."""
        r = self._ws._call("shell.read", shell=self.id, cursor=self.cursor,
                           wait=wait, max_bytes=max_bytes)
        self.cursor = r.get("next_cursor", self.cursor)
        self.ended = r.get("ended", False)
        self.exit_code = r.get("exit_code")
        return r.get("output", "")

    def expect(self, text: str, timeout: float = 10) -> str:
        """Read until `text` appears; returns everything read."""
        out, end = "", time.monotonic() + timeout
        while text not in out:
            left = end - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"shell {self.id}: {text!r} not seen in {timeout} s: {out!r}")
            out += self.read(wait=min(left, 30))
            if self.ended and text not in out:
                raise SandpitError(f"shell {self.id} ended before {text!r}: {out!r}")
        return out

    def signal(self, sig: str = "INT") -> None:
        self._ws._call("shell.signal", shell=self.id, signal=sig)

    def close(self) -> None:
        self._ws._call("shell.close", shell=self.id)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        try:
            self.close()
        except SandpitError:
            pass


class Shells:
    """ws.shells"""

    def __init__(self, ws: "Workspace"):
        self._ws = ws

    def open(self, command: Command = None, *, cwd: str = None, env: dict = None,
             rows: int = None, cols: int = None) -> Shell:
        r = self._ws._call("shell.open", command=command, cwd=cwd, env=env,
                           rows=rows, cols=cols)
        return Shell(self._ws, r["shell"])


class Services:
    """ws.services: background services with readiness probes and logs."""

    def __init__(self, ws: "Workspace"):
        self._ws = ws

    def start(self, name: str, command: Command, *, cwd: str = None, env: dict = None,
              ready: str = None, ready_timeout: float = None,
              restart_on_failure: bool = None, secret_env: List[str] = None) -> dict:
        """Start it; with `ready` (file:PATH, tcp:HOST:PORT, http:URL,
        cmd:COMMAND) once the probe passes."""
        return self._ws._call("service.start", name=name, command=command, cwd=cwd,
                              env=env, ready=ready, ready_timeout=ready_timeout,
                              restart_on_failure=restart_on_failure,
                              secret_env=secret_env)

    def status(self, name: str) -> dict:
        """{name, state, pid, exit_code, restarts, ...}"""
        return self._ws._call("service.status", name=name)["services"][0]

    def list(self) -> List[dict]:
        return self._ws._call("service.status")["services"]

    def logs(self, name: str, *, stream: str = None, tail: int = None,
             cursor: int = None, wait: float = None, max_bytes: int = None) -> dict:
        """{output, cursor, next_cursor, ended, exit_code, state}."""
        return self._ws._call("service.logs", name=name, stream=stream, tail=tail,
                              cursor=cursor, wait=wait, max_bytes=max_bytes)

    def stop(self, name: str, *, grace: float = None) -> dict:
        return self._ws._call("service.stop", name=name, grace=grace)


class Workspace:
    """A persistent sandbox. As a context manager it is deleted at the end
    of the block (delete_on_exit=False keeps it)."""

    def __init__(self, client: "Sandpit", name: str, info: dict = None,
                 delete_on_exit: bool = True):
        self._client = client
        self.name = name
        self.info = info or {}
        self.delete_on_exit = delete_on_exit
        self.files = Files(self)
        self.shells = Shells(self)
        self.services = Services(self)

    def __repr__(self):
        return f"Workspace({self.name!r})"

    def _call(self, method, _on_output=None, _timeout=None, **params):
        params = _drop_none(params)
        params["workspace"] = self.name
        return self._client._conn.call(method, params, on_output=_on_output,
                                       timeout=_timeout)

    def exec(self, command: Command, *, cwd: str = None, env: Dict[str, str] = None,
             timeout: float = None, stdin: str = None, secret_env: List[str] = None,
             max_output: int = None, on_stdout: Callback = None,
             on_stderr: Callback = None, request_timeout: float = None) -> ExecResult:
        """Run `command` (a list: program and arguments; a string: run by
        /bin/sh -c) and wait for it. `on_stdout`/`on_stderr` get the output
        as it is written. A non-zero exit code is a result, not an error;
        `timeout` is the command's own limit (exit 124), `request_timeout`
        how long this client waits before cancelling it (Cancelled)."""
        cb = None
        if on_stdout or on_stderr:
            def cb(stream, data):
                f = on_stdout if stream == "stdout" else on_stderr
                if f:
                    f(data)
        r = self._call("exec", _on_output=cb, _timeout=request_timeout,
                       command=command if isinstance(command, str) else list(command),
                       cwd=cwd, env=env, timeout=timeout, stdin=stdin,
                       secret_env=secret_env, max_output=max_output,
                       stream=True if cb else None)
        return ExecResult(exit_code=r.get("exit_code", -1), stdout=r.get("stdout", ""),
                          stderr=r.get("stderr", ""), timed_out=r.get("timed_out", False),
                          truncated=r.get("truncated", False),
                          stdout_bytes=r.get("stdout_bytes", 0),
                          stderr_bytes=r.get("stderr_bytes", 0),
                          duration_ms=r.get("duration_ms", 0.0), raw=r)

    def snapshot(self, name: str) -> dict:
        """Capture the files (processes frozen meanwhile; they run on)."""
        return self._call("workspace.snapshot", snapshot=name)

    def snapshots(self) -> List[dict]:
        return self._call("workspace.snapshots")["snapshots"]

    def restore(self, snapshot: str) -> dict:
        """The files become the snapshot's; a running workspace restarts and
        its restartable services come back ({services: [...]})."""
        return self._call("workspace.restore", snapshot=snapshot)

    def delete_snapshot(self, snapshot: str) -> None:
        self._call("workspace.snapshot_delete", snapshot=snapshot)

    def fork(self, snapshot: str, name: str, **policy) -> "Workspace":
        """A new workspace on the snapshot's layers (memory, cpus, pids,
        network, timeout, idle_timeout, image as for create)."""
        r = self._call("workspace.fork", snapshot=snapshot, name=name,
                       policy=_drop_none(policy) or None)
        return Workspace(self._client, r["workspace"], r)

    def diff(self) -> dict:
        return self._call("workspace.diff")

    def reset(self) -> dict:
        return self._call("workspace.reset")

    def stop(self) -> None:
        self._call("workspace.stop")

    def start(self) -> None:
        self._call("workspace.start")

    def delete(self) -> None:
        self._call("workspace.delete")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.delete_on_exit:
            try:
                self.delete()
            except SandpitError:
                pass


def _default_socket() -> Optional[str]:
    p = os.environ.get("SANDPIT_SOCKET")
    if p:
        return p
    return None


class Sandpit:
    """A connection to `sandpit serve`.

    Sandpit(socket) connects to a running server (also $SANDPIT_SOCKET);
    Sandpit() without one starts a private `sandpit serve` on a socket in a
    temporary directory, with its own state directory unless `state_dir`
    is given, and stops it (deleting its workspaces) on close(). As a
    context manager it closes at the end of the block."""

    def __init__(self, socket_path: str = None, *, sandpit_bin: str = None,
                 state_dir: str = None, policy: str = None,
                 connect_timeout: float = 10.0, start_timeout: float = 30.0):
        self._proc = None
        self._tmp = None
        self._owns_state = False
        socket_path = socket_path or _default_socket()
        if socket_path is None:
            socket_path = self._start_private(sandpit_bin, state_dir, policy,
                                              start_timeout)
        try:
            self._conn = _Connection(socket_path, connect_timeout)
        except SandpitError:
            self._stop_private()
            raise
        self.socket_path = socket_path

    def _start_private(self, sandpit_bin, state_dir, policy, start_timeout):
        exe = sandpit_bin or os.environ.get("SANDPIT_BIN") or shutil.which("sandpit")
        if not exe:
            raise ServeFailed("no sandpit binary (install it, or give sandpit_bin=)")
        self._tmp = tempfile.mkdtemp(prefix="sandpit-py-")
        path = os.path.join(self._tmp, "serve.sock")
        env = dict(os.environ)
        if state_dir is None:
            state_dir = os.path.join(self._tmp, "state")
            os.mkdir(state_dir, 0o700)
            self._owns_state = True
        env["SANDPIT_STATE"] = state_dir
        args = [exe, "serve", "--socket", path]
        if policy:
            args += ["--policy", policy]
        self._errlog = open(os.path.join(self._tmp, "serve.log"), "w+b")
        self._proc = subprocess.Popen(args, env=env, stdin=subprocess.DEVNULL,
                                      stdout=subprocess.DEVNULL, stderr=self._errlog)
        end = time.monotonic() + start_timeout
        while not os.path.exists(path):
            if self._proc.poll() is not None or time.monotonic() > end:
                self._errlog.seek(0)
                why = self._errlog.read().decode(errors="replace").strip()
                self._stop_private()
                raise ServeFailed(f"sandpit serve did not start: {why or 'timed out'}")
            time.sleep(0.01)
        return path

    def _stop_private(self):
        if self._proc:
            if self._proc.poll() is None:
                self._proc.send_signal(signal.SIGTERM)
                try:
                    self._proc.wait(10)
                except subprocess.TimeoutExpired:
                    self._proc.kill()
                    self._proc.wait()
            self._proc = None
            self._errlog.close()
        if self._tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    # --- the server's methods ------------------------------------------
    def call(self, method: str, **params) -> Any:
        """Any serve method by name (docs/serve.md)."""
        return self._conn.call(method, _drop_none(params))

    def create(self, name: str = None, *, memory: Union[str, int] = None,
               cpus: float = None, pids: int = None, network: str = None,
               timeout: float = None, idle_timeout: float = None,
               image: str = None, delete_on_exit: bool = True) -> Workspace:
        """Create and start a workspace (limits at most the operator's)."""
        r = self.call("workspace.create", name=name, memory=memory, cpus=cpus,
                      pids=pids, network=network, timeout=timeout,
                      idle_timeout=idle_timeout, image=image)
        return Workspace(self, r["workspace"], r, delete_on_exit)

    def workspace(self, name: str) -> Workspace:
        """A handle on an existing workspace (not deleted on exit)."""
        return Workspace(self, name, delete_on_exit=False)

    def list(self) -> List[dict]:
        return self.call("workspace.list")["workspaces"]

    def methods(self) -> List[str]:
        return self.call("rpc.methods")["methods"]

    def close(self) -> None:
        """Close the connection; a private server's workspaces are deleted
        and the server stopped."""
        if self._proc and self._owns_state:
            try:
                for w in self.list():
                    try:
                        self.call("workspace.delete", workspace=w["name"])
                    except SandpitError:
                        pass
            except SandpitError:
                pass
        self._conn.close()
        self._stop_private()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
