"""`sandpit mcp`: the whole agent session through the official MCP
TypeScript SDK client (tests/mcp/session.mjs, run with node), and the
protocol's edges with raw JSON-RPC on the server's stdin: version
negotiation, malformed and oversized messages, batches, requests before
initialize, cancellation, non-UTF-8 output, the operator's --policy."""
import json
import os
import shutil
import subprocess
import time

import pytest

from conftest import SANDPIT, sandpit

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
MCPDIR = os.path.join(ROOT, "tests", "mcp")


class Mcp:
    """sandpit mcp on pipes, spoken to line by line."""

    def __init__(self, state, *args):
        env = dict(os.environ, SANDPIT_STATE=state)
        self.p = subprocess.Popen([SANDPIT, "mcp", *args], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, env=env)
        self.next_id = 100
        self.notes = []

    def send_raw(self, data):
        self.p.stdin.write(data)
        self.p.stdin.flush()

    def send(self, obj):
        self.send_raw(json.dumps(obj).encode() + b"\n")

    def recv(self):
        line = self.p.stdout.readline()
        assert line, "the server closed its stdout"
        return json.loads(line)

    def request(self, method, params=None):
        self.next_id += 1
        msg = {"jsonrpc": "2.0", "id": self.next_id, "method": method}
        if params is not None:
            msg["params"] = params
        self.send(msg)
        while True:
            r = self.recv()
            if isinstance(r, dict) and r.get("method"):
                self.notes.append(r)
            elif r.get("id") == self.next_id:
                return r

    def init(self, version="2025-11-25"):
        r = self.request("initialize", {"protocolVersion": version,
                                        "capabilities": {},
                                        "clientInfo": {"name": "t", "version": "1"}})
        self.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        return r

    def tool(self, tool_name, **args):
        return self.request("tools/call", {"name": tool_name, "arguments": args})["result"]

    def close(self):
        if self.p.poll() is None:
            self.p.stdin.close()
            try:
                self.p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        return self.p.returncode


@pytest.fixture
def mcp(state):
    m = Mcp(state)
    yield m
    m.close()


def sdk_script(script, timeout, **env_extra):
    """Run tests/mcp/SCRIPT (an official SDK client session that asserts
    every result) and check it reported ALL OK; skip without node or the
    SDK. Returns the CompletedProcess."""
    node = shutil.which("node")
    if not node:
        pytest.skip("node is not installed")
    if not os.path.isdir(os.path.join(MCPDIR, "node_modules", "@modelcontextprotocol")):
        pytest.skip("tests/mcp/node_modules missing: run npm ci in tests/mcp")
    env = dict(os.environ, SANDPIT_BIN=SANDPIT, **env_extra)
    r = subprocess.run([node, os.path.join(MCPDIR, script)], env=env,
                       capture_output=True, text=True, timeout=timeout,
                       cwd=MCPDIR)
    print(r.stdout[-20000:], r.stderr[-5000:])
    assert r.returncode == 0, [l for l in r.stdout.splitlines() if l.startswith("not ok")]
    assert "ALL OK" in r.stdout
    return r


def test_sdk_session(state):
    """The official SDK client: connect, list tools, a whole agent session,
    edge cases (session.mjs asserts every result)."""
    sdk_script("session.mjs", 240, SANDPIT_STATE=state)


@pytest.mark.parametrize("asked,answered", [
    ("2025-11-25", "2025-11-25"),
    ("2025-06-18", "2025-06-18"),
    ("2025-03-26", "2025-03-26"),
    ("2024-11-05", "2024-11-05"),
    ("1999-01-01", "2025-11-25"),
    ("2030-01-01", "2025-11-25"),
])
def test_version_negotiation(mcp, asked, answered):
    r = mcp.init(asked)
    assert r["result"]["protocolVersion"] == answered
    assert r["result"]["serverInfo"]["name"] == "sandpit"
    tools = mcp.request("tools/list")["result"]["tools"]
    ex = [t for t in tools if t["name"] == "exec"][0]
    # outputSchema/structuredContent exist from 2025-06-18 on.
    assert ("outputSchema" in ex) == (answered >= "2025-06-18")


