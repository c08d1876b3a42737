"""Shells, services and published ports in a workspace
(docs/shells-services.md): PTY shells driven by cursor reads over the
control socket, resize, signals to the foreground job, survival of a
client's kill -9, TIOCSTI refused, the terminal attach under tmux;
services with every readiness kind (pass and fail), log rings past their
size, restart on failure, stop; a published port serving HTTP from a
service inside to many concurrent host clients. Real workspaces, each test
with its own SANDPIT_STATE."""
import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request

import pytest

from conftest import SANDPIT, create, sp


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


class Conn:
    """One control-socket connection speaking the wire protocol."""

    def __init__(self, state, name):
        self.s = socket.socket(socket.AF_UNIX)
        self.s.connect(os.path.join(state, "workspaces", name, "control.sock"))
        self.f = self.s.makefile("rb")
        self.id = 0

    def call(self, method, timeout=30, **params):
        self.id += 1
        self.s.sendall(json.dumps({"id": self.id, "method": method,
                                   "params": params}).encode() + b"\n")
        self.s.settimeout(timeout)
        while True:
            m = json.loads(self.f.readline())
            if m.get("id") == self.id:
                return m

    def ok(self, method, **params):
        m = self.call(method, **params)
        assert "result" in m, m
        return m["result"]

    def close(self):
        self.s.close()


class Shell:
    def __init__(self, conn, **params):
        self.c = conn
        self.id = conn.ok("shell.open", **params)["shell"]
        self.cursor = 0
        self.out = b""

    def write(self, data):
        if isinstance(data, str):
            data = data.encode()
        return self.c.call("shell.write", shell=self.id,
                           data=base64.b64encode(data).decode())

    def read(self, wait=1.0):
        r = self.c.ok("shell.read", shell=self.id, cursor=self.cursor,
                      wait=wait)
        self.cursor = r["next_cursor"]
        self.out += base64.b64decode(r["data"])
        return r

    def until(self, pat, timeout=10):
        if isinstance(pat, str):
            pat = pat.encode()
        mark = len(self.out)
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if pat in self.out[mark:]:
                return True
            r = self.read()
            if r["state"] == "exited" and r["next_cursor"] == r["end"]:
                break
        return pat in self.out[mark:]


def test_shell_repl_by_cursor(state):
    create(state, "w")
    c = Conn(state, "w")
    have_py = sp(state, "exec", "w", "--", "sh", "-c",
                 "command -v python3").returncode == 0
    if have_py:
        sh = Shell(c, argv=["python3", "-i", "-q"])
        assert sh.until(">>> ")
        sh.write("print(6*7)\n")
        assert sh.until("42")
        sh.write("import os; print(os.isatty(0), os.getsid(0) == os.getpid())\n")
        assert sh.until("True True")
        sh.write("exit(3)\n")
    else:
        sh = Shell(c, argv=["sh"])
        sh.write("echo $((6*7))\n")
        assert sh.until("42")
        sh.write("exit 3\n")
    end = time.monotonic() + 10
    while time.monotonic() < end:
        r = sh.read()
        if r["state"] == "exited":
            break
    assert r["state"] == "exited" and r["exit_code"] == 3
    # An exited shell keeps its output until closed; reading from 0 gives
    # the same bytes.
    r = c.ok("shell.read", shell=sh.id, cursor=0)
    assert base64.b64decode(r["data"]) == sh.out[: len(base64.b64decode(r["data"]))]
    listing = sp(state, "shells", "w")
    assert listing.returncode == 0 and "exited" in listing.stdout
    c.ok("shell.close", shell=sh.id)
    assert c.ok("shell.list")["shells"] == []


