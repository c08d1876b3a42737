"""Workspace secrets (docs/secrets.md): --secret NAME=@FILE / NAME=env:VAR
at create, /run/secrets/NAME inside (0400, the sandbox user's, a read-only
tmpfs), never in the state directory or the supervisor's argv/environ,
environment variables only with exec --secret-env, refusals of bad input,
and redaction of every way bytes leave through sandpit: exec output (the
value split across two writes with a sleep between, on stdout and
stderr, at 64 KiB chunk boundaries), file reads (cat, and file.read
windows that cut a value), shell output, service logs, and `serve` execs
(the wsjob path). Real workspaces; as root and as an ordinary user."""
import base64
import hashlib
import io
import json
import os
import pty
import socket
import subprocess
import tarfile
import time

import pytest

from conftest import SANDPIT, create, sp, start_serve

VALUE = "hunter2-Very-Secret-7f3a"
RED = "[REDACTED:TOKEN]"


@pytest.fixture
def secret_file(tmp_path):
    f = tmp_path / "token"
    f.write_text(VALUE + "\n")  # the trailing newline is dropped
    os.chmod(f, 0o600)
    return str(f)


@pytest.fixture
def sws(state, secret_file):
    """A workspace with secrets TOKEN (a file) and OTHER (an env var)."""
    r = sp(state, "create", "s", "-q", "--secret", "TOKEN=@" + secret_file,
           "--secret", "OTHER=env:SECRET_TEST_OTHER",
           env={"SECRET_TEST_OTHER": "other-value-1234"})
    assert r.returncode == 0, r.stderr
    return "s"


def sh(state, script, *flags, **kw):
    return sp(state, "exec", "s", *flags, "--", "sh", "-c", script, **kw)


class Conn:
    """The workspace's control socket (proto.h)."""

    def __init__(self, state, name):
        self.s = socket.socket(socket.AF_UNIX)
        self.s.connect(os.path.join(state, "workspaces", name, "control.sock"))
        self.f = self.s.makefile("rb")
        self.id = 0

    def call(self, method, **params):
        self.id += 1
        self.s.sendall(json.dumps({"id": self.id, "method": method,
                                   "params": params}).encode() + b"\n")
        self.s.settimeout(30)
        while True:
            m = json.loads(self.f.readline())
            if m.get("id") == self.id:
                if "frame" in m:
                    need = m["frame"]
                    data = b""
                    while len(data) < need:
                        data += self.f.read(need - len(data))
                    m["_frame"] = data
                return m

    def ok(self, method, **params):
        m = self.call(method, **params)
        assert "result" in m, m
        return m

    def close(self):
        self.f.close()
        self.s.close()


def test_files_inside_and_nothing_in_state(state, sws):
    r = sh(state, "stat -c '%a %u %g %s' /run/secrets/TOKEN "
                  "/run/secrets/OTHER /run/secrets; id -u; id -g")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.split("\n")
    uid, gid = lines[3], lines[4]
    assert lines[0] == f"400 {uid} {gid} {len(VALUE)}"
    assert lines[1] == f"400 {uid} {gid} 16"
    assert lines[2].startswith(f"500 {uid} {gid}")
    # The content, checked by its hash (cat would be redacted).
    r = sh(state, "sha256sum < /run/secrets/TOKEN")
    assert r.stdout.split()[0] == hashlib.sha256(VALUE.encode()).hexdigest()
    # Read-only: no new file, no change, no removal.
    r = sh(state, "echo x > /run/secrets/TOKEN || echo no-write; "
                  "touch /run/secrets/new || echo no-create; "
                  "rm -f /run/secrets/TOKEN || echo no-rm")
    assert "no-write" in r.stdout and "no-create" in r.stdout
    assert "no-rm" in r.stdout
    r = sh(state, "cat /run/secrets/TOKEN")
    assert r.stdout == RED
    # Not a byte of either value anywhere in the state directory (state.json,
    # supervisor.log, secrets.names, the layers), nor in the supervisor's
    # argv or environment.
    for root, dirs, files in os.walk(state):
        for n in files:
            p = os.path.join(root, n)
            if not os.path.isfile(p) or os.path.islink(p):
                continue
            try:
                data = open(p, "rb").read()
            except PermissionError:
                continue
            assert VALUE.encode() not in data, p
            assert b"other-value-1234" not in data, p
    names = open(os.path.join(state, "workspaces", "s",
                              "secrets.names")).read()
    assert names == "TOKEN\nOTHER\n"
    st = json.loads(open(os.path.join(state, "workspaces", "s",
                                      "state.json")).read())
    pid = st["supervisor_pid"]
    for f in ("cmdline", "environ"):
        try:
            data = open(f"/proc/{pid}/{f}", "rb").read()
        except PermissionError:
            continue
        assert VALUE.encode() not in data
        # env:VAR: removed from the supervisor's environment once read
        assert b"other-value-1234" not in data, f


