"""`sandpit serve`: JSON-RPC 2.0 on a Unix socket, driven by raw socket
clients: the socket's mode and peer checks, one method per operation, a
whole session, batches, streamed exec output, cancellation, many clients at
once, and the error codes for malformed, unknown, wrong and oversized
requests (which change nothing)."""
import json
import os
import socket
import stat
import subprocess
import threading
import time

import pytest

from conftest import IS_ROOT, SANDPIT, sandpit, start_serve


@pytest.fixture
def server(state, tmp_path):
    path = str(tmp_path / "s.sock")
    p = start_serve(state, path, stderr=subprocess.PIPE)
    yield path
    p.terminate()
    assert p.wait(timeout=10) == 0
    assert not os.path.exists(path)


class Conn:
    def __init__(self, path):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.connect(path)
        self.f = self.s.makefile("rb")
        self.n = 0
        self.notes = []

    def send_raw(self, b):
        self.s.sendall(b)

    def send(self, o):
        self.send_raw(json.dumps(o).encode() + b"\n")

    def recv(self):
        line = self.f.readline()
        assert line, "the server closed the connection"
        return json.loads(line)

    def call(self, method, params=None, raw=False):
        self.n += 1
        m = {"jsonrpc": "2.0", "id": self.n, "method": method}
        if params is not None:
            m["params"] = params
        self.send(m)
        while True:
            r = self.recv()
            if isinstance(r, dict) and r.get("method"):
                self.notes.append(r)
                continue
            assert r.get("id") == self.n, r
            return r if raw else r.get("result", r)

    def close(self):
        self.f.close()
        self.s.close()


def test_socket_mode_and_session(server, state):
    assert stat.S_IMODE(os.stat(server).st_mode) == 0o600
    c = Conn(server)
    ms = c.call("rpc.methods")["methods"]
    for m in ["workspace.create", "workspace.list", "workspace.stop",
              "workspace.delete", "workspace.diff", "exec", "file.read",
              "file.write", "patch.apply", "shell.open", "service.start"]:
        assert m in ms
    r = c.call("workspace.create", {"name": "s1"})
    assert r["workspace"] == "s1" and r["state"] == "running"
    assert [w["name"] for w in c.call("workspace.list")["workspaces"]] == ["s1"]
    assert c.call("file.write", {"workspace": "s1", "path": "a.txt", "content": "one\n"})["bytes"] == 4
    p = "--- a/a.txt\n+++ b/a.txt\n@@ -1 +1 @@\n-one\n+two\n"
    assert c.call("patch.apply", {"workspace": "s1", "patch": p})["applied"] is True
    r = c.call("exec", {"workspace": "s1", "command": ["cat", "a.txt"]})
    assert r["exit_code"] == 0 and r["stdout"] == "two\n"
    r = c.call("exec", {"workspace": "s1", "command": "exit 7"})
    assert r["exit_code"] == 7
    d = c.call("workspace.diff", {"workspace": "s1"})
    assert any(x.endswith("a.txt") for x in d["added"] + d["modified"])
    assert c.call("workspace.reset", {"workspace": "s1"})["reset"] is True
    r = c.call("file.read", {"workspace": "s1", "path": "a.txt"}, raw=True)
    assert r["error"]["code"] == -32000, r
    d = c.call("workspace.diff", {"workspace": "s1"})
    assert not any(x.endswith("a.txt") for x in d["added"] + d["modified"])
    assert c.call("workspace.stop", {"workspace": "s1"})["state"] == "stopped"
    r = c.call("exec", {"workspace": "s1", "command": "true"}, raw=True)
    assert r["error"]["code"] == -32000 and "not running" in r["error"]["message"]
    assert c.call("workspace.delete", {"workspace": "s1"})["deleted"] is True
    assert json.loads(sandpit("ps", "--json", env={"SANDPIT_STATE": state}).stdout) == []
    c.close()


def test_error_codes_change_nothing(server, state):
    c = Conn(server)
    c.send_raw(b"{oops\n")
    assert c.recv()["error"]["code"] == -32700
    c.send_raw(b'"str"\n')
    assert c.recv()["error"]["code"] == -32600
    c.send({"jsonrpc": "2.0", "id": 1})
    assert c.recv()["error"]["code"] == -32600
    c.send({"id": 2, "method": "workspace.list"})
    r = c.recv()
    assert r["error"]["code"] == -32600 and r["id"] == 2
    assert c.call("no.such", {}, raw=True)["error"]["code"] == -32601
    assert c.call("workspace.create", [1, 2], raw=True)["error"]["code"] == -32602
    r = c.call("workspace.create", {"name": 5}, raw=True)
    assert r["error"]["code"] == -32602 and "name" in r["error"]["message"]
    r = c.call("workspace.create", {"nam": "x"}, raw=True)
    assert r["error"]["code"] == -32602 and "nam" in r["error"]["message"]
    r = c.call("exec", {"workspace": "zz", "command": {"a": 1}}, raw=True)
    assert r["error"]["code"] == -32602
    r = c.call("workspace.create", {"network": "host"}, raw=True)
    assert r["error"]["code"] == -32001 and r["error"]["data"]["kind"] == "denied"
    # Oversized: an error, and the connection goes on.
    c.send_raw(b'{"jsonrpc":"2.0","id":9,"method":"x","params":{"a":"' + b"x" * (17 << 20) + b'"}}\n')
    r = c.recv()
    assert r["error"]["code"] == -32600 and "longer" in r["error"]["message"]
    assert "methods" in c.call("rpc.methods")
    assert json.loads(sandpit("ps", "--json", env={"SANDPIT_STATE": state}).stdout) == []
    c.close()