def test_piped_shell_ends_at_eof_and_close_command(state):
    """`printf 'echo hi\\n' | sandpit shell ws` runs the input and exits at
    its end (the shell's input ends as at a terminal's ^D), with the
    shell's exit status; `sandpit shell NAME --close ID` hangs a shell up."""
    create(state, "w")
    env = dict(os.environ, SANDPIT_STATE=state)
    r = subprocess.run([SANDPIT, "shell", "w"], input="echo hi-$((6*7))\n",
                       env=env, capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert "hi-42" in r.stdout
    # a last line without a newline runs too; its exit status is ours
    r = subprocess.run([SANDPIT, "shell", "w"], input="echo x; exit 7",
                       env=env, capture_output=True, text=True, timeout=30)
    assert r.returncode == 7, (r.stdout, r.stderr)
    lst = json.loads(sp(state, "shells", "w", "--json").stdout)
    assert lst and all(s["state"] == "exited" for s in lst), lst
    # --close: a shell whose client keeps its input open
    p = subprocess.Popen([SANDPIT, "shell", "w", "--", "sleep", "300"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=env)
    try:
        def running():
            lst = json.loads(sp(state, "shells", "w", "--json").stdout)
            return [s["shell"] for s in lst if s["state"] == "running"]
        deadline = time.time() + 10
        while time.time() < deadline and not running():
            time.sleep(0.05)
        ids = running()
        assert len(ids) == 1
        r = sp(state, "shell", "w", "--close", str(ids[0]))
        assert r.returncode == 0, r.stderr
        p.wait(timeout=10)  # the attach ends with the shell
        assert not running()
    finally:
        p.kill()
        p.wait()
    r = sp(state, "shell", "w", "--close", "999")
    assert r.returncode == 125 and "no shell 999" in r.stderr
    r = sp(state, "shell", "w", "--close")
    assert r.returncode == 125 and "--close wants a shell id" in r.stderr


def test_default_shell_resize_and_env(state):
    create(state, "w")
    c = Conn(state, "w")
    sh = Shell(c, rows=30, cols=90, env=["FOO=bar"], cwd="/tmp")
    sh.write("stty size; echo $FOO; pwd; tty\n")
    assert sh.until("30 90")
    assert sh.until("/dev/pts/") or b"/dev/pts/" in sh.out
    assert b"bar\r\n/tmp\r\n" in sh.out
    c.ok("shell.resize", shell=sh.id, rows=50, cols=132)
    sh.write("stty size\n")
    assert sh.until("50 132")
    has_bash = sp(state, "exec", "w", "--", "sh", "-c",
                  "command -v bash").returncode == 0
    info = c.ok("shell.status", shell=sh.id)
    assert info["command"].startswith("bash --noprofile" if has_bash else "sh")


def test_signals_reach_foreground_job(state):
    create(state, "w")
    c = Conn(state, "w")
    sh = Shell(c, argv=["sh"])
    # (An interactive shell drops the rest of a line whose job got SIGINT:
    # ask for the status on the next line.)
    sh.write("sleep 100\n")
    time.sleep(0.5)
    c.ok("shell.signal", shell=sh.id, signal=int(signal.SIGINT))
    sh.write("echo rc=$?\n")
    assert sh.until("rc=130")
    sh.write("sleep 100\n")
    time.sleep(0.5)
    c.ok("shell.signal", shell=sh.id, signal=int(signal.SIGTERM))
    sh.write("echo rc=$?\n")
    assert sh.until("rc=143")
    # Only the signals a terminal user has: others are refused.
    for bad in (11, 19, 0, -1, 64, "x"):
        m = c.call("shell.signal", shell=sh.id, signal=bad)
        assert "error" in m
    # The shell itself is still there.
    sh.write("echo alive\n")
    assert sh.until("alive")
    c.ok("shell.signal", shell=sh.id, signal=int(signal.SIGKILL))
    end = time.monotonic() + 10
    while sh.read()["state"] != "exited" and time.monotonic() < end:
        pass
    assert c.ok("shell.status", shell=sh.id)["exit_code"] == 128 + 9 or \
        c.ok("shell.status", shell=sh.id)["state"] == "exited"


def test_hostile_shell_requests(state):
    create(state, "w")
    c = Conn(state, "w")
    sh = Shell(c, argv=["sh"])
    assert "error" in c.call("shell.write", shell=sh.id, data="!!notbase64")
    assert "error" in c.call("shell.write", shell=999, data="")
    assert "error" in c.call("shell.read", shell=sh.id, cursor=-5)
    assert "error" in c.call("shell.read", shell=sh.id, cursor=0, max=10**9)
    assert "error" in c.call("shell.resize", shell=sh.id, rows=0, cols=10)
    assert "error" in c.call("shell.resize", shell=sh.id, rows=10**6, cols=10)
    assert "error" in c.call("shell.open", argv=[])
    assert "error" in c.call("shell.open", argv=["sh"], env=["NOEQUALS"])
    assert "error" in c.call("shell.open", cwd="/no/such/dir")
    assert "error" in c.call("shell.read", shell="1", cursor=0)
    # Internal methods are not reachable from a client.
    m = c.call("port.connect", port=80)
    assert "error" in m and "unknown method" in m["error"]["message"]
    m = c.call("shutdown")
    assert "error" in m
    # The workspace still serves.
    sh.write("echo fine\n")
    assert sh.until("fine")


def test_output_ring_drops_oldest(state):
    create(state, "w")
    c = Conn(state, "w")
    sh = Shell(c, argv=["sh"])
    sh.write("head -c 3000000 /dev/zero | tr '\\0' a; echo; echo END-MARK\n")
    end = time.monotonic() + 30
    while time.monotonic() < end:
        st = c.ok("shell.status", shell=sh.id)
        if st["end"] > 3000000:
            r = c.ok("shell.read", shell=sh.id, cursor=st["end"] - 200)
            if b"END-MARK" in base64.b64decode(r["data"]):
                break
        time.sleep(0.2)
    r = c.ok("shell.read", shell=sh.id, cursor=0)
    assert r["truncated"] is True
    assert r["dropped"] >= 3000000 - 1024 * 1024 - 4096
    assert r["next_cursor"] - len(base64.b64decode(r["data"])) == r["dropped"]
    # At least 1 MiB is kept.
    assert r["end"] - r["dropped"] >= 1024 * 1024


def test_shell_and_service_survive_client_kill9(state):
    create(state, "w")
    sock = os.path.join(state, "workspaces", "w", "control.sock")
    script = f"""
import json, socket, time, base64
s = socket.socket(socket.AF_UNIX); s.connect({sock!r})
s.sendall(json.dumps({{"id": 1, "method": "shell.open",
                      "params": {{"argv": ["sh"]}}}}).encode() + b"\\n")
print(json.loads(s.makefile().readline())["result"]["shell"], flush=True)
d = base64.b64encode(b"x=survivor; sleep 1000\\n").decode()
s.sendall(json.dumps({{"id": 2, "method": "shell.write",
                      "params": {{"shell": 1, "data": d}}}}).encode() + b"\\n")
s.sendall(json.dumps({{"id": 3, "method": "shell.read",
                      "params": {{"shell": 1, "cursor": 999999, "wait": 300}}}}).encode() + b"\\n")
time.sleep(1000)
"""
    p = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                         text=True)
    sid = int(p.stdout.readline())
    time.sleep(0.5)
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    # A service whose starting client dies while it waits for ready.
    env = dict(os.environ, SANDPIT_STATE=state)
    q = subprocess.Popen([SANDPIT, "service", "start", "w", "svc", "--ready",
                          "file:/tmp/go", "--", "sh", "-c",
                          "sleep 1; touch /tmp/go; exec sleep 1000"], env=env)
    time.sleep(0.3)
    os.kill(q.pid, signal.SIGKILL)
    q.wait()
    c = Conn(state, "w")
    assert c.ok("shell.status", shell=sid)["state"] == "running"
    sh = Shell.__new__(Shell)
    sh.c, sh.id, sh.cursor, sh.out = c, sid, 0, b""
    c.ok("shell.signal", shell=sid, signal=2)
    sh.write("echo $x\n")
    assert sh.until("survivor")
    end = time.monotonic() + 10
    while time.monotonic() < end:
        if c.ok("service.status", name="svc")["state"] == "ready":
            break
        time.sleep(0.1)
    assert c.ok("service.status", name="svc")["state"] == "ready"


def test_tiocsti_refused(state):
    create(state, "w")
    c = Conn(state, "w")
    have_py = sp(state, "exec", "w", "--", "sh", "-c",
                 "command -v python3").returncode == 0
    if not have_py:
        pytest.skip("no python3 inside")
    sh = Shell(c, argv=["sh"])
    sh.write("tty\n")
    assert sh.until("/dev/pts/")
    # From the shell itself, on its own controlling terminal...
    code = ("import fcntl,termios,errno\n"
            "try:\n"
            "    fcntl.ioctl(0, termios.TIOCSTI, b'Z'); print('INJECTED')\n"
            "except OSError as e: print('REFUSED', errno.errorcode[e.errno])\n")
    sh.write(f"python3 -c \"$(printf '%s' '{base64.b64encode(code.encode()).decode()}' | base64 -d)\"\n")
    assert sh.until("REFUSED EPERM")
    assert b"INJECTED" not in sh.out
    # ...and from another process of the workspace, on the shell's pty.
    r = sp(state, "exec", "w", "--", "python3", "-c",
           "import fcntl,termios,errno,os\n"
           "fd=os.open('/dev/pts/0', os.O_RDWR|os.O_NOCTTY)\n"
           "try:\n"
           "    fcntl.ioctl(fd, termios.TIOCSTI, b'Z'); print('INJECTED')\n"
           "except OSError as e: print('REFUSED', errno.errorcode[e.errno])\n")
    assert "REFUSED EPERM" in r.stdout, r.stdout + r.stderr


@pytest.mark.skipif(not shutil.which("tmux"), reason="tmux not installed")
def test_attach_under_tmux(state, tmp_path):
    create(state, "w")
    sock = str(tmp_path / "tmux.sock")
    tm = ["tmux", "-S", sock, "-f", "/dev/null"]
    env = dict(os.environ, SANDPIT_STATE=state, TERM="xterm-256color")
    subprocess.run(tm + ["new-session", "-d", "-x", "100", "-y", "30",
                         "bash --norc --noprofile"], env=env, check=True)
    try:
        def cap():
            return subprocess.run(tm + ["capture-pane", "-p", "-J"],
                                  capture_output=True, text=True).stdout

        def wait(pat, timeout=10):
            end = time.monotonic() + timeout
            while time.monotonic() < end:
                if pat in cap():
                    return True
                time.sleep(0.1)
            return pat in cap()

        def keys(*k):
            subprocess.run(tm + ["send-keys", *k], check=True)

        keys("stty -a | grep -o -- ' -\\?icanon' | sed s/^/before:/", "Enter")
        assert wait("before: icanon")
        keys(f"{SANDPIT} shell w -- sh", "Enter")
        time.sleep(1)
        keys("echo hi-$((2*3)); stty size", "Enter")
        assert wait("hi-6")
        assert wait("30 100")
        subprocess.run(tm + ["resize-window", "-x", "120", "-y", "40"],
                       check=True)
        time.sleep(0.5)
        keys("clear; stty size", "Enter")
        assert wait("40 120")
        keys("C-]")
        assert wait("[detached from shell 1")
        # The terminal is back in cooked mode.
        keys("stty -a | grep -o -- ' -\\?icanon' | sed s/^/after:/", "Enter")
        assert wait("after: icanon")
        # The shell kept running; attach again and end it.
        lst = sp(state, "shells", "w")
        assert "running" in lst.stdout
        keys("clear", "Enter")
        keys(f"{SANDPIT} shell w 1; echo attach-rc=$?", "Enter")
        time.sleep(1)
        keys("echo again-$((3*3))", "Enter")
        assert wait("again-9")
        keys("exit 5", "Enter")
        assert wait("attach-rc=5")
    finally:
        subprocess.run(tm + ["kill-server"], capture_output=True)


# ---- services ------------------------------------------------------------

def svc(state, *args, **kw):
    return sp(state, "service", *args, **kw)


def test_service_readiness_kinds(state):
    port = free_port()
    create(state, "w", "--publish", f"0:{port}")
    # file
    r = svc(state, "start", "w", "f1", "--ready", "file:ready.txt", "--",
            "sh", "-c", "sleep 0.3; touch ready.txt; exec sleep 100")
    assert r.returncode == 0 and "ready" in r.stdout, r.stderr
    r = svc(state, "start", "w", "f2", "--ready", "file:never",
            "--ready-timeout", "0.5", "--", "sleep", "100")
    assert r.returncode == 1 and "readiness timeout" in r.stderr
    st = json.loads(svc(state, "status", "w", "f2", "--json").stdout)
    assert st["state"] == "failed" and st["pid"] is None
    # cmd
    r = svc(state, "start", "w", "c1", "--ready", "cmd:test -e flag", "--",
            "sh", "-c", "sleep 0.3; touch flag; exec sleep 100")
    assert r.returncode == 0, r.stderr
    r = svc(state, "start", "w", "c2", "--ready", "cmd:false",
            "--ready-timeout", "0.5", "--", "sleep", "100")
    assert r.returncode == 1 and "readiness timeout" in r.stderr
    # tcp and http on the published port.
    r = svc(state, "start", "w", "web", "--ready",
            f"http:http://127.0.0.1:{port}/", "--", "python3", "-m",
            "http.server", str(port), "--bind", "127.0.0.1")
    assert r.returncode == 0, r.stderr
    r = svc(state, "start", "w", "t1", "--ready", f"tcp:127.0.0.1:{port}",
            "--", "sleep", "100")
    assert r.returncode == 0, r.stderr
    r = svc(state, "start", "w", "h404", "--ready",
            f"http:http://localhost:{port}/no-such-page", "--ready-timeout",
            "0.7", "--", "sleep", "100")
    assert r.returncode == 1 and "readiness timeout" in r.stderr
    r = svc(state, "start", "w", "t2", "--ready", "tcp:127.0.0.1:1",
            "--ready-timeout", "0.5", "--", "sleep", "100")
    assert r.returncode == 1 and "readiness timeout" in r.stderr
    # exited before ready, with its exit code and last output
    r = svc(state, "start", "w", "dies", "--ready", "file:x", "--", "sh",
            "-c", "echo first; echo 'last words' >&2; exit 7")
    assert r.returncode == 1
    assert "exited before ready (exit code 7)" in r.stderr
    assert "last words" in r.stderr
    ls = svc(state, "ls", "w", "--json")
    states = {s["name"]: s["state"] for s in json.loads(ls.stdout)}
    assert states["f1"] == "ready" and states["web"] == "ready"
    assert states["dies"] == "failed" and states["f2"] == "failed"


def test_http_probe_reads_the_response_before_closing(state):
    """The http: probe reads the whole response: the service sees a clean
    close, not a connection reset (which servers log as an error)."""
    create(state, "w")
    server = ("import http.server, sys\n"
              "class H(http.server.BaseHTTPRequestHandler):\n"
              "    def do_GET(self):\n"
              "        body = b'x' * 20000\n"
              "        self.send_response(200)\n"
              "        self.send_header('Content-Length', str(len(body)))\n"
              "        self.end_headers()\n"
              "        for i in range(0, len(body), 1000):\n"
              "            self.wfile.write(body[i:i + 1000]); self.wfile.flush()\n"
              "    def log_message(self, *a):\n"
              "        pass\n"
              "    def finish(self):\n"
              "        super().finish()\n"
              "        try:\n"
              "            rest = self.connection.recv(10)\n"
              "            print('closed-clean' if rest == b'' else 'more',\n"
              "                  flush=True)\n"
              "        except OSError as e:\n"
              "            print('reset', e, flush=True)\n"
              "http.server.HTTPServer(('127.0.0.1', 8077), H).serve_forever()\n")
    r = svc(state, "start", "w", "web", "--ready",
            "http:http://127.0.0.1:8077/", "--", "python3", "-c", server)
    assert r.returncode == 0, r.stderr
    deadline = time.time() + 10
    out = ""
    while time.time() < deadline and "closed" not in out and "reset" not in out:
        out = svc(state, "logs", "w", "web").stdout
        time.sleep(0.1)
    assert "closed-clean" in out and "reset" not in out, out


def test_service_bad_input(state):
    create(state, "w")
    for name in ("-x", ".x", "a/b", "x" * 65, "", "a b"):
        r = svc(state, "start", "w", name, "--", "true")
        assert r.returncode != 0
    for spec in ("tcp:nohost", "tcp:example.com:80", "http:ftp://x", "bogus:1",
                 "file:", "tcp:127.0.0.1:99999"):
        r = svc(state, "start", "w", "s", "--ready", spec, "--", "true")
        assert r.returncode == 125, (spec, r.stderr)
    r = svc(state, "start", "w", "s", "--restart", "always", "--", "true")
    assert r.returncode == 125
    r = svc(state, "status", "w", "nosuch")
    assert r.returncode == 125 and "no service" in r.stderr
    r = svc(state, "start", "w", "s", "--", "/no/such/cmd")
    assert r.returncode == 0  # started; it fails on its own
    time.sleep(0.3)
    st = json.loads(svc(state, "status", "w", "s", "--json").stdout)
    assert st["exit_code"] == 127 and st["state"] == "failed"
    r = svc(state, "start", "w", "dup", "--", "sleep", "100")
    assert r.returncode == 0
    r = svc(state, "start", "w", "dup", "--", "sleep", "100")
    assert r.returncode == 125 and "already" in r.stderr


def test_service_logs_ring_and_follow(state):
    create(state, "w")
    r = svc(state, "start", "w", "big", "--", "sh", "-c",
            "head -c 10000000 /dev/zero | tr '\\0' a; echo; echo LAST-LINE; "
            "echo err-line >&2; sleep 100")
    assert r.returncode == 0
    end = time.monotonic() + 30
    while time.monotonic() < end:
        st = json.loads(svc(state, "status", "w", "big", "--json").stdout)
        if st["stdout_bytes"] >= 10000000 + 11:
            break
        time.sleep(0.2)
    r = svc(state, "logs", "w", "big")
    assert r.returncode == 0
    assert r.stdout.startswith("[sandpit: ")
    assert "bytes of older output were dropped" in r.stdout.splitlines()[0]
    assert r.stdout.rstrip().endswith("LAST-LINE")
    body = r.stdout.split("\n", 1)[1]
    assert len(body) >= 4 * 1024 * 1024 - 16
    r = svc(state, "logs", "w", "big", "--tail", "1")
    assert r.stdout == "LAST-LINE\n"
    r = svc(state, "logs", "w", "big", "--stderr")
    assert r.stdout == "err-line\n"
    # --follow ends when the service does.
    r = svc(state, "start", "w", "ticker", "--", "sh", "-c",
            "for i in 1 2 3; do echo tick$i; sleep 0.3; done")
    r = svc(state, "logs", "w", "ticker", "--follow", timeout=20)
    assert r.stdout == "tick1\ntick2\ntick3\n"


def test_service_restart_and_stop(state):
    create(state, "w")
    r = svc(state, "start", "w", "flaky", "--restart", "on-failure", "--",
            "sh", "-c", "echo run >> runs; exit 3")
    assert r.returncode == 0
    time.sleep(2.5)
    st = json.loads(svc(state, "status", "w", "flaky", "--json").stdout)
    assert st["restarts"] >= 2, st
    runs = sp(state, "exec", "w", "--", "cat", "runs").stdout.count("run")
    assert runs >= 3
    r = svc(state, "stop", "w", "flaky")
    assert r.returncode == 0
    st = json.loads(svc(state, "status", "w", "flaky", "--json").stdout)
    assert st["state"] in ("exited", "failed") and st["pid"] is None
    # A clean exit is not restarted.
    svc(state, "start", "w", "once", "--restart", "on-failure", "--", "true")
    time.sleep(1.5)
    st = json.loads(svc(state, "status", "w", "once", "--json").stdout)
    assert st["state"] == "exited" and st["restarts"] == 0
    # TERM ends a polite service; one ignoring TERM gets KILL after grace.
    svc(state, "start", "w", "polite", "--", "sleep", "100")
    r = svc(state, "stop", "w", "polite")
    assert "SIGTERM" in r.stdout
    # Ready only once the trap is in place, or the TERM could come first.
    r = svc(state, "start", "w", "stubborn", "--ready", "file:/tmp/trapped",
            "--", "sh", "-c",
            "trap '' TERM; touch /tmp/trapped; sleep 100 & wait; sleep 100")
    assert r.returncode == 0, r.stderr
    t0 = time.monotonic()
    r = svc(state, "stop", "w", "stubborn", "--grace", "0.5")
    assert "SIGKILL" in r.stdout, r.stdout + r.stderr
    assert time.monotonic() - t0 < 5
    st = json.loads(svc(state, "status", "w", "stubborn", "--json").stdout)
    assert st["stopped_by"] == "KILL"
    # Nothing of its process group is left.
    r = sp(state, "exec", "w", "--", "sh", "-c", "ps -e -o comm= | grep -c sleep || true")
    assert r.stdout.strip() == "0"


def test_workspace_stop_stops_services_cleanly(state):
    create(state, "w")
    r = svc(state, "start", "w", "graceful", "--", "sh", "-c",
            "trap 'echo got-term > /workspace/term.txt; exit 0' TERM; "
            "while :; do sleep 0.1; done")
    assert r.returncode == 0
    time.sleep(0.3)
    assert sp(state, "stop", "w").returncode == 0
    with open(os.path.join(state, "workspaces", "w", "workspace",
                           "term.txt")) as f:
        assert f.read() == "got-term\n"


# ---- published ports -----------------------------------------------------

def ports_of(state, name):
    r = sp(state, "ps", "--json")
    for w in json.loads(r.stdout):
        if w["name"] == name:
            return w.get("ports", [])
    return []


def test_published_port_http_many_clients(state, tmp_path):
    inside = free_port()
    create(state, "w", "--publish", f"0:{inside}")
    pts = ports_of(state, "w")
    assert len(pts) == 1 and pts[0]["port"] == inside
    host_port = pts[0]["host_port"]
    assert host_port > 0
    assert f"127.0.0.1:{host_port}->{inside}" in sp(state, "ps").stdout
    # A page of known content, served from inside.
    payload = os.urandom(300000).hex()
    r = sp(state, "exec", "w", "-i", "--", "sh", "-c", "cat > page.txt",
           input=payload)
    assert r.returncode == 0
    r = svc(state, "start", "w", "web", "--ready",
            f"tcp:127.0.0.1:{inside}", "--", "python3", "-m", "http.server",
            str(inside), "--bind", "127.0.0.1")
    assert r.returncode == 0, r.stderr
    url = f"http://127.0.0.1:{host_port}/page.txt"
    with urllib.request.urlopen(url, timeout=10) as resp:
        assert resp.read().decode() == payload
    sv_pid = json.loads(sp(state, "ps", "--json").stdout)[0]["supervisor_pid"]

    def nfds():
        # The supervisor is not dumpable: only root can list its fds.
        try:
            return len(os.listdir(f"/proc/{sv_pid}/fd"))
        except PermissionError:
            return None

    fds_before = nfds()
    errors = []
    results = []

    def client():
        try:
            with urllib.request.urlopen(url, timeout=60) as resp:
                results.append(resp.read().decode() == payload)
        except Exception as e:  # noqa: BLE001
            errors.append(repr(e))

    threads = [threading.Thread(target=client) for _ in range(100)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[:3]
    assert len(results) == 100 and all(results)
    # Clients that vanish mid-transfer leave nothing behind.
    for _ in range(20):
        s = socket.create_connection(("127.0.0.1", host_port))
        s.sendall(b"GET /page.txt HTTP/1.0\r\n\r\n")
        s.recv(100)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                     b"\x01\x00\x00\x00\x00\x00\x00\x00")
        s.close()
    time.sleep(1)
    fds_after = nfds()
    if fds_before is not None:
        assert fds_after <= fds_before + 2, (fds_before, fds_after)
    # And the port still serves.
    with urllib.request.urlopen(url, timeout=10) as resp:
        assert resp.read().decode() == payload


def test_published_port_half_close_and_errors(state):
    inside = free_port()
    hp = free_port()
    create(state, "w", "--publish", f"127.0.0.1:{hp}:{inside}")
    # Nothing listens inside yet: the connection is closed at once.
    s = socket.create_connection(("127.0.0.1", hp), timeout=5)
    s.settimeout(5)
    assert s.recv(10) == b""
    s.close()
    # An echo server that answers only after EOF (needs half-close).
    echo = ("import socket\n"
            f"l=socket.socket(); l.bind(('127.0.0.1',{inside})); l.listen()\n"
            "while True:\n"
            "    c,_=l.accept(); d=b''\n"
            "    while True:\n"
            "        b=c.recv(65536)\n"
            "        if not b: break\n"
            "        d+=b\n"
            "    c.sendall(b'len=%d' % len(d)); c.close()\n")
    r = svc(state, "start", "w", "echo", "--ready", f"tcp:127.0.0.1:{inside}",
            "--", "python3", "-c", echo)
    assert r.returncode == 0, r.stderr
    s = socket.create_connection(("127.0.0.1", hp), timeout=10)
    s.sendall(b"x" * 1000000)
    s.shutdown(socket.SHUT_WR)
    got = b""
    while True:
        b = s.recv(65536)
        if not b:
            break
        got += b
    assert got == b"len=1000000"
    # The host port in use is an error naming it.
    r = sp(state, "create", "w2", "-q", "--publish", f"{hp}:80")
    assert r.returncode == 125 and f"host port {hp}" in r.stderr
    for bad in ("80", "a:80", "1:2:3:4", "0:0", "70000:80", "nohost:1:2",
                "1.2.3.4.5:1:2"):
        r = sp(state, "create", "w3", "-q", "--publish", bad)
        assert r.returncode == 125, bad