def test_protocol_errors_change_nothing(mcp, state):
    mcp.send_raw(b"{not json\n")
    assert mcp.recv()["error"]["code"] == -32700
    mcp.send_raw(b"[]\n")
    assert mcp.recv()["error"]["code"] == -32600
    mcp.send_raw(b"42\n")
    assert mcp.recv()["error"]["code"] == -32600
    mcp.send({"jsonrpc": "1.0", "id": 1, "method": "ping"})
    r = mcp.recv()
    assert r["error"]["code"] == -32600 and r["id"] == 1
    mcp.send({"jsonrpc": "2.0", "id": {"x": 1}, "method": "ping"})
    assert mcp.recv()["error"]["code"] == -32600
    mcp.send({"jsonrpc": "2.0", "id": 2, "method": 7})
    assert mcp.recv()["error"]["code"] == -32600
    # Before initialize: only ping.
    assert mcp.request("ping")["result"] == {}
    r = mcp.request("tools/call", {"name": "workspace_list", "arguments": {}})
    assert r["error"]["code"] == -32600 and "initialize" in r["error"]["message"]
    mcp.init()
    assert mcp.request("no/such")["error"]["code"] == -32601
    assert mcp.request("tools/call", {"name": "nope"})["error"]["code"] == -32602
    assert mcp.request("tools/call", "str")["error"]["code"] in (-32600, -32602)
    assert mcp.request("logging/setLevel", {"level": "loud"})["error"]["code"] == -32602
    r = mcp.tool("workspace_create", name="x", memory={"a": 1})
    assert r["isError"] is True and "memory" in r["content"][0]["text"]
    r = mcp.tool("workspace_list", extra=1)
    assert r["isError"] is True and "extra" in r["content"][0]["text"]
    # A NUL in a string argument: refused with the request's id (a reply
    # with a null id is one an SDK client drops, and then waits forever).
    mcp.send_raw(b'{"jsonrpc":"2.0","id":77,"method":"tools/call","params":'
                 b'{"name":"workspace_create","arguments":{"name":"a\\u0000b"}}}\n')
    r = mcp.recv()
    assert r["id"] == 77 and r["error"]["code"] == -32602, r
    assert "NUL" in r["error"]["message"]
    # Nothing was created by any of that.
    assert mcp.tool("workspace_list")["structuredContent"]["workspaces"] == []
    assert json.loads(sandpit("ps", "--json", env={"SANDPIT_STATE": state}).stdout) == []


def test_oversized_message(state):
    m = Mcp(state)
    try:
        m.init()
        big = b'{"jsonrpc":"2.0","id":5,"method":"ping","params":{"x":"' + \
            b"a" * (17 * 1024 * 1024) + b'"}}\n'
        m.send_raw(big)
        r = m.recv()
        assert r["error"]["code"] == -32600 and "longer than" in r["error"]["message"]
        # The server goes on with the next message.
        assert m.request("ping")["result"] == {}
    finally:
        m.close()


def test_batch_and_notifications(mcp):
    mcp.init()
    mcp.send([{"jsonrpc": "2.0", "id": "a", "method": "ping"},
              {"jsonrpc": "2.0", "method": "notifications/whatever"},
              {"jsonrpc": "2.0", "id": "b", "method": "nope"},
              {"jsonrpc": "2.0", "id": "c", "method": "tools/call",
               "params": {"name": "workspace_list", "arguments": {}}},
              5])
    r = mcp.recv()
    assert isinstance(r, list) and len(r) == 4
    by = {x["id"]: x for x in r}
    assert by["a"]["result"] == {}
    assert by["b"]["error"]["code"] == -32601
    assert by["c"]["result"]["isError"] is False
    assert by[None]["error"]["code"] == -32600
    # A batch of notifications only is not answered: the next reply is ping's.
    mcp.send([{"jsonrpc": "2.0", "method": "notifications/x"}])
    assert mcp.request("ping")["result"] == {}