def test_batch_stream_cancel(server):
    c = Conn(server)
    c.call("workspace.create", {"name": "s2"})
    c.send([{"jsonrpc": "2.0", "id": "l", "method": "workspace.list"},
            {"jsonrpc": "2.0", "id": "e", "method": "exec",
             "params": {"workspace": "s2", "command": "sleep 0.2; echo hi"}},
            {"jsonrpc": "2.0", "method": "workspace.list"},
            {"jsonrpc": "2.0", "id": "u", "method": "nope"}])
    r = c.recv()
    assert isinstance(r, list) and len(r) == 3
    by = {x["id"]: x for x in r}
    assert by["e"]["result"]["stdout"] == "hi\n"
    assert by["u"]["error"]["code"] == -32601
    assert by["l"]["result"]["workspaces"][0]["name"] == "s2"
    # Streamed output arrives as notifications before the result.
    r = c.call("exec", {"workspace": "s2", "stream": True,
                        "command": "for i in 1 2 3; do echo line$i; sleep 0.05; done; echo err >&2"})
    assert r["exit_code"] == 0
    out = "".join(n["params"]["data"] for n in c.notes
                  if n["method"] == "exec.output" and n["params"]["stream"] == "stdout")
    assert out == "line1\nline2\nline3\n"
    assert any(n["params"]["stream"] == "stderr" for n in c.notes)
    # Cancel a running exec: its request is answered "cancelled", the command dies.
    c.send({"jsonrpc": "2.0", "id": "long", "method": "exec",
            "params": {"workspace": "s2", "command": "echo $$ > p; exec sleep 60"}})
    time.sleep(0.5)
    c.send({"jsonrpc": "2.0", "id": "x", "method": "exec.cancel", "params": {"request": "long"}})
    got = {}
    while len(got) < 2:
        m = c.recv()
        got[m["id"]] = m
    assert got["long"]["error"]["data"]["kind"] == "cancelled"
    assert got["x"]["result"]["cancelled"] is True
    time.sleep(0.5)
    r = c.call("exec", {"workspace": "s2", "command": "kill -0 $(cat p) 2>/dev/null && echo alive || echo gone"})
    assert r["stdout"] == "gone\n"
    c.call("workspace.delete", {"workspace": "s2"})
    c.close()


def test_many_clients_at_once(server):
    a = Conn(server)
    a.call("workspace.create", {"name": "s3"})
    res = {}

    def one(i):
        c = Conn(server)
        res[i] = c.call("exec", {"workspace": "s3", "command": f"sleep 0.5; echo {i}"})
        c.close()

    t0 = time.time()
    ts = [threading.Thread(target=one, args=(i,)) for i in range(8)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert time.time() - t0 < 3.0
    assert {i: r["stdout"] for i, r in res.items()} == {i: f"{i}\n" for i in range(8)}
    # A client that goes away mid-exec takes its command with it.
    b = Conn(server)
    b.send({"jsonrpc": "2.0", "id": 1, "method": "exec",
            "params": {"workspace": "s3", "command": "echo $$ > q; exec sleep 60"}})
    time.sleep(0.5)
    b.close()
    time.sleep(1.0)
    r = a.call("exec", {"workspace": "s3", "command": "kill -0 $(cat q) 2>/dev/null && echo alive || echo gone"})
    assert r["stdout"] == "gone\n"
    a.call("workspace.delete", {"workspace": "s3"})
    a.close()


def test_half_close_still_gets_answers(server):
    c = Conn(server)
    c.call("workspace.create", {"name": "s4"})
    c.send({"jsonrpc": "2.0", "id": 7, "method": "exec",
            "params": {"workspace": "s4", "command": "sleep 0.3; echo late"}})
    c.s.shutdown(socket.SHUT_WR)
    r = c.recv()
    assert r["id"] == 7 and r["result"]["stdout"] == "late\n"
    assert c.f.readline() == b""  # then the server closes
    c.close()
    c = Conn(server)
    c.call("workspace.delete", {"workspace": "s4"})
    c.close()


@pytest.mark.skipif(not IS_ROOT, reason="needs another uid to connect as")
def test_peer_of_another_uid_is_refused(state):
    """SO_PEERCRED: even through a socket whose mode would let it in, a
    peer of another uid gets nothing but a closed connection."""
    import tempfile
    d = tempfile.mkdtemp(prefix="sp-serve-")
    os.chmod(d, 0o755)
    path = os.path.join(d, "s.sock")
    p = start_serve(state, path, stderr=None)
    try:
        os.chmod(path, 0o666)
        code = ("import socket,sys\n"
                "s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])\n"
                "try:\n"
                " s.sendall(b'{\\\"jsonrpc\\\":\\\"2.0\\\",\\\"id\\\":1,\\\"method\\\":\\\"rpc.methods\\\"}\\n')\n"
                " print(repr(s.recv(100)))\n"
                "except OSError:\n"
                " print(repr(b''))\n")
        r = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                            "/usr/bin/python3", "-c", code, path],
                           capture_output=True, text=True, timeout=10)
        assert r.stdout.strip() == "b''", r
        # The owner still gets answers.
        c = Conn(path)
        assert "methods" in c.call("rpc.methods")
        c.close()
    finally:
        p.terminate()
        p.wait(timeout=10)
        os.rmdir(d)


def test_refuses_a_live_socket_and_non_sockets(server, state, tmp_path):
    r = sandpit("serve", "--socket", server, env={"SANDPIT_STATE": state})
    assert r.returncode == 125 and "already listening" in r.stderr
    f = tmp_path / "file"
    f.write_text("x")
    r = sandpit("serve", "--socket", str(f), env={"SANDPIT_STATE": state})
    assert r.returncode == 125 and "not a socket" in r.stderr
    assert f.read_text() == "x"


def _ps(state):
    return sorted(w["name"] for w in
                  json.loads(sandpit("ps", "--json", env={"SANDPIT_STATE": state}).stdout))