def test_env_only_when_asked(state, sws):
    r = sh(state, 'echo "${TOKEN-unset} ${OTHER-unset}"')
    assert r.stdout == "unset unset\n"
    r = sh(state, 'printf %s "$TOKEN" | sha256sum; echo "$TOKEN"; '
                  'echo "${OTHER-unset}"', "--secret-env", "TOKEN")
    out = r.stdout.split("\n")
    assert out[0].split()[0] == hashlib.sha256(VALUE.encode()).hexdigest()
    assert out[1] == RED
    assert out[2] == "unset"
    # For that exec only.
    assert sh(state, 'echo "${TOKEN-unset}"').stdout == "unset\n"
    r = sh(state, "true", "--secret-env", "NOPE")
    assert r.returncode == 125
    assert r.stderr.startswith("sandpit: ") and "no such secret" in r.stderr
    assert r.stderr.count("\n") == 1


@pytest.mark.parametrize("spec,why", [
    ("TOKEN=@{short}", "shorter than 4"),
    ("1BAD=@{file}", "bad name"),
    ("A-B=@{file}", "bad name"),
    ("A" * 65 + "=@{file}", "bad name"),
    ("=@{file}", "bad name"),
    ("TOKEN=@/nonexistent/x", "cannot read"),
    ("TOKEN=@{dir}", "directory"),
    ("TOKEN=env:SECRET_TEST_UNSET_VAR", "not set"),
    ("TOKEN=plain-value-in-argv", "@FILE or env:VAR"),
    ("TOKEN", "expected NAME=@FILE"),
    ("TOKEN=@{big}", "longer than"),
])
def test_refusals(state, tmp_path, secret_file, spec, why):
    short = tmp_path / "short"
    short.write_text("abc\n")
    big = tmp_path / "big"
    big.write_bytes(b"x" * (64 * 1024 + 1))
    spec = spec.format(short=short, file=secret_file, dir=tmp_path, big=big)
    r = sp(state, "create", "w", "-q", "--secret", spec)
    assert r.returncode == 125, r.stdout
    assert r.stderr.startswith("sandpit: ") and why in r.stderr, r.stderr
    assert r.stderr.count("\n") == 1
    assert not os.path.exists(os.path.join(state, "workspaces", "w"))


def test_duplicate_refused(state, secret_file):
    r = sp(state, "create", "w", "-q", "--secret", "T=@" + secret_file,
           "--secret", "T=@" + secret_file)
    assert r.returncode == 125 and "twice" in r.stderr
    assert not os.path.exists(os.path.join(state, "workspaces", "w"))