def test_exec_output_bounds_and_cancel(mcp, state):
    mcp.init()
    mcp.request("logging/setLevel", {"level": "debug"})
    r = mcp.tool("workspace_create", name="w1")
    assert r["isError"] is False, r
    # Output that is not UTF-8 still makes valid JSON (U+FFFD).
    r = mcp.tool("exec", workspace="w1", command="printf 'a\\377b\\n'")
    assert r["structuredContent"]["stdout"] == "a\ufffdb\n"
    # A multi-byte character is never cut in half by the bound.
    r = mcp.tool("exec", workspace="w1", command="for i in $(seq 400); do printf '\\303\\251'; done",
                 max_output=301)
    s = r["structuredContent"]
    assert s["truncated"] is True and s["stdout_bytes"] == 800
    assert s["stdout"] == "\u00e9" * 150
    out = s["output_files"]["stdout"]
    r = mcp.tool("file_read", workspace="w1", path=out)
    assert r["structuredContent"]["content"] == "\u00e9" * 400
    # Cancel a running exec: no reply for it, and the command dies.
    mcp.send({"jsonrpc": "2.0", "id": "long", "method": "tools/call",
              "params": {"name": "exec", "arguments": {
                  "workspace": "w1", "command": "echo $$ > p; exec sleep 60"}}})
    time.sleep(0.5)
    mcp.send({"jsonrpc": "2.0", "method": "notifications/cancelled",
              "params": {"requestId": "long", "reason": "test"}})
    time.sleep(0.3)
    r = mcp.request("tools/call", {"name": "exec", "arguments": {
        "workspace": "w1", "command": "sleep 0.5; kill -0 $(cat p) 2>/dev/null && echo alive || echo gone"}})
    assert r["result"]["structuredContent"]["stdout"] == "gone\n"
    mcp.tool("workspace_delete", workspace="w1")
    logs = [n["params"] for n in mcp.notes if n["method"] == "notifications/message"]
    assert any(l["level"] == "info" and "workspace_create: w1" in l["data"] for l in logs)
    assert any(l["level"] == "debug" and "exec in w1" in l["data"] for l in logs)
    assert any("cancelled" in l["data"] for l in logs)
    # At "error", nothing of that is sent.
    mcp.request("logging/setLevel", {"level": "error"})
    mcp.notes.clear()
    mcp.tool("workspace_list")
    assert mcp.notes == []


def test_eof_waits_for_running_exec(state):
    m = Mcp(state)
    m.init()
    assert m.tool("workspace_create", name="w2")["isError"] is False
    m.send({"jsonrpc": "2.0", "id": 9, "method": "tools/call",
            "params": {"name": "exec", "arguments": {"workspace": "w2",
                                                      "command": "sleep 0.3; echo done"}}})
    m.p.stdin.close()
    r = json.loads(m.p.stdout.readline())
    assert r["id"] == 9 and r["result"]["structuredContent"]["stdout"] == "done\n"
    assert m.p.wait(timeout=10) == 0


def test_policy_ceiling_and_ownership(state, tmp_path):
    pol = tmp_path / "policy.json"
    pol.write_text(json.dumps({"limits": {"memory": "128M", "pids": 64}, "timeout": 30}))
    os.chmod(tmp_path, 0o755)
    os.chmod(pol, 0o644)
    # A workspace the operator made outside the MCP server.
    assert sandpit("create", "operators", env={"SANDPIT_STATE": state}).returncode == 0
    m = Mcp(state, "--policy", str(pol))
    try:
        m.init()
        r = m.tool("workspace_create", name="agent1", memory="512M")
        assert r["isError"] is True and "over the operator's limit" in r["content"][0]["text"]
        r = m.tool("workspace_create", name="agent1", pids=1000)
        assert r["isError"] is True and "pids" in r["content"][0]["text"]
        r = m.tool("workspace_create", name="agent1", timeout=100)
        assert r["isError"] is True and "timeout" in r["content"][0]["text"]
        r = m.tool("workspace_create", name="agent1", network="allow:example.com")
        assert r["isError"] is True and "not allowed" in r["content"][0]["text"]
        r = m.tool("workspace_create", name="agent1", memory="64M")
        assert r["isError"] is False, r
        assert r["structuredContent"]["limits"]["memory"] == 64 * 1024 * 1024
        r = m.tool("workspace_create", name="agent2")
        assert r["structuredContent"]["limits"]["memory"] == 128 * 1024 * 1024
        # Only its own workspaces are visible and usable.
        names = [w["name"] for w in m.tool("workspace_list")["structuredContent"]["workspaces"]]
        assert sorted(names) == ["agent1", "agent2"]
        for tool, args in [("exec", {"command": "true"}), ("workspace_delete", {}),
                           ("workspace_stop", {}), ("file_read", {"path": "x"})]:
            r = m.tool(tool, workspace="operators", **args)
            assert r["isError"] is True and "created" in r["content"][0]["text"], (tool, r)
        # The memory limit is the one the sandbox gets.
        r = m.tool("exec", workspace="agent1",
                   command="cat /sys/fs/cgroup/memory.max 2>/dev/null || cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || echo unknown")
        assert r["structuredContent"]["exit_code"] == 0
        m.tool("workspace_delete", workspace="agent1")
        m.tool("workspace_delete", workspace="agent2")
    finally:
        m.close()
    ps = json.loads(sandpit("ps", "--json", env={"SANDPIT_STATE": state}).stdout)
    assert [w["name"] for w in ps] == ["operators"]