def test_fork_a_snapshot(server, state):
    """workspace.fork: a new workspace on a snapshot's files; the original
    and the fork change independently; hostile arguments change nothing."""
    c = Conn(server)
    assert "workspace.fork" in c.call("rpc.methods")["methods"]
    c.call("workspace.create", {"name": "f0"})
    c.call("file.write", {"workspace": "f0", "path": "a.txt", "content": "snap\n"})
    assert c.call("exec", {"workspace": "f0",
                           "command": "echo sys > /etc/forkrpc-marker"})["exit_code"] == 0
    assert c.call("workspace.snapshot", {"workspace": "f0", "snapshot": "s"})["snapshot"] == "s"
    c.call("file.write", {"workspace": "f0", "path": "a.txt", "content": "later\n"})
    r = c.call("workspace.fork", {"workspace": "f0", "snapshot": "s", "name": "f1",
                                  "policy": {"memory": "64M", "pids": 100}})
    assert r["workspace"] == "f1" and r["state"] == "running", r
    assert r["forked_from"] == {"workspace": "f0", "snapshot": "s"}
    assert r["limits"]["memory"] == 64 << 20 and r["limits"]["pids"] == 100
    r = c.call("exec", {"workspace": "f1", "command": "cat a.txt /etc/forkrpc-marker"})
    assert r["exit_code"] == 0 and r["stdout"] == "snap\nsys\n", r
    assert c.call("exec", {"workspace": "f1", "command": "echo fork > a.txt"})["exit_code"] == 0
    assert c.call("exec", {"workspace": "f0", "command": "cat a.txt"})["stdout"] == "later\n"
    assert c.call("exec", {"workspace": "f1", "command": "cat a.txt"})["stdout"] == "fork\n"
    # No policy: the server's defaults (not f1's narrower limits).
    r = c.call("workspace.fork", {"workspace": "f0", "snapshot": "s", "name": "f2",
                                  "policy": None})
    assert r["limits"]["memory"] == 1 << 30 and r["network"] == "none", r
    assert c.call("exec", {"workspace": "f2", "command": "cat a.txt"})["stdout"] == "snap\n"

    def err(params, code):
        r = c.call("workspace.fork", params, raw=True)
        assert "error" in r and r["error"]["code"] == code, (params, r)
        return r["error"]["message"]
    ok = {"workspace": "f0", "snapshot": "s", "name": "f9"}
    for k, v in [("name", "../f9"), ("name", ""), ("name", "F9"), ("name", 7),
                 ("name", "x" * 64), ("name", "a/b"), ("name", "a b"),
                 ("workspace", "../f0"), ("workspace", None), ("snapshot", "../s"),
                 ("snapshot", ["s"])]:
        assert k in err(dict(ok, **{k: v}), -32602)
    p = dict(ok)
    del p["name"]
    assert "name" in err(p, -32602)
    assert "extra" in err(dict(ok, extra=1), -32602)
    assert "policy" in err(dict(ok, policy=[1]), -32602)
    assert "policy" in err(dict(ok, policy="host"), -32602)
    assert "name" in err(dict(ok, policy={"name": "x"}), -32602)
    assert "from" in err(dict(ok, policy={"from": "/etc"}), -32602)
    assert "memory" in err(dict(ok, policy={"memory": {"a": 1}}), -32602)
    assert "pids" in err(dict(ok, policy={"pids": -1}), -32602)
    # The network create refuses is refused for a fork too.
    m = err(dict(ok, policy={"network": "host"}), -32001)
    assert "not allowed" in m
    assert "not allowed" in err(dict(ok, policy={"network": "allow:example.com"}), -32001)
    assert "no snapshot" in err(dict(ok, snapshot="nope"), -32000)
    assert "no snapshot" in err(dict(ok, workspace="nosuch"), -32000)
    # A name in use: refused, and that workspace is left as it was.
    assert "exists" in err(dict(ok, name="f1"), -32000)
    assert "exists" in err(dict(ok, name="f0"), -32000)
    assert c.call("exec", {"workspace": "f1", "command": "cat a.txt"})["stdout"] == "fork\n"
    assert c.call("exec", {"workspace": "f0", "command": "cat a.txt"})["stdout"] == "later\n"
    assert _ps(state) == ["f0", "f1", "f2"]
    # The fork's idle timeout is its own: it stops, the others run on.
    c.call("workspace.fork", {"workspace": "f0", "snapshot": "s", "name": "f3",
                              "policy": {"idle_timeout": 1}})

    def states():
        return {w["name"]: w["state"] for w in json.loads(
            sandpit("ps", "--json", env={"SANDPIT_STATE": state}).stdout)}
    for _ in range(60):
        if states()["f3"] == "stopped":
            break
        time.sleep(0.1)
    assert states() == {"f0": "running", "f1": "running", "f2": "running",
                        "f3": "stopped"}
    assert c.call("workspace.delete", {"workspace": "f3"})["deleted"] is True
    for w in ("f1", "f2", "f0"):
        assert c.call("workspace.delete", {"workspace": w})["deleted"] is True
    assert _ps(state) == []
    c.close()


def test_fork_does_not_inherit_what_create_may_not_ask(server, state):
    """A workspace made on the CLI with limits the server would not give:
    its fork over serve gets the server's policy, not the snapshot's."""
    r = sandpit("create", "cli0", "-q", "--pids", "5000", "--memory", "0",
                "--env", "SECRETISH=1", env={"SANDPIT_STATE": state})
    assert r.returncode == 0, r.stderr
    assert sandpit("exec", "cli0", "--", "sh", "-c", "echo x > /workspace/x",
                   env={"SANDPIT_STATE": state}).returncode == 0
    assert sandpit("snapshot", "cli0", "s", env={"SANDPIT_STATE": state}).returncode == 0
    c = Conn(server)
    r = c.call("workspace.fork", {"workspace": "cli0", "snapshot": "s", "name": "cf"})
    assert r["limits"]["pids"] == 512 and r["limits"]["memory"] == 1 << 30, r
    r = c.call("exec", {"workspace": "cf", "command": "cat x; echo ${SECRETISH:-unset}"})
    assert r["stdout"] == "x\nunset\n", r
    # The CLI's fork (no flags) keeps the snapshot's policy: the difference is the server's.
    assert sandpit("fork", "cli0", "s", "clif", env={"SANDPIT_STATE": state}).returncode == 0
    r = c.call("exec", {"workspace": "clif", "command": "echo ${SECRETISH:-unset}"})
    assert r["stdout"] == "1\n", r
    for w in ("cf", "clif", "cli0"):
        c.call("workspace.delete", {"workspace": w})
    c.close()


