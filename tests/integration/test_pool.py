"""Warm pools (docs/pool.md): `sandpit serve --pool N` and `sandpit mcp
--pool N` keep workspaces ready and hand them out on workspace_create,
driven by real serve and MCP clients. A handed-out workspace shows nothing
of the pool (name, hostname, env, files, logs, mountinfo), is as isolated
as a fresh one (the escape program's attacks give the same answers in
both), takes the request's narrower limits; a burst drains and refills the
pool; a kill -9 of the pool's owner leaves nothing running."""
import json
import os
import re
import signal
import subprocess
import time

import pytest

from conftest import IS_ROOT, SANDPIT, sandpit, start_serve
from test_mcp import Mcp
from test_serve import Conn

ESCAPE = os.path.abspath(os.environ["ESCAPE_BIN"]) \
    if os.environ.get("ESCAPE_BIN") else ""


def wait_for(pred, what, timeout=60):
    """Poll pred() until it is true (a wait, not a timing assertion)."""
    end = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        assert time.monotonic() < end, "gave up waiting: " + what
        time.sleep(0.02)


def slots(state):
    d = os.path.join(state, "workspaces")
    return sorted(n for n in os.listdir(d) if n.startswith(".pool-"))


def alive(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            return "\nState:\tZ" not in f.read()
    except FileNotFoundError:
        return False


def slot_pids(state):
    """Supervisor and agent pids of the pool's slots (their state.json)."""
    pids = []
    for n in slots(state):
        try:
            with open(os.path.join(state, "workspaces", n, "state.json")) as f:
                st = json.load(f)
        except (OSError, ValueError):
            continue
        pids += [p for p in (st.get("supervisor_pid"), st.get("agent_pid")) if p]
    return pids


def pool(c):
    return c.call("pool.status")["pool"]


def ready(c, n):
    return wait_for(lambda: pool(c)["ready"] >= n and pool(c), "%d ready" % n)


@pytest.fixture
def policy(tmp_path):
    """An operator's policy file (readable by an ordinary user's server)."""
    def make(obj):
        p = tmp_path / ("policy-%d.json" % len(os.listdir(tmp_path)))
        p.write_text(json.dumps(obj))
        os.chmod(tmp_path, 0o755)
        os.chmod(p, 0o644)
        return str(p)
    return make


@pytest.fixture
def serve(state, tmp_path):
    """serve(*args) -> (Conn, Popen); every server is stopped at the end
    and must exit 0 leaving no pool slot behind."""
    procs = []

    def start(*args):
        path = str(tmp_path / ("s%d.sock" % len(procs)))
        p = start_serve(state, path, *args, stderr=subprocess.PIPE)
        procs.append(p)
        return Conn(path), p
    yield start
    for p in procs:
        if p.poll() is None:
            p.terminate()
            assert p.wait(timeout=30) == 0
    wait_for(lambda: not slots(state), "the pool's slots to go")


def exec_out(c, ws, cmd):
    r = c.call("exec", {"workspace": ws, "command": cmd})
    assert r.get("exit_code") == 0, r
    return r["stdout"]


def test_create_takes_a_warm_workspace_and_the_pool_refills(state, serve):
    c, _ = serve("--pool", "2")  # _: the server's Popen
    st = ready(c, 2)
    assert st["size"] == 2 and st["hits"] == 0 and st["keeper"] is True
    assert len(slots(state)) == 2
    # ps --json and doctor show the pool
    env = {"SANDPIT_STATE": state}
    ps = json.loads(sandpit("ps", "--json", env=env).stdout)
    pooled = [w for w in ps if w["state"] == "pooled"]
    assert sorted(w["name"] for w in pooled) == slots(state), ps
    assert all(w["pool_owner"] == _.pid and w["supervisor_pid"] for w in pooled)
    d = json.loads(sandpit("doctor", "--json", env=env).stdout)["pool"]
    assert d["slots"] == 2 and d["ready"] == 2 and d["owners"] == [_.pid], d
    assert "2 ready of 2 pooled" in sandpit("doctor", env=env).stdout
    r = c.call("workspace.create", {"name": "p1"})
    assert r["workspace"] == "p1" and r["state"] == "running", r
    st = pool(c)
    assert st["hits"] == 1 and st["misses"] == 0, st
    assert exec_out(c, "p1", "echo hi") == "hi\n"
    # the name is the workspace's everywhere: ps, the CLI, its state
    ps = json.loads(sandpit("ps", "--json", env={"SANDPIT_STATE": state}).stdout)
    assert [w["name"] for w in ps if w["state"] == "running"] == ["p1"], ps
    r = sandpit("exec", "p1", "--", "true", env={"SANDPIT_STATE": state})
    assert r.returncode == 0, r.stderr
    # refilled to two again; the list of workspaces shows no slot
    ready(c, 2)
    names = [w["name"] for w in c.call("workspace.list")["workspaces"]]
    assert names == ["p1"], names
    # generated names work too
    r = c.call("workspace.create", {})
    assert re.fullmatch(r"ws-[0-9a-f]{6}", r["workspace"]), r
    assert pool(c)["hits"] == 2


def test_pooled_workspace_shows_nothing_of_the_pool(state, serve):
    """Hostname, environment, files, mountinfo and the supervisor's log of
    a pooled workspace are those of a fresh one."""
    c, _ = serve("--pool", "1")
    ready(c, 1)
    c.call("workspace.create", {"name": "pooled"})
    assert pool(c)["hits"] == 1
    fresh, _ = serve()  # the same policy, no pool
    fresh.call("workspace.create", {"name": "fresh"})
    probe = ("hostname; echo; env | sort; echo; "
             "ls -A /workspace /tmp \"$HOME\"; echo; "
             "cut -d' ' -f5- /proc/self/mountinfo | sed 's/ - / /'; echo; "
             "ps -e -o comm= > /tmp/.procs 2>/dev/null; sort /tmp/.procs")
    a = exec_out(c, "pooled", probe)
    b = exec_out(fresh, "fresh", probe)
    assert a == b, (a, b)
    assert "pool" not in a and "sandpit\n" == a.splitlines(True)[0]
    for name in ("pooled", "fresh"):
        d = os.path.join(state, "workspaces", name)
        with open(os.path.join(d, "supervisor.log")) as f:
            log = f.read()
        assert ".pool-" not in log and "workspace %s running" % name in log, log
        with open(os.path.join(d, "state.json")) as f:
            st = json.load(f)
        assert st["name"] == name
        assert st["policy"]["workspace"].endswith("/workspaces/%s/workspace" % name)
        assert ".pool-" not in json.dumps(st)


def test_a_request_the_pool_does_not_fit_gets_a_fresh_one(state, serve):
    c, _ = serve("--pool", "1")
    ready(c, 1)
    r = c.call("workspace.create", {"name": "t", "timeout": 5})
    assert r["state"] == "running"
    st = pool(c)
    assert st["hits"] == 0 and st["misses"] == 1 and st["ready"] == 1, st
    # a name in use: refused as a fresh create would, the slot kept
    r = c.call("workspace.create", {"name": "t"}, raw=True)
    assert "already exists" in r["error"]["message"], r
    assert pool(c)["ready"] == 1
    assert len(slots(state)) == 1


@pytest.mark.skipif(not IS_ROOT, reason="cgroup limits are enforced as root")
def test_pooled_workspace_takes_narrower_limits(state, serve, policy):
    """memory and pids asked for at create are the pooled cgroup's."""
    c, _ = serve("--pool", "2", "--policy", policy({"limits": {"memory": "1G"}}))
    ready(c, 2)
    c.call("workspace.create", {"name": "small", "memory": "64M", "pids": 40})
    c.call("workspace.create", {"name": "control"})
    assert pool(c)["hits"] == 2
    hog = "head -c 200000000 /dev/zero > /tmp/big; echo done"
    forks = "for i in $(seq 60); do sleep 1 & done; wait; echo done"
    r = c.call("exec", {"workspace": "small", "command": forks})
    assert r["exit_code"] != 0 or "fork" in r["stderr"].lower(), r
    # over 64M: the OOM killer ends it (on cgroup v1 with the workspace,
    # as it does a fresh one's)
    r = c.call("exec", {"workspace": "small", "command": hog}, raw=True)
    res = r.get("result", {})
    assert "error" in r or (res["exit_code"] != 0 and "done" not in
                            res["stdout"]), r
    # the control: the pool's own limits let both through
    for cmd in (hog, forks):
        r = c.call("exec", {"workspace": "control", "command": cmd})
        assert r["exit_code"] == 0 and r["stdout"] == "done\n", r
    with open(os.path.join(state, "workspaces", "small", "state.json")) as f:
        st = json.load(f)
    assert st["policy"]["limits"]["memory"] == 64 << 20
    assert st["policy"]["limits"]["pids"] == 40
    # a limit wider than the pool's is not taken from it (and refused)
    r = c.call("workspace.create", {"name": "big", "memory": "2G"}, raw=True)
    assert "error" in r and pool(c)["hits"] == 2


@pytest.mark.skipif(not ESCAPE, reason="set ESCAPE_BIN")
def test_pooled_isolation_equals_fresh(state, serve, policy):
    """The escape program's attacks, run in a pooled workspace and in a
    fresh one of the same policy, give the same refusals."""
    pol = policy({"mounts": [{"type": "ro", "src": os.path.dirname(ESCAPE)}]})
    c, _ = serve("--pool", "1", "--policy", pol)
    ready(c, 1)
    c.call("workspace.create", {"name": "pooled"})
    assert pool(c)["hits"] == 1
    f, _ = serve("--policy", pol)
    f.call("workspace.create", {"name": "fresh"})
    victim = subprocess.Popen(["sleep", "300"])
    attacks = [["ptrace"], ["ptrace-traceme"], ["process-vm-readv"],
               ["mount-tmpfs", "/tmp"], ["fsopen"], ["open-tree"],
               ["unshare-user"], ["clone-newuser"], ["clone3"], ["bpf"],
               ["io-uring-setup"], ["userfaultfd"], ["perf-event-open"],
               ["keyctl"], ["socket-packet"], ["fds"],
               ["read", "/root/.bashrc"], ["write", "/usr/sp-escape"],
               ["kill", str(victim.pid)], ["ifaces"]]
    try:
        for a in attacks:
            cmd = [ESCAPE, *a]
            rp = c.call("exec", {"workspace": "pooled", "command": cmd})
            rf = f.call("exec", {"workspace": "fresh", "command": cmd})
            assert (rp["exit_code"], rp["stdout"]) == \
                (rf["exit_code"], rf["stdout"]), (a, rp, rf)
        # and they are refusals
        for a, want in ((["ptrace"], "errno EPERM"), (["bpf"], "errno EPERM"),
                        (["fds"], "none"), (["unshare-user"], "errno EPERM")):
            rp = c.call("exec", {"workspace": "pooled",
                                 "command": [ESCAPE, *a]})
            assert rp["stdout"].strip() == want, (a, rp)
        assert victim.poll() is None
    finally:
        victim.kill()
        victim.wait()


def test_kill9_of_the_owner_leaves_nothing_running(state, serve):
    c, p = serve("--pool", "3")
    ready(c, 3)
    pids = slot_pids(state)
    assert len(pids) == 6 and all(alive(x) for x in pids), pids
    keeper = [int(x) for x in os.listdir("/proc") if x.isdigit()
              and _ppid(int(x)) == p.pid]
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    wait_for(lambda: not any(alive(x) for x in pids + keeper),
             "the pool's processes to end")
    wait_for(lambda: not slots(state), "the slots to be removed")
    # a new pool sweeps what a killed one could not (none here) and works
    c2, _ = serve("--pool", "1")
    ready(c2, 1)


def _ppid(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return -1


def test_a_burst_of_50_creates_drains_and_refills(state, serve):
    c, _ = serve("--pool", "4")
    ready(c, 4)
    names = []
    for i in range(50):
        r = c.call("workspace.create", {"name": "b%02d" % i})
        assert r.get("state") == "running", r
        names.append(r["workspace"])
    st = pool(c)
    assert st["hits"] + st["misses"] == 50 and st["hits"] >= 4, st
    assert len(set(names)) == 50
    ps = json.loads(sandpit("ps", "--json", env={"SANDPIT_STATE": state}).stdout)
    assert sorted(w["name"] for w in ps if w["state"] == "running") == names
    st = ready(c, 4)
    assert st["refilling"] == 0 and len(slots(state)) == 4, st
    # each is its own: a file in one is in no other
    c.call("file.write", {"workspace": "b00", "path": "mine", "content": "x"})
    for n in ("b01", "b49"):
        assert exec_out(c, n, "ls -A /workspace") == ""
    for n in names:
        c.call("workspace.delete", {"workspace": n})
    assert len(slots(state)) == 4


def test_pool_from_the_policy_key_and_bad_sizes(state, serve, policy, tmp_path):
    c, _ = serve("--policy", policy({"pool": 2}))
    assert ready(c, 2)["size"] == 2
    for bad in ("0", "65", "x", "-1"):
        r = sandpit("serve", "--socket", str(tmp_path / "bad.sock"), "--pool",
                    bad, env={"SANDPIT_STATE": state})
        assert r.returncode != 0 and "--pool" in r.stderr, r
    r = sandpit("mcp", "--pool", "0", env={"SANDPIT_STATE": state})
    assert r.returncode != 0 and "--pool" in r.stderr
    bad = policy({"pool": 1000})
    r = sandpit("serve", "--socket", str(tmp_path / "bad.sock"), "--policy",
                bad, env={"SANDPIT_STATE": state})
    assert r.returncode != 0 and "pool" in r.stderr, r
    # a server without a pool says so
    c2, _ = serve()
    assert c2.call("pool.status")["pool"] is None


def test_mcp_pool(state):
    m = Mcp(state, "--pool", "2")
    try:
        m.init()
        st = wait_for(lambda: m.tool("pool_status")["structuredContent"]["pool"]
                      if m.tool("pool_status")["structuredContent"]["pool"]["ready"] >= 2
                      else None, "2 ready")
        assert st["size"] == 2
        r = m.tool("workspace_create", name="m1")
        assert not r.get("isError"), r
        st = m.tool("pool_status")["structuredContent"]["pool"]
        assert st["hits"] == 1 and st["misses"] == 0, st
        r = m.tool("exec", workspace="m1", command="hostname")
        assert r["structuredContent"]["stdout"] == "sandpit\n", r
        m.tool("workspace_delete", workspace="m1")
    finally:
        assert m.close() == 0
    wait_for(lambda: not slots(state), "the MCP pool's slots to go")


# ---- run --pool ---------------------------------------------------------

def run_slots(state):
    return [n for n in slots(state) if re.fullmatch(r"\.pool-\d+-r[0-9a-f]{8}", n)]


def test_run_pool(state, tmp_path):
    """run --pool: a one-shot workspace from the user's pool (the first
    run, finding none, uses a fresh one and starts the keeper); stdin,
    stdout and the exit status pass as with run; nothing is left after
    the run; the keeper's end takes the pool with it."""
    env = {"SANDPIT_STATE": state}
    wd = tmp_path / "wd"
    wd.mkdir()
    (wd / "mine").write_text("host file")
    cmd = ["run", "--pool", "--", "sh", "-c",
           "hostname; pwd; ls -A; cat; exit 7"]
    r = sandpit(*cmd, cwd=str(wd), input="from stdin\n", env=env)
    assert (r.returncode, r.stdout) == (7, "sandpit\n/workspace\nfrom stdin\n"), r
    lock = os.path.join(state, "pool-run.lock")
    keeper = wait_for(lambda: open(lock).read().strip(), "the keeper's pid")
    wait_for(lambda: len(run_slots(state)) >= 1, "a pooled one")
    before = set(run_slots(state))
    r = sandpit(*cmd, cwd=str(wd), input="again\n", env=env)
    assert (r.returncode, r.stdout) == (7, "sandpit\n/workspace\nagain\n"), r
    assert before - set(run_slots(state)), "no pooled workspace was taken"
    # the one-shot workspace removes itself; no workspace is left
    wait_for(lambda: not [n for n in os.listdir(os.path.join(state, "workspaces"))
                          if not n.startswith(".pool-")], "the run's workspace to go")
    ps = json.loads(sandpit("ps", "--json", env=env).stdout)
    assert all(w["state"] in ("pooled", "refilling") for w in ps), ps
    # policy flags are refused with --pool (the pool's policy is fixed)
    r = sandpit("run", "--pool", "--memory", "1G", "--", "true", env=env)
    assert r.returncode != 0 and "--pool" in r.stderr, r
    # the keeper ends (it would after SP_POOL_RUN_IDLE): the pool goes too
    pids = wait_for(lambda: slot_pids(state), "a refilled one")
    os.kill(int(keeper), signal.SIGKILL)
    wait_for(lambda: not any(alive(x) for x in pids + [int(keeper)]),
             "the pool's processes to end")
    # (a create the keeper was making when it died is gc's: its directory
    # has no supervisor)
    wait_for(lambda: sandpit("gc", env=env) and not slots(state),
             "the run pool's slots to go")