def test_bad_policy_file(state, tmp_path):
    r = sandpit("mcp", "--policy", str(tmp_path / "missing.json"),
                env={"SANDPIT_STATE": state}, input="")
    assert r.returncode == 125 and r.stderr.startswith("sandpit: mcp:")
    r = sandpit("mcp", "--max-output", "12", env={"SANDPIT_STATE": state}, input="")
    assert r.returncode == 125 and "--max-output" in r.stderr


def test_fork_sdk(state):
    """workspace_snapshot + workspace_fork through the official SDK client
    (tests/mcp/fork.mjs asserts every result)."""
    sdk_script("fork.mjs", 120, SANDPIT_STATE=state)
    assert json.loads(sandpit("ps", "--json", env={"SANDPIT_STATE": state}).stdout) == []


def test_fork_policy_ceiling_and_ownership(state, tmp_path):
    """mcp --policy: workspace_fork is held to the operator's policy as
    workspace_create is, and only forks this server's workspaces."""
    pol = tmp_path / "policy.json"
    pol.write_text(json.dumps({"limits": {"memory": "128M", "pids": 64}, "timeout": 30}))
    os.chmod(tmp_path, 0o755)
    os.chmod(pol, 0o644)
    env = {"SANDPIT_STATE": state}
    assert sandpit("create", "operators", env=env).returncode == 0
    assert sandpit("snapshot", "operators", "s", env=env).returncode == 0
    m = Mcp(state, "--policy", str(pol))
    try:
        m.init()
        assert m.tool("workspace_create", name="a0")["isError"] is False
        assert m.tool("file_write", workspace="a0", path="f", content="a0\n")["isError"] is False
        assert m.tool("workspace_snapshot", workspace="a0", snapshot="s")["isError"] is False
        for pl, word in [({"memory": "512M"}, "over the operator's limit"),
                         ({"pids": 1000}, "pids"), ({"cpus": 0}, "cpus"),
                         ({"timeout": 100}, "timeout"),
                         ({"network": "allow:example.com"}, "not allowed")]:
            r = m.tool("workspace_fork", workspace="a0", snapshot="s", name="a1", policy=pl)
            assert r["isError"] is True and word in r["content"][0]["text"], (pl, r)
        r = m.tool("workspace_fork", workspace="operators", snapshot="s", name="a1")
        assert r["isError"] is True and "created" in r["content"][0]["text"], r
        r = m.tool("workspace_fork", workspace="a0", snapshot="s", name="a1",
                   policy={"pids": 32})
        assert r["isError"] is False, r
        assert r["structuredContent"]["limits"] == {"memory": 128 << 20, "pids": 32, "cpus": 0.0}
        r = m.tool("exec", workspace="a1", command="cat f")
        assert r["structuredContent"]["stdout"] == "a0\n"
        names = sorted(w["name"] for w in m.tool("workspace_list")["structuredContent"]["workspaces"])
        assert names == ["a0", "a1"]
        for w in ("a1", "a0"):
            assert m.tool("workspace_delete", workspace=w)["isError"] is False
    finally:
        m.close()
    ps = json.loads(sandpit("ps", "--json", env=env).stdout)
    assert [w["name"] for w in ps] == ["operators"]