def test_fork_under_the_operators_policy(state, tmp_path):
    """serve --policy: a fork is checked as create is (limits, network,
    timeout), may only fork this server's workspaces, and counts as one."""
    pol = tmp_path / "policy.json"
    pol.write_text(json.dumps({"limits": {"memory": "128M", "pids": 64}, "timeout": 30}))
    os.chmod(tmp_path, 0o755)
    os.chmod(pol, 0o644)
    assert sandpit("create", "operators", "-q", env={"SANDPIT_STATE": state}).returncode == 0
    assert sandpit("snapshot", "operators", "s", env={"SANDPIT_STATE": state}).returncode == 0
    path = str(tmp_path / "s.sock")
    p = start_serve(state, path, "--policy", str(pol))
    try:
        c = Conn(path)
        c.call("workspace.create", {"name": "p0"})
        c.call("file.write", {"workspace": "p0", "path": "f", "content": "p0\n"})
        c.call("workspace.snapshot", {"workspace": "p0", "snapshot": "s"})
        base = {"workspace": "p0", "snapshot": "s", "name": "p1"}
        for pl, word in [({"memory": "512M"}, "over the operator's limit"),
                         ({"memory": 0}, "memory"),
                         ({"pids": 1000}, "pids"),
                         ({"timeout": 100}, "timeout"),
                         ({"network": "host"}, "not allowed"),
                         ({"network": "allow:example.com"}, "not allowed")]:
            r = c.call("workspace.fork", dict(base, policy=pl), raw=True)
            assert r["error"]["code"] == -32001, (pl, r)
            assert r["error"]["data"]["kind"] == "denied" and word in r["error"]["message"], (pl, r)
        # Not this server's workspace: as if it did not exist.
        r = c.call("workspace.fork", {"workspace": "operators", "snapshot": "s",
                                      "name": "p1"}, raw=True)
        assert r["error"]["code"] == -32000 and "created" in r["error"]["message"], r
        assert _ps(state) == ["operators", "p0"]
        r = c.call("workspace.fork", dict(base, policy={"memory": "64M"}))
        assert r["limits"]["memory"] == 64 << 20 and r["limits"]["pids"] == 64, r
        r = c.call("workspace.fork", dict(base, name="p2"))
        assert r["limits"]["memory"] == 128 << 20, r
        assert c.call("exec", {"workspace": "p2", "command": "cat f"})["stdout"] == "p0\n"
        # The forks are the server's own: listed and usable.
        names = sorted(w["name"] for w in c.call("workspace.list")["workspaces"])
        assert names == ["p0", "p1", "p2"]
        for w in ("p1", "p2", "p0"):
            assert c.call("workspace.delete", {"workspace": w})["deleted"] is True
        c.close()
    finally:
        p.terminate()
        p.wait(timeout=10)
    assert _ps(state) == ["operators"]


# ---- secret_env (docs/secrets.md) and restore's services -------------------

SVALUE = "svc-Secret-Value-9c1e"


class RawConn(Conn):
    """A Conn that keeps every line the server sent, to grep."""

    def __init__(self, path):
        super().__init__(path)
        self.raw = []

    def recv(self):
        line = self.f.readline()
        assert line, "the server closed the connection"
        self.raw.append(line)
        return json.loads(line)


def _secret_ws(state, tmp_path, name="sw"):
    f = tmp_path / "tok"
    f.write_text(SVALUE + "\n")
    os.chmod(f, 0o600)
    r = sandpit("create", name, "-q", "--secret", "TOKEN=@" + str(f),
                env={"SANDPIT_STATE": state})
    assert r.returncode == 0, r.stderr
    return name


def _value_nowhere_under(root):
    r = subprocess.run(["grep", "-rlaF", SVALUE, root], capture_output=True,
                       text=True)
    assert r.stdout == "", r.stdout


def test_secret_env_over_serve(server, state, tmp_path):
    """exec and service.start take "secret_env": names of the workspace's
    secrets, set as NAME=value by the supervisor (the command compares it
    with /run/secrets/NAME inside; what it prints of it comes back
    redacted). Unknown names, a non-array, too many, non-names and a
    workspace without secrets are refused with invalid params (-32602),
    changing nothing; the value is in no reply (the raw lines grepped) and
    nowhere under the state directory."""
    ws = _secret_ws(state, tmp_path)
    c = RawConn(server)
    same = ('[ "$TOKEN" = "$(cat /run/secrets/TOKEN)" ] && echo same; '
            'echo "$TOKEN"')
    r = c.call("exec", {"workspace": ws, "secret_env": ["TOKEN"],
                        "command": same})
    assert r["exit_code"] == 0 and r["stdout"] == "same\n[REDACTED:TOKEN]\n", r
    r = c.call("exec", {"workspace": ws, "secret_env": ["TOKEN"],
                        "command": same, "stream": True})
    assert r["stdout"] == "same\n[REDACTED:TOKEN]\n", r
    r = c.call("exec", {"workspace": ws, "command": 'echo "[${TOKEN-unset}]"'})
    assert r["stdout"] == "[unset]\n", r
    r = c.call("exec", {"workspace": ws, "secret_env": [],
                        "command": 'echo "[${TOKEN-unset}]"'})
    assert r["stdout"] == "[unset]\n", r
    r = c.call("service.start", {
        "workspace": ws, "name": "web", "secret_env": ["TOKEN"],
        "env": {"A": "1"}, "ready": "file:/tmp/web",
        "command": '[ "$TOKEN" = "$(cat /run/secrets/TOKEN)" ] && echo match;'
                   ' echo "v=$TOKEN"; touch /tmp/web; exec sleep 1000'})
    assert r["state"] == "ready" and r["secret_env"] == ["TOKEN"], r
    r = c.call("service.logs", {"workspace": ws, "name": "web"})
    assert r["output"] == "match\nv=[REDACTED:TOKEN]\n", r
    st = c.call("service.status", {"workspace": ws, "name": "web"})
    assert st["services"][0]["secret_env"] == ["TOKEN"]
    assert st["services"][0]["env"] == ["A=1"]
    assert "secret_envv" not in json.dumps(st)

    bad = [(["NOPE"], "no secret named NOPE (its secrets: TOKEN)"),
           ("TOKEN", "must be an array"),
           ({"TOKEN": 1}, "must be an array"),
           (["TOKEN"] * 33, "at most 32"),
           (["X%d" % i for i in range(20000)], "at most 32"),
           ([1], "secret's name"),
           (["TOKEN=x"], "secret's name"),
           (["../TOKEN"], "secret's name"),
           ([""], "secret's name"),
           (["T" * 65], "secret's name")]
    for se, word in bad:
        for method, extra in (("exec", {"command": "true"}),
                              ("service.start", {"name": "x",
                                                 "command": "sleep 100"})):
            r = c.call(method, dict(extra, workspace=ws, secret_env=se),
                       raw=True)
            assert r["error"]["code"] == -32602, (method, se, r)
            assert word in r["error"]["message"], (method, se, r)
    st = c.call("service.status", {"workspace": ws})
    assert [s["name"] for s in st["services"]] == ["web"]
    # A workspace created without secrets has none to name.
    assert "result" in c.call("workspace.create", {"name": "plain"}, raw=True)
    r = c.call("exec", {"workspace": "plain", "secret_env": ["TOKEN"],
                        "command": "true"}, raw=True)
    assert r["error"]["code"] == -32602
    assert "workspace plain has no secrets" in r["error"]["message"], r
    c.close()
    raw = b"".join(c.raw)
    assert SVALUE.encode() not in raw
    _value_nowhere_under(state)