def test_exec_output_split_across_writes(state, sws):
    # The value in two writes with a sleep between: two reads for the relay.
    script = ('head -c 9 /run/secrets/TOKEN; sleep 0.5; '
              'tail -c +10 /run/secrets/TOKEN; echo; '
              '(head -c 3 /run/secrets/TOKEN; sleep 0.3; '
              'tail -c +4 /run/secrets/TOKEN; echo " on stderr") >&2; '
              'cat /run/secrets/OTHER; echo; exit 3')
    r = sh(state, script)
    assert r.returncode == 3
    assert VALUE not in r.stdout and VALUE not in r.stderr
    assert r.stdout == RED + "\n[REDACTED:OTHER]\n"
    assert r.stderr == RED + " on stderr\n"
    # Much output, a value across each 64 KiB boundary, all of it intact.
    script = ('i=0; while [ $i -lt 24 ]; do head -c 65530 /dev/zero | '
              "tr '\\0' a; cat /run/secrets/TOKEN; i=$((i+1)); done")
    r = sp(state, "exec", "s", "--", "sh", "-c", script)
    assert r.returncode == 0
    assert r.stdout == ("a" * 65530 + RED) * 24
    # stdout to /dev/null is not relayed (nothing leaves); stderr still is.
    r = subprocess.run([SANDPIT, "exec", "s", "--", "sh", "-c",
                        "cat /run/secrets/TOKEN; cat /run/secrets/TOKEN >&2"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                       env=dict(os.environ, SANDPIT_STATE=state))
    assert r.returncode == 0 and r.stderr == RED.encode()
    # Without secrets nothing changes (the no-relay path).
    other = create(state, "plain")
    r = sp(state, "exec", other, "--", "sh", "-c",
           f"printf {VALUE}; ls /run/secrets 2>/dev/null || echo none")
    assert r.stdout == VALUE + "none\n"


def test_exec_left_behind_process(state, sws):
    # A background process left holding stdout: it ends with the exec
    # (issue 18: an exec ends everything it started), so the status comes
    # at once with the output so far, and nothing flows later.
    t = time.monotonic()
    p = subprocess.Popen([SANDPIT, "exec", "s", "--", "sh", "-c",
                          "cat /run/secrets/TOKEN; echo done; "
                          "(sleep 5; cat /run/secrets/TOKEN) &"],
                         stdout=subprocess.PIPE,
                         env=dict(os.environ, SANDPIT_STATE=state))
    assert p.wait(timeout=15) == 0
    assert time.monotonic() - t < 4.5
    assert p.stdout.read() == (RED + "done\n").encode()
    # A client that goes away: the command is cancelled, nothing leaks.
    p = subprocess.Popen([SANDPIT, "exec", "s", "--", "sh", "-c",
                          "while :; do cat /run/secrets/TOKEN; done"],
                         stdout=subprocess.PIPE,
                         env=dict(os.environ, SANDPIT_STATE=state))
    data = p.stdout.read(100000)
    p.kill()
    p.wait()
    assert VALUE.encode() not in data and RED.encode() in data
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        r = sh(state, "ps -e -o comm= | grep -c '^cat$' || true")
        if r.stdout.strip() == "0":
            break
        time.sleep(0.3)
    assert r.stdout.strip() == "0"


def test_file_reads(state, sws, tmp_path):
    r = sh(state, "printf 'head ' > f; cat /run/secrets/TOKEN >> f; "
                  "printf ' tail' >> f; head -c 300 /dev/urandom > bin; "
                  "cat /run/secrets/TOKEN >> bin")
    assert r.returncode == 0
    r = sp(state, "cat", "s", "f")
    assert r.stdout == "head " + RED + " tail"
    r = subprocess.run([SANDPIT, "cat", "s", "bin"], capture_output=True,
                       env=dict(os.environ, SANDPIT_STATE=state))
    assert r.stdout.endswith(RED.encode()) and len(r.stdout) == 300 + len(RED)
    # Reads in windows of every size, each cutting the value somewhere:
    # put together they are the whole file redacted, nothing of the value.
    c = Conn(state, "s")
    size = len("head " + VALUE + " tail")
    for win in (1, 3, 5, 7, 16, 64):
        out = b""
        off = 0
        while off < size:
            m = c.ok("file.read", path="f", offset=off, length=win)
            res = m["result"]
            out += m.get("_frame", b"")
            off += res.get("raw_length", res["length"])
        assert out == ("head " + RED + " tail").encode(), (win, out)
    c.close()
    # Archives: export (and cp of a directory) redact each file's content,
    # sizes in the headers adding up; cp of a file goes through reads.
    import io
    import tarfile
    r = subprocess.run([SANDPIT, "export", "s"], capture_output=True,
                       env=dict(os.environ, SANDPIT_STATE=state))
    assert r.returncode == 0, r.stderr
    assert VALUE.encode() not in r.stdout
    with tarfile.open(fileobj=io.BytesIO(r.stdout)) as t:
        assert t.extractfile("f").read() == ("head " + RED + " tail").encode()
        b = t.extractfile("bin").read()
        assert len(b) == 300 + len(RED) and b.endswith(RED.encode())
    out = tmp_path / "out"
    out.mkdir()
    os.chmod(out, 0o777)
    r = sp(state, "cp", "s:f", str(out / "f"))
    assert r.returncode == 0, r.stderr
    assert (out / "f").read_text() == "head " + RED + " tail"
    sh(state, "mkdir -p d && cp f d/g")
    r = sp(state, "cp", "s:d", str(out / "d"))
    assert r.returncode == 0, r.stderr
    assert (out / "d" / "g").read_text() == "head " + RED + " tail"


def test_shell_output(state, sws):
    c = Conn(state, "s")
    shell = c.ok("shell.open", argv=["sh"])["result"]["shell"]
    cmd = ("head -c 5 /run/secrets/TOKEN; sleep 0.5; "
           "tail -c +6 /run/secrets/TOKEN; echo; echo END-$((6*7))\n")
    c.ok("shell.write", shell=shell, data=base64.b64encode(cmd.encode())
         .decode())
    out = b""
    cursor = 0
    deadline = time.monotonic() + 15
    while b"END-42" not in out and time.monotonic() < deadline:
        r = c.ok("shell.read", shell=shell, cursor=cursor, wait=1.0)["result"]
        cursor = r["next_cursor"]
        out += base64.b64decode(r["data"])
    assert b"END-42" in out, out
    assert VALUE.encode() not in out
    assert RED.encode() in out
    c.ok("shell.close", shell=shell)
    c.close()


def test_service_logs(state, sws):
    r = sp(state, "service", "start", "s", "leaky", "--", "sh", "-c",
           "head -c 7 /run/secrets/TOKEN; sleep 0.5; "
           "tail -c +8 /run/secrets/TOKEN; echo; "
           "cat /run/secrets/TOKEN >&2; sleep 100")
    assert r.returncode == 0, r.stderr
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        out = sp(state, "service", "logs", "s", "leaky").stdout
        if RED in out:
            break
        time.sleep(0.2)
    assert out == RED + "\n"
    err = sp(state, "service", "logs", "s", "leaky", "--stderr").stdout
    assert VALUE not in err
    sp(state, "service", "stop", "s", "leaky")


def test_serve_exec(state, sws, tmp_path):
    # `serve` runs execs as jobs (wsjob.c) that capture the output.
    path = str(tmp_path / "s.sock")
    p = start_serve(state, path, stderr=subprocess.PIPE)
    try:
        s = socket.socket(socket.AF_UNIX)
        s.connect(path)
        f = s.makefile("rb")
        s.sendall(json.dumps({
            "jsonrpc": "2.0", "id": 1, "method": "exec",
            "params": {"workspace": "s", "command":
                       "head -c 4 /run/secrets/TOKEN; sleep 0.4; "
                       "tail -c +5 /run/secrets/TOKEN"}}).encode() + b"\n")
        while True:
            m = json.loads(f.readline())
            if m.get("id") == 1:
                break
        assert m["result"]["stdout"] == RED, m
        # file.read in small parts, following next_offset: the parts put
        # together are the file redacted.
        sh(state, "printf 'head ' > f; cat /run/secrets/TOKEN >> f; "
                  "printf ' tail' >> f")
        out, off, n = "", 0, 1
        while off is not None and n < 50:
            n += 1
            s.sendall(json.dumps({
                "jsonrpc": "2.0", "id": n, "method": "file.read",
                "params": {"workspace": "s", "path": "f", "offset": off,
                           "length": 7}}).encode() + b"\n")
            while True:
                m = json.loads(f.readline())
                if m.get("id") == n:
                    break
            out += m["result"]["content"]
            off = m["result"]["next_offset"]
        assert out == "head " + RED + " tail"
        s.close()
    finally:
        p.terminate()
        p.wait(timeout=10)


def test_stop_start_needs_the_secrets(state, sws, secret_file):
    assert sp(state, "stop", "s").returncode == 0
    r = sp(state, "start", "s")
    assert r.returncode == 125
    assert "TOKEN, OTHER" in r.stderr and "--secret" in r.stderr
    r = sp(state, "start", "s", "--secret", "TOKEN=@" + secret_file)
    assert r.returncode == 125 and "for OTHER" in r.stderr
    r = sp(state, "start", "s", "--secret", "TOKEN=@" + secret_file,
           "--secret", "OTHER=env:SECRET_TEST_OTHER",
           env={"SECRET_TEST_OTHER": "other-value-1234"})
    assert r.returncode == 0, r.stderr
    r = sh(state, "cat /run/secrets/TOKEN /run/secrets/OTHER")
    assert r.stdout == RED + "[REDACTED:OTHER]"
    # reset of a running workspace with secrets is refused up front
    r = sp(state, "reset", "s")
    assert r.returncode == 125 and "secrets" in r.stderr
    assert sh(state, "true").returncode == 0


def test_secret_env_hostile_requests(state, sws):
    # Straight on the control socket: three fds and a bad "secret_env".
    def exec_req(secret_env):
        s = socket.socket(socket.AF_UNIX)
        s.connect(os.path.join(state, "workspaces", "s", "control.sock"))
        r, w = os.pipe()
        req = {"id": 1, "method": "exec", "params": {
            "argv": ["sh", "-c", 'printf %s "$TOKEN" | wc -c'],
            "secret_env": secret_env}}
        nul = os.open("/dev/null", os.O_RDWR)
        socket.send_fds(s, [json.dumps(req).encode() + b"\n"], [nul, w, nul])
        os.close(w)
        os.close(nul)
        f = s.makefile("rb")
        s.settimeout(30)
        m = json.loads(f.readline())
        out = os.read(r, 1000)
        os.close(r)
        s.close()
        return m, out

    for bad in ["TOKEN", [1], [None], {"a": 1}, ["NOPE"],
                ["TOKEN"] * 33, ["../etc/passwd"]]:
        m, _ = exec_req(bad)
        assert "error" in m, (bad, m)
        assert VALUE not in json.dumps(m)
    m, out = exec_req(["TOKEN"])
    assert m["result"]["status"] == 0, m
    assert out.strip() == str(len(VALUE)).encode()


def test_binary_value(state, tmp_path):
    # A value with a NUL and bytes that are not UTF-8: a file, redacted,
    # but no environment variable.
    val = b"\x00\xffbin\x01ary\xfe"
    f = tmp_path / "bin"
    f.write_bytes(val)
    create(state, "b", "--secret", "BIN=@" + str(f))
    r = subprocess.run([SANDPIT, "exec", "b", "--", "sh", "-c",
                        "cat /run/secrets/BIN; wc -c < /run/secrets/BIN"],
                       capture_output=True,
                       env=dict(os.environ, SANDPIT_STATE=state))
    assert r.stdout == b"[REDACTED:BIN]" + str(len(val)).encode() + b"\n"
    r = sp(state, "exec", "b", "--secret-env", "BIN", "--", "true")
    assert r.returncode == 125 and "cannot be an environment" in r.stderr


def test_egress_log_redacted(state, tmp_path):
    # A host name the program asks the egress proxy for, carrying a
    # secret: the 403 page it gets (exec output) and `net log` are
    # redacted.
    tok = "leakytoken42"
    f = tmp_path / "t"
    f.write_text(tok)
    create(state, "n", "--net", "allow:localhost:9", "--net-allow-private",
           "--secret", "TOKEN=@" + str(f))
    r = sp(state, "exec", "n", "--", "env", "-u", "NO_PROXY", "-u",
           "no_proxy", "curl", "-sS", "-m", "20", "-w", "\n%{http_code}",
           f"http://{tok}.invalid/")
    assert r.stdout.endswith("\n403"), r.stdout + r.stderr
    assert tok not in r.stdout and "[REDACTED:TOKEN].invalid" in r.stdout
    r = sp(state, "net", "log", "n", "--json")
    assert r.returncode == 0, r.stderr
    evs = [json.loads(l) for l in r.stdout.splitlines()]
    assert evs[-1]["host"] == "[REDACTED:TOKEN].invalid", evs
    assert tok not in r.stdout


def test_names_and_messages_redacted(state, sws):
    # A file named after a secret, a link pointing at it: the file API's
    # listings and stat (through the supervisor) are redacted; shell reads
    # still decode (their base64 is left alone).
    r = sh(state, 'v=$(cat /run/secrets/TOKEN); mkdir d; touch "d/$v"; '
                  'ln -s "$v" d/link')
    assert r.returncode == 0, r.stderr
    r = sp(state, "ls", "s", "d", "--json")
    assert r.returncode == 0, r.stderr
    assert VALUE not in r.stdout and RED in r.stdout
    r = sp(state, "stat", "s", "d/link")
    assert VALUE not in r.stdout and RED in r.stdout
    r = sp(state, "cat", "s", "d/nonexistent-" + VALUE)
    assert r.returncode != 0 and VALUE not in r.stderr


def test_timeout_and_no_relay_left(state, sws):
    r = sh(state, "cat /run/secrets/TOKEN; sleep 30", "--timeout", "1",
           timeout=30)
    assert r.returncode == 124
    assert r.stdout == RED
    for _ in range(20):
        sh(state, "cat /run/secrets/TOKEN >&2; echo x")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        r = sh(state, "ps -e -o comm= | grep -c '^sandpit-relay$' || true")
        # (the relay of this very exec is the one left)
        if r.stdout.strip() == "1":
            break
        time.sleep(0.2)
    assert r.stdout.strip() == "1"


# ---- descriptors that lead out (docs/secrets.md) ----------------------------

def _exec_with(state, script, stdin, stdout, *flags, ws="s"):
    e = dict(os.environ, SANDPIT_STATE=state)
    return subprocess.run([SANDPIT, "exec", ws, *flags, "--", "sh", "-c",
                           script], stdin=stdin, stdout=stdout,
                          stderr=subprocess.PIPE, env=e, timeout=60)


def _drain(sock):
    sock.setblocking(False)
    out = b""
    try:
        while True:
            b = sock.recv(65536)
            if not b:
                break
            out += b
    except BlockingIOError:
        pass
    return out


def test_stdin_socket_not_a_way_out(state, sws):
    """exec -i with the caller's stdin a socketpair (as agents run tools):
    writing the secret to fd 0 never reaches the caller's peer."""
    mine, theirs = socket.socketpair()
    mine.sendall(b"input line\n")
    r = _exec_with(state, "read l; echo \"got $l\"; "
                   "cat /run/secrets/TOKEN >&0; echo rc=$?",
                   theirs, subprocess.PIPE, "-i")
    leaked = _drain(mine)
    theirs.close()
    mine.close()
    assert VALUE.encode() not in leaked, leaked
    assert leaked == b"", leaked
    assert b"got input line" in r.stdout, r
    assert b"rc=0" not in r.stdout, r  # fd 0 is a pipe's read end


def test_stdout_socket_redacted_and_unreadable(state, sws):
    """stdout a socket: the output is redacted, and the command cannot read
    what the caller's peer sends on it."""
    mine, theirs = socket.socketpair()
    mine.sendall(b"from the peer\n")
    r = _exec_with(state, "cat /run/secrets/TOKEN; echo; "
                   "head -c 13 <&1 >&2; echo rc=$? >&2",
                   subprocess.DEVNULL, theirs)
    out = _drain(mine)
    theirs.close()
    mine.close()
    assert VALUE.encode() not in out and RED.encode() in out, out
    assert b"from the peer" not in r.stderr, r.stderr
    assert b"rc=0" not in r.stderr, r.stderr
    # The same in a workspace without secrets (no redacting relay there).
    create(state, "plain")
    mine, theirs = socket.socketpair()
    mine.sendall(b"from the peer\n")
    r = _exec_with(state, "head -c 13 <&1 >&2; echo rc=$? >&2",
                   subprocess.DEVNULL, theirs, ws="plain")
    theirs.close()
    mine.close()
    assert b"from the peer" not in r.stderr, r.stderr
    assert b"rc=0" not in r.stderr, r.stderr


def test_stdout_terminal_unreadable(state):
    """Without -i/-t the caller's terminal is never readable: fd 1 is a
    terminal outside, a write-only pipe inside."""
    create(state, "plain")
    master, slave = pty.openpty()
    os.write(master, b"typed by the user\n")
    r = _exec_with(state, "head -c 5 <&1 >&2; echo rc=$? >&2; "
                   "test -t 1 && echo tty >&2; true", subprocess.DEVNULL,
                   slave, ws="plain")
    os.close(slave)
    assert b"typed" not in r.stderr, r.stderr
    assert b"rc=0" not in r.stderr and b"tty" not in r.stderr, r.stderr
    os.close(master)


def test_raw_client_writable_stdin_refused(state, sws):
    """A client of the control socket cannot hand in a socket or terminal
    as stdin, nor a pipe's read end as stdout."""
    req = {"id": 1, "method": "exec", "params": {"argv": ["true"]}}
    a, b = socket.socketpair()
    r, w = os.pipe()
    nul = os.open("/dev/null", os.O_RDWR)
    for fds, want in [([a.fileno(), w, w], "refused stdin"),
                      ([r, r, w], "refused stdout"),
                      ([r, w, a.fileno()], "refused stderr")]:
        s = socket.socket(socket.AF_UNIX)
        s.connect(os.path.join(state, "workspaces", "s", "control.sock"))
        socket.send_fds(s, [json.dumps(req).encode() + b"\n"], fds)
        s.settimeout(30)
        m = json.loads(s.makefile("rb").readline())
        s.close()
        assert want in m.get("error", {}).get("message", ""), (want, m)
    # Control: the right kinds run.
    s = socket.socket(socket.AF_UNIX)
    s.connect(os.path.join(state, "workspaces", "s", "control.sock"))
    socket.send_fds(s, [json.dumps(req).encode() + b"\n"], [nul, w, nul])
    s.settimeout(30)
    m = json.loads(s.makefile("rb").readline())
    s.close()
    assert m["result"]["status"] == 0, m
    for fd in (r, w, nul):
        os.close(fd)
    a.close()
    b.close()


def test_symlink_targets_redacted_in_export_and_cp(state, sws, tmp_path):
    """export and cp NAME:DIR carry link targets redacted, as stat does."""
    assert sh(state, 'mkdir d && ln -s "x/$(cat /run/secrets/TOKEN)/y" d/l'
              ).returncode == 0
    e = dict(os.environ, SANDPIT_STATE=state)
    r = subprocess.run([SANDPIT, "export", "s", "d"], capture_output=True,
                       env=e, timeout=60)
    assert r.returncode == 0, r.stderr
    assert VALUE.encode() not in r.stdout
    with tarfile.open(fileobj=io.BytesIO(r.stdout)) as t:
        assert t.getmember("d/l").linkname == "x/" + RED + "/y"
    out = tmp_path / "cpout"
    r = sp(state, "cp", "s:d", str(out))
    assert r.returncode == 0, r.stderr
    assert os.readlink(out / "l") == "x/" + RED + "/y"