def test_fork_keeps_and_checks_the_snapshots_image(state, tmp_path):
    """The fork of a snapshot taken on an image is on that image, which
    must be one the operator allows, as for workspace_create."""
    test_images = pytest.importorskip("test_images")
    if not os.path.exists(test_images.BUSYBOX) or os.path.islink(test_images.BUSYBOX):
        pytest.skip("needs busybox-static at /bin/busybox (scripts/deps.sh --test)")
    os.chmod(tmp_path, 0o755)
    rootfs = test_images.make_rootfs(tmp_path / "rootfs")
    layout, _ = test_images.pack_oci(tmp_path / "oci", test_images.layers(rootfs))
    env = {"SANDPIT_STATE": state}
    for n in ("good", "other"):
        r = sandpit("image", "import", str(layout), "--name", n, env=env)
        assert r.returncode == 0, r.stderr
    # Made on the CLI on an image no client may use: no fork for clients.
    assert sandpit("create", "cli", "--image", "other", env=env).returncode == 0
    assert sandpit("exec", "cli", "--", "/bin/sh", "-c", "echo c > /workspace/c",
                   env=env).returncode == 0
    assert sandpit("snapshot", "cli", "s", env=env).returncode == 0
    m = Mcp(state)
    try:
        m.init()
        r = m.tool("workspace_fork", workspace="cli", snapshot="s", name="x1")
        assert r["isError"] is True and "image other is not allowed" in r["content"][0]["text"], r
        r = m.tool("workspace_fork", workspace="cli", snapshot="s", name="x1",
                   policy={"image": "good"})
        assert r["isError"] is True and "not allowed" in r["content"][0]["text"], r
    finally:
        m.close()
    pol = tmp_path / "policy.json"
    pol.write_text(json.dumps({"images": {"allowed": ["good"]}}))
    os.chmod(pol, 0o644)
    m = Mcp(state, "--policy", str(pol))
    try:
        m.init()
        assert m.tool("workspace_create", name="g0", image="good")["isError"] is False
        r = m.tool("exec", workspace="g0", command=["/bin/sh", "-c", "echo g > /workspace/g"])
        assert r["structuredContent"]["exit_code"] == 0, r
        assert m.tool("workspace_snapshot", workspace="g0", snapshot="s")["isError"] is False
        r = m.tool("workspace_fork", workspace="g0", snapshot="s", name="g1",
                   policy={"image": "other"})
        assert r["isError"] is True and "not allowed" in r["content"][0]["text"], r
        r = m.tool("workspace_fork", workspace="g0", snapshot="s", name="g1")
        assert r["isError"] is False, r
        r = m.tool("exec", workspace="g1",
                   command=["/bin/sh", "-c", "cat /etc/marker /workspace/g"])
        assert r["structuredContent"]["stdout"] == "from-the-image\ng\n", r
        for w in ("g1", "g0"):
            assert m.tool("workspace_delete", workspace=w)["isError"] is False
    finally:
        m.close()
    ps = json.loads(sandpit("ps", "--json", env=env).stdout)
    assert [w["name"] for w in ps] == ["cli"]


def test_secret_env_and_restore_services_sdk(state, tmp_path):
    """secret_env for exec and service_start, refusals of hostile lists,
    and workspace_restore's services, through the official SDK client
    (tests/mcp/secretenv.mjs asserts every result). The secret's value is
    not given to the client: the test greps every result it got, and the
    state directory, for it."""
    if not shutil.which("node"):
        pytest.skip("node is not installed")
    value = "mcp-Secret-Value-51d0"
    f = tmp_path / "tok"
    f.write_text(value)
    os.chmod(f, 0o600)
    r = sandpit("create", "sec", "-q", "--secret", "TOKEN=@%s" % f,
                env={"SANDPIT_STATE": state})
    assert r.returncode == 0, r.stderr
    results = tmp_path / "results.jsonl"
    r = sdk_script("secretenv.mjs", 180, SANDPIT_STATE=state,
                   SECRET_WS="sec", RESULTS_FILE=str(results))
    got = results.read_text()
    assert "REDACTED:TOKEN" in got and value not in got
    assert value not in r.stdout + r.stderr
    g = subprocess.run(["grep", "-rlaF", value, state], capture_output=True,
                       text=True)
    assert g.stdout == "", g.stdout
    assert [w["name"] for w in json.loads(sandpit(
        "ps", "--json", env={"SANDPIT_STATE": state}).stdout)] == ["sec"]