def test_restore_over_serve_lists_services(server, state):
    """workspace.restore's result has "services": each one it brought back
    with its state, and the reason of one that failed."""
    c = Conn(server)
    assert "result" in c.call("workspace.create", {"name": "r"}, raw=True)
    assert c.call("workspace.snapshot", {"workspace": "r",
                                         "snapshot": "s"})["snapshot"] == "s"
    r = c.call("exec", {"workspace": "r", "command": "touch ok"})
    assert r["exit_code"] == 0
    for name, cmd, ready in (
            ("web", "touch /tmp/web; exec sleep 1000", "file:/tmp/web"),
            ("db", "[ -e /workspace/ok ] && touch /tmp/db; exec sleep 1000",
             "file:/tmp/db"),
            ("bg", "sleep 1000", None)):
        p = {"workspace": "r", "name": name, "command": cmd,
             "restart_on_failure": True, "ready_timeout": 1}
        if ready:
            p["ready"] = ready
        assert c.call("service.start", p)["name"] == name
    r = c.call("workspace.restore", {"workspace": "r", "snapshot": "s"})
    assert r["restarted"] is True
    assert r["services"] == [
        {"name": "web", "state": "ready"},
        {"name": "db", "state": "failed",
         "reason": "readiness timeout (1s)"},
        {"name": "bg", "state": "running"}], r
    assert c.call("workspace.stop", {"workspace": "r"})["state"] == "stopped"
    r = c.call("workspace.restore", {"workspace": "r", "snapshot": "s"})
    assert r["restarted"] is False and r["services"] == [], r
    assert c.call("workspace.delete", {"workspace": "r"})["deleted"] is True
    c.close()


def _procs(c, ws):
    r = c.call("exec", {"workspace": ws, "command": ["ps", "-eo", "comm="]})
    return [l for l in r["stdout"].split("\n") if l and l != "ps"]


def _gone(c, ws, name):
    for _ in range(100):
        if name not in _procs(c, ws):
            return True
        time.sleep(0.1)
    return False


def test_exec_outcome_and_leftovers(server):
    """Every exec says how it ended (exit, signal, timeout, oom, pids),
    and ends every process it started: a setsid'd daemon and background
    jobs do not outlive it (cancelled or not), nor use up pids."""
    c = Conn(server)
    assert c.call("workspace.create", {"name": "oc", "memory": "64M", "pids": 32})["workspace"] == "oc"
    ex = lambda cmd, **kw: c.call("exec", {"workspace": "oc", "command": cmd, **kw})
    o = ex("exit 3")["outcome"]
    assert o["ended"] == "exit" and o["exit_code"] == 3
    o = ex("kill -TERM $$")["outcome"]
    assert o["ended"] == "signal" and o["signal"] == 15 and o["signal_name"] == "SIGTERM"
    r = ex("sleep 30", timeout=0.5)
    assert r["outcome"]["ended"] == "timeout" and r["exit_code"] == 124
    if IS_ROOT:  # the cgroup counts them (an ordinary user here has none)
        o = ex("head -c 300M /dev/zero | tail >/dev/null")["outcome"]
        assert o["ended"] == "oom" and o["limit_bytes"] == 64 * 1024 * 1024, o
        assert "out of memory (limit 64 MiB)" in o["text"]
        o = ex("for i in $(seq 60); do sleep 5 & done; wait")["outcome"]
        assert o["ended"] == "pids" and o["limit"] == 32 and o["refused_forks"] >= 1, o
    # Leftovers.
    assert ex("(setsid sleep 1000 &); sleep 999 & echo started")["stdout"] == "started\n"
    assert _gone(c, "oc", "sleep"), _procs(c, "oc")
    for _ in range(3):
        ex("for i in 1 2 3 4 5 6 7 8; do sleep 100 & done; echo ok")
    r = ex("for i in $(seq 20); do sleep 0 & done; wait; echo forked")
    assert r["stdout"] == "forked\n" and r["outcome"]["ended"] == "exit", r
    # Cancelled: the daemon goes too; the reply says cancelled.
    c.send({"jsonrpc": "2.0", "id": "x1", "method": "exec",
            "params": {"workspace": "oc", "command": "(setsid sleep 1001 &); exec sleep 1002"}})
    c2 = Conn(server)
    for _ in range(100):
        if "sleep" in _procs(c2, "oc"):
            break
        time.sleep(0.05)
    c.send({"jsonrpc": "2.0", "id": "x2", "method": "exec.cancel", "params": {"request": "x1"}})
    got = {}
    while len(got) < 2:
        m = c.recv()
        got[m.get("id")] = m
    assert got["x1"]["error"]["code"] == -32000
    assert got["x1"]["error"]["data"]["outcome"] == {"ended": "cancelled"}
    assert _gone(c2, "oc", "sleep"), _procs(c2, "oc")
    # A client that goes away mid-exec takes its daemon with it.
    c3 = Conn(server)
    c3.send({"jsonrpc": "2.0", "id": 1, "method": "exec",
             "params": {"workspace": "oc", "command": "(setsid sleep 1003 &); exec sleep 1004"}})
    for _ in range(100):
        if "sleep" in _procs(c2, "oc"):
            break
        time.sleep(0.05)
    c3.close()
    assert _gone(c2, "oc", "sleep"), _procs(c2, "oc")
    c.close()
    c2.close()


def test_waits_do_not_block_other_clients(server):
    """service.start waiting on readiness and shell.read waiting for
    output are events: another client's request, and the same client's
    next one, are answered meanwhile; a waiting read can be cancelled."""
    c = Conn(server)
    c.call("workspace.create", {"name": "wt"})
    sh = c.call("shell.open", {"workspace": "wt"})["shell"]
    c.send({"jsonrpc": "2.0", "id": "svc", "method": "service.start",
            "params": {"workspace": "wt", "name": "slow", "command": "sleep 100",
                       "ready": "file:/tmp/never", "ready_timeout": 3}})
    c.send({"jsonrpc": "2.0", "id": "rd", "method": "shell.read",
            "params": {"workspace": "wt", "shell": sh, "cursor": 10 ** 9, "wait": 3}})
    c.send({"jsonrpc": "2.0", "id": "l", "method": "workspace.list"})
    other = Conn(server)
    assert [w["name"] for w in other.call("workspace.list")["workspaces"]] == ["wt"]
    order = []
    got = {}
    while len(got) < 3:
        m = c.recv()
        order.append(m["id"])
        got[m["id"]] = m
    assert order[0] == "l", order
    assert got["svc"]["error"]["code"] == -32000 and "readiness timeout" in got["svc"]["error"]["message"]
    assert got["rd"]["result"]["shell"] == sh
    c.send({"jsonrpc": "2.0", "id": "rd2", "method": "shell.read",
            "params": {"workspace": "wt", "shell": sh, "cursor": 10 ** 9, "wait": 20}})
    c.send({"jsonrpc": "2.0", "id": "cx", "method": "exec.cancel", "params": {"request": "rd2"}})
    got = {}
    while len(got) < 2:
        m = c.recv()
        got[m["id"]] = m
    assert got["rd2"]["error"]["data"]["kind"] == "cancelled"
    assert got["cx"]["result"] == {"cancelled": True}
    c.close()
    other.close()


def test_protocol_details(server):
    """A request with a null id is refused (-32600), not answered; a failed
    patch is -32000 with the whole report in error.data."""
    c = Conn(server)
    c.send({"jsonrpc": "2.0", "id": None, "method": "rpc.methods"})
    r = c.recv()
    assert r["id"] is None and r["error"]["code"] == -32600 and "result" not in r
    c.call("workspace.create", {"name": "pd"})
    c.call("file.write", {"workspace": "pd", "path": "a.txt", "content": "one\n"})
    r = c.call("patch.apply", {"workspace": "pd",
                               "patch": "--- a/a.txt\n+++ b/a.txt\n@@ -1 +1 @@\n-zzz\n+two\n"}, raw=True)
    e = r["error"]
    assert e["code"] == -32000 and e["data"]["kind"] == "patch", e
    assert isinstance(e["data"]["report"], dict) and len(e["message"]) < 300
    c.close()


def test_operator_timeout_is_a_ceiling(state, tmp_path):
    """With the operator's {"timeout": 2}: an exec, a service's readiness
    wait and a workspace's idle_timeout over it are refused, naming it."""
    pol = tmp_path / "policy.json"
    pol.write_text(json.dumps({"timeout": 2}))
    os.chmod(pol, 0o644)
    path = str(tmp_path / "s.sock")
    p = start_serve(state, path, "--policy", str(pol))
    try:
        c = Conn(path)
        r = c.call("workspace.create", {"name": "tc", "idle_timeout": 100}, raw=True)
        assert r["error"]["code"] == -32001 and "idle_timeout" in r["error"]["message"]
        c.call("workspace.create", {"name": "tc"})
        r = c.call("exec", {"workspace": "tc", "command": "sleep 4", "timeout": 60}, raw=True)
        assert r["error"]["code"] == -32001 and "operator's timeout of 2 s" in r["error"]["message"]
        r = c.call("exec", {"workspace": "tc", "command": "sleep 4"})
        assert r["outcome"]["ended"] == "timeout"
        r = c.call("service.start", {"workspace": "tc", "name": "s", "command": "sleep 100",
                                     "ready_timeout": 30}, raw=True)
        assert r["error"]["code"] == -32001 and "ready_timeout" in r["error"]["message"]
        c.close()
    finally:
        p.terminate()
        p.wait(timeout=10)


def serve_with_socket(state, sock, *args, fds="1"):
    """`sandpit serve ARGS` started as systemd starts a socket-activated
    service: the socket as fd 3, LISTEN_PID its own pid, LISTEN_FDS."""
    fd = sock.fileno()
    return subprocess.Popen(
        ["/bin/sh", "-c", f'LISTEN_PID=$$ LISTEN_FDS={fds} exec "$0" serve "$@"',
         SANDPIT, *args],
        preexec_fn=lambda: os.dup2(fd, 3), pass_fds=(3,),
        env=dict(os.environ, SANDPIT_STATE=state),
        stderr=subprocess.PIPE)


def test_systemd_socket_activation(state, tmp_path):
    # The socket is systemd's: made by it, served as given (mode and all),
    # left in place when serve stops.
    path = str(tmp_path / "act.sock")
    ls = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    ls.bind(path)
    os.chmod(path, 0o600)
    ls.listen(8)
    p = serve_with_socket(state, ls)
    ls.close()
    try:
        c = Conn(path)
        assert "workspace.create" in c.call("rpc.methods")["methods"]
        assert c.call("workspace.list")["workspaces"] == []
        c.close()
    finally:
        p.terminate()
        assert p.wait(timeout=10) == 0, p.stderr.read()
    assert stat.S_ISSOCK(os.lstat(path).st_mode)


def test_systemd_socket_refusals(state, tmp_path):
    ls = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    ls.bind(str(tmp_path / "a.sock"))
    ls.listen(8)
    # --socket as well: which one is meant is unclear, so neither.
    p = serve_with_socket(state, ls, "--socket", str(tmp_path / "b.sock"))
    assert p.wait(timeout=10) == 125
    assert b"LISTEN_FDS" in p.stderr.read()
    assert not os.path.exists(tmp_path / "b.sock")
    # More than one socket.
    p = serve_with_socket(state, ls, fds="2")
    assert p.wait(timeout=10) == 125
    assert b"expected one socket" in p.stderr.read()
    ls.close()
    # A socket that does not listen, and a UDP one.
    for s in (socket.socket(socket.AF_UNIX, socket.SOCK_STREAM),
              socket.socket(socket.AF_INET, socket.SOCK_DGRAM)):
        p = serve_with_socket(state, s)
        assert p.wait(timeout=10) == 125
        assert b"not a listening Unix stream socket" in p.stderr.read()
        s.close()