def test_bounds_sdk(state, tmp_path):
    """Issue 18 through the official SDK client (tests/mcp/bounds.mjs
    asserts every result): a ping is answered while service_start waits
    on readiness and shell_read on output; every exec says how it ended
    (exit, signal, timeout, oom, pids); an exec ends every process it
    started (setsid'd ones too, cancelled or not), so background jobs do
    not use up pids; the operator's timeout caps exec, ready_timeout and
    idle_timeout; a null id and an unknown cursor are refused; a client
    that crashes (stdin and stdout closed) takes its commands with it."""
    pol = tmp_path / "policy.json"
    pol.write_text(json.dumps({"timeout": 20}))
    os.chmod(tmp_path, 0o755)
    os.chmod(pol, 0o644)
    sdk_script("bounds.mjs", 240, SANDPIT_STATE=state, BOUNDS_POLICY=str(pol),
               BOUNDS_CGROUP="1" if os.geteuid() == 0 else "0")


def test_failed_patch_report_is_whole(mcp):
    """A patch that does not apply: the tool error carries its report
    whole (structuredContent and the text), not cut inside a message."""
    mcp.init()
    assert mcp.tool("workspace_create", name="pt")["isError"] is False
    mcp.tool("file_write", workspace="pt", path="a.txt", content="one\n")
    r = mcp.tool("patch_apply", workspace="pt",
                 patch="--- a/a.txt\n+++ b/a.txt\n@@ -1 +1 @@\n-zzz\n+two\n")
    assert r["isError"] is True
    assert r["structuredContent"]["kind"] == "patch"
    assert "report" in r["structuredContent"]
    assert "a.txt" in r["content"][0]["text"]


def test_background_execs_sdk(state):
    """Background execs (exec_start, exec_poll, exec_wait, exec_write,
    exec_kill, exec_list) through the official SDK client, with valid and
    invalid arguments (tests/mcp/jobs.mjs asserts every result)."""
    sdk_script("jobs.mjs", 180, SANDPIT_STATE=state)


def test_file_tools_sdk(state):
    """file_stat, file_mkdir, file_move, file_glob, file_search, file_edit
    through the official SDK client, valid and invalid arguments
    (tests/mcp/files.mjs asserts every result)."""
    sdk_script("files.mjs", 180, SANDPIT_STATE=state)


def test_shell_reads_until_resize_list_sdk(state):
    """shell_read with until and quiet_ms, stripped screen text (raw on
    request), shell_resize, shell_list through the official SDK client
    (tests/mcp/shells.mjs asserts every result)."""
    sdk_script("shells.mjs", 180, SANDPIT_STATE=state)


def _tools_list(state, *args):
    m = Mcp(state, *args)
    try:
        m.init()
        r = m.request("tools/list", {})["result"]
        call = m.request("tools/call", {"name": "shell_open",
                                        "arguments": {"workspace": "x"}})
        return r, len(json.dumps(r, separators=(",", ":"))), call
    finally:
        m.close()


def test_tool_profiles(state):
    """--tools core|files|full|LIST: tools/list offers that set (core
    within 1.5k tokens, bytes/4), a tool left out cannot be called, and a
    name that is no tool or profile stops the server with a message."""
    core = {"workspace_create", "workspace_list", "workspace_delete", "exec",
            "exec_start", "exec_wait", "file_read", "file_write", "file_edit"}
    r, size, call = _tools_list(state, "--tools", "core")
    assert {t["name"] for t in r["tools"]} == core
    assert size // 4 <= 1500, size
    assert call["error"]["code"] == -32602 and "shell_open" in call["error"]["message"]
    r, size_files, _ = _tools_list(state, "--tools", "files")
    names = {t["name"] for t in r["tools"]}
    assert core | {"file_search", "file_glob", "file_move", "patch_apply"} <= names
    assert "shell_open" not in names and all("title" in t for t in r["tools"])
    r, size_full, call = _tools_list(state)
    assert len(r["tools"]) >= 40 and "error" not in call
    assert size < size_files < size_full
    r, _, call = _tools_list(state, "--tools", "core,shell_open")
    assert {t["name"] for t in r["tools"]} == core | {"shell_open"}
    assert "error" not in call
    for bad in ["bogus", "core,,exec", "exec,nope"]:
        p = sandpit("mcp", "--tools", bad, input="",
                    env={"SANDPIT_STATE": state})
        assert p.returncode == 125 and "--tools" in p.stderr, (bad, p.stderr)