def test_results_bounded_and_paged(state, tmp_path):
    """With --max-output 16384 every reply fits it: file.read pages on from
    next_offset to the whole file (escaping counted: nothing skipped);
    file.list is cut to whole entries with truncated and hint;
    workspace.diff of 5,000 new files comes in pages whose next_offset
    walks every path."""
    path = str(tmp_path / "s.sock")
    p = start_serve(state, path, "--max-output", "16384")
    try:
        c = Conn(path)
        c.call("workspace.create", {"name": "pg"})
        r = c.call("exec", {"workspace": "pg", "command":
                            "seq 1 20000 > big.txt; i=0; while [ $i -lt 5000 ]; do : > f$i.txt; i=$((i+1)); done"})
        assert r["exit_code"] == 0
        whole, off = "", 0
        for _ in range(100):
            r = c.call("file.read", {"workspace": "pg", "path": "big.txt", "offset": off})
            assert len(json.dumps(r)) <= 16384
            whole += r["content"]
            if not r["truncated"]:
                break
            off = r["next_offset"]
        assert whole == "".join(f"{i}\n" for i in range(1, 20001))
        r = c.call("file.list", {"workspace": "pg"})
        assert r["truncated"] is True and r["hint"] and r["count"] > 5000
        assert len(json.dumps(r)) <= 16384
        seen, off, pages = set(), 0, 0
        while True:
            r = c.call("workspace.diff", {"workspace": "pg", "offset": off})
            assert len(json.dumps(r)) <= 16384
            pages += 1
            seen.update(r["added"] + r["modified"] + r["deleted"])
            if r["next_offset"] is None:
                break
            assert r["truncated"] is True
            off = r["next_offset"]
        assert pages > 1 and len(seen) == r["total"] and "/workspace/f4999.txt" in seen
        c.close()
    finally:
        p.terminate()
        p.wait(timeout=10)


def test_operator_timeout_bounds_shells_and_services(state, tmp_path):
    """With the operator's {"timeout": 2} a shell is hung up and a service
    stopped once they have run that long: a command typed into a shell,
    or a service, never outlives the operator's timeout."""
    pol = tmp_path / "policy.json"
    pol.write_text(json.dumps({"timeout": 2}))
    os.chmod(pol, 0o644)
    path = str(tmp_path / "s.sock")
    p = start_serve(state, path, "--policy", str(pol))
    try:
        c = Conn(path)
        c.call("workspace.create", {"name": "tb"})
        sh = c.call("shell.open", {"workspace": "tb", "command": ["sh"]})["shell"]
        c.call("shell.write", {"workspace": "tb", "shell": sh, "input": "sleep 1000\n"})
        r = c.call("service.start", {"workspace": "tb", "name": "s", "command": "sleep 1000"})
        assert r["state"] == "running", r
        cur = 0
        for _ in range(60):
            rd = c.call("shell.read", {"workspace": "tb", "shell": sh, "cursor": cur, "wait": 0.5})
            assert "next_cursor" in rd, rd
            cur = rd["next_cursor"]
            st = c.call("service.status", {"workspace": "tb", "name": "s"})["services"][0]
            if rd["ended"] and st["state"] in ("exited", "failed"):
                break
            time.sleep(0.2)
        assert rd["ended"], rd
        assert st["state"] == "exited" and "timeout" in st["reason"], st
        procs = c.call("exec", {"workspace": "tb", "command": ["ps", "-eo", "comm="]})["stdout"]
        assert "sleep" not in procs.split(), procs
        c.close()
    finally:
        p.terminate()
        p.wait(timeout=10)


def test_background_execs_over_serve(server, state):
    """exec.start returns a number at once; exec.poll, exec.wait (an event:
    the connection answers other calls meanwhile), exec.write, exec.kill,
    exec.list; bad arguments are -32602 and start nothing."""
    c = Conn(server)
    methods = c.call("rpc.methods")["methods"]
    assert {"exec.start", "exec.poll", "exec.wait", "exec.write", "exec.kill",
            "exec.list"} <= set(methods)
    c.call("workspace.create", {"name": "bg"})
    r = c.call("exec.start", {"workspace": "bg", "command": ["cat"],
                              "stdin_open": True})
    j = r["job"]
    assert r["state"] == "running" and r["stdin_open"] is True, r
    # A wait parked in the workspace while another connection is served.
    c.send({"jsonrpc": "2.0", "id": "w", "method": "exec.wait",
            "params": {"workspace": "bg", "job": j, "timeout": 20}})
    c2 = Conn(server)
    r = c2.call("exec.write", {"workspace": "bg", "job": j, "input": "hi\n"})
    assert r["written"] == 3, r
    r = c2.call("exec.poll", {"workspace": "bg", "job": j, "wait": 10})
    assert r["stdout"] == "hi\n" and r["cursor"] == 3 and r["ended"] is False, r
    assert c2.call("exec.write", {"workspace": "bg", "job": j, "eof": True})["stdin_open"] is False
    r = c.recv()
    assert r["id"] == "w" and r["result"]["ended"] is True, r
    assert r["result"]["exit_code"] == 0 and r["result"]["stdout_tail"] == "hi\n"
    r = c2.call("exec.start", {"workspace": "bg", "command": "sleep 600"})
    k = r["job"]
    assert c2.call("exec.kill", {"workspace": "bg", "job": k})["signal"] == "KILL"
    r = c2.call("exec.wait", {"workspace": "bg", "job": k})
    assert r["ended"] is True and r["exit_code"] == 137 and r["stopped_by"] == "KILL", r
    listed = c2.call("exec.list", {"workspace": "bg"})["jobs"]
    assert [x["job"] for x in listed] == [j, k], listed

    def err(method, params):
        r = c2.call(method, params, raw=True)
        assert "error" in r and r["error"]["code"] == -32602, (method, params, r)
        return r["error"]["message"]
    assert "command" in err("exec.start", {"workspace": "bg"})
    assert "command" in err("exec.start", {"workspace": "bg", "command": 5})
    assert "stdin_open" in err("exec.start", {"workspace": "bg", "command": "true",
                                              "stdin_open": 1})
    assert "job" in err("exec.poll", {"workspace": "bg", "job": -1})
    assert "job" in err("exec.wait", {"workspace": "bg"})
    assert "timeout" in err("exec.wait", {"workspace": "bg", "job": j, "timeout": 31})
    assert "signal" in err("exec.kill", {"workspace": "bg", "job": k, "signal": 9})
    assert "input" in err("exec.write", {"workspace": "bg", "job": k})
    assert "extra" in err("exec.list", {"workspace": "bg", "extra": 1})
    assert len(c2.call("exec.list", {"workspace": "bg"})["jobs"]) == 2
    c.close()
    c2.close()


def test_file_tools_over_serve(server, state):
    """file.stat, file.mkdir, file.move, file.glob, file.search, file.edit:
    the same operations as MCP's file_* tools; refusals are -32602 and
    change nothing."""
    c = Conn(server)
    assert {"file.stat", "file.mkdir", "file.move", "file.glob", "file.search",
            "file.edit"} <= set(c.call("rpc.methods")["methods"])
    c.call("workspace.create", {"name": "fx"})
    c.call("file.write", {"workspace": "fx", "path": "a/m.c",
                          "content": "int x = 1;\nint y = 1;\n"})
    assert c.call("file.stat", {"workspace": "fx", "path": "a/m.c"})["size"] == 22
    assert c.call("file.mkdir", {"workspace": "fx", "path": "b"})["created"] is True
    assert c.call("file.move", {"workspace": "fx", "from": "a/m.c", "to": "b/m.c"})["moved"]
    r = c.call("file.glob", {"workspace": "fx", "pattern": "b/*.c"})
    assert [p["path"] for p in r["paths"]] == ["b/m.c"], r
    r = c.call("file.search", {"workspace": "fx", "pattern": "y = [0-9]"})
    assert [(m["path"], m["line"], m["text"]) for m in r["matches"]] == [("b/m.c", 2, "int y = 1;")], r
    r = c.call("file.edit", {"workspace": "fx", "path": "b/m.c", "old_string": "int y = 1;",
                             "new_string": "int y = 2;"})
    assert r["replacements"] == 1 and r["first_line"] == 2, r
    r = c.call("file.edit", {"workspace": "fx", "path": "b/m.c", "old_string": " = ",
                             "new_string": "="}, raw=True)
    assert r["error"]["code"] == -32602 and "occurs 2 times" in r["error"]["message"], r
    assert c.call("file.read", {"workspace": "fx", "path": "b/m.c"})["content"] == \
        "int x = 1;\nint y = 2;\n"
    for m, p, want in [("file.search", {"workspace": "fx", "pattern": "["}, "literal"),
                       ("file.glob", {"workspace": "fx", "pattern": 5}, "pattern"),
                       ("file.move", {"workspace": "fx", "from": "b/m.c", "to": 1}, "to"),
                       ("file.edit", {"workspace": "fx", "path": "b/m.c", "old_string": "",
                                      "new_string": "x"}, "empty")]:
        r = c.call(m, p, raw=True)
        assert r["error"]["code"] == -32602 and want in r["error"]["message"], (m, r)
    c.close()


def test_shell_until_resize_list_over_serve(server, state):
    """shell.read with until (answered once the prompt is there, text
    stripped), shell.resize, shell.list; bad arguments are -32602."""
    c = Conn(server)
    assert {"shell.resize", "shell.list"} <= set(c.call("rpc.methods")["methods"])
    c.call("workspace.create", {"name": "sx"})
    sh = c.call("shell.open", {"workspace": "sx", "command": ["sh"]})["shell"]
    c.call("shell.write", {"workspace": "sx", "shell": sh,
                           "input": "PS1='P> '; printf '\\033[1mB\\033[0m\\n'\n"})
    r = c.call("shell.read", {"workspace": "sx", "shell": sh, "until": "P> $"})
    assert r["output"].endswith("B\nP> ") and "\x1b" not in r["output"], r
    assert c.call("shell.resize", {"workspace": "sx", "shell": sh, "rows": 7,
                                   "cols": 33})["cols"] == 33
    c.call("shell.write", {"workspace": "sx", "shell": sh, "input": "stty size\n"})
    r = c.call("shell.read", {"workspace": "sx", "shell": sh, "cursor": r["next_cursor"],
                              "until": "7 33"})
    assert "7 33" in r["output"], r
    assert [s["shell"] for s in c.call("shell.list", {"workspace": "sx"})["shells"]] == [sh]
    for p in [{"until": "["}, {"quiet_ms": -1}, {"raw": 1}]:
        r = c.call("shell.read", dict({"workspace": "sx", "shell": sh}, **p), raw=True)
        assert r["error"]["code"] == -32602 and list(p)[0] in r["error"]["message"], (p, r)
    c.close()


def test_background_exec_secret_env_is_redacted(server, state, tmp_path):
    """exec.start takes secret_env as exec does: the command gets the
    value, its output (poll, wait's tails, list) shows it redacted, and an
    unknown secret name is refused with nothing started."""
    ws = _secret_ws(state, tmp_path, "bsw")
    c = Conn(server)
    r = c.call("exec.start", {"workspace": ws, "secret_env": ["TOKEN"],
                              "command": "echo $TOKEN; echo $TOKEN >&2; "
                                         "test \"$TOKEN\" = \"$(cat /run/secrets/TOKEN)\""})
    j = r["job"]
    r = c.call("exec.wait", {"workspace": ws, "job": j})
    assert r["ended"] and r["exit_code"] == 0, r
    assert SVALUE not in json.dumps(r) and "[REDACTED:TOKEN]" in r["stdout_tail"], r
    r = c.call("exec.poll", {"workspace": ws, "job": j})
    assert SVALUE not in json.dumps(r) and "[REDACTED:TOKEN]" in r["stderr"], r
    r = c.call("exec.start", {"workspace": ws, "secret_env": ["NOPE"], "command": "true"},
               raw=True)
    assert r["error"]["code"] == -32602 and "NOPE" in r["error"]["message"], r
    assert len(c.call("exec.list", {"workspace": ws})["jobs"]) == 1
    c.close()
