"""What programs find about the machine inside a sandbox (run and a
workspace): their hostname resolves, their limits are readable in
/sys/fs/cgroup, the CPU topology is there, /tmp and HOME are big enough
for real installs. docs/limits.md, docs/compatibility.md."""
import json
import shutil

import pytest

from conftest import IS_ROOT, create, run, sp


def test_hostname_resolves_in_run(ws):
    r = run("sh", "-c", "getent hosts sandpit; hostname -f", cwd=ws)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["127.0.1.1", "sandpit", "sandpit"], r.stdout
    r = run("getent", "hosts", "box-9", flags=["--hostname", "box-9"], cwd=ws)
    assert r.returncode == 0 and r.stdout.split() == ["127.0.1.1", "box-9"]
    # the host's own entries are still there
    r = run("getent", "hosts", "localhost", cwd=ws)
    assert r.returncode == 0 and "127.0.0.1" in r.stdout.split()


def test_hostname_resolves_in_workspace(state):
    create(state, "h1", "--hostname", "box-7")
    create(state, "h2")
    r = sp(state, "exec", "h1", "--", "getent", "hosts", "box-7")
    assert r.returncode == 0 and r.stdout.split() == ["127.0.1.1", "box-7"]
    r = sp(state, "exec", "h2", "--", "hostname", "-f")
    assert r.returncode == 0 and r.stdout.strip() == "sandpit", r.stderr
    # a restart keeps it
    assert sp(state, "stop", "h1").returncode == 0
    assert sp(state, "start", "h1").returncode == 0
    r = sp(state, "exec", "h1", "--", "getent", "hosts", "box-7")
    assert r.returncode == 0 and "box-7" in r.stdout, r.stderr


CG_MEM = ("cat /sys/fs/cgroup/memory.max 2>/dev/null || "
          "cat /sys/fs/cgroup/memory/memory.limit_in_bytes")


@pytest.mark.skipif(not IS_ROOT, reason="cgroups need root here (no "
                    "delegation): without one /sys/fs/cgroup is empty")
def test_cgroup_view_shows_the_limits(ws, state):
    r = run("sh", "-c", CG_MEM, flags=["--memory", "256M"], cwd=ws)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == str(256 << 20)
    # read-only, and only the sandbox's own cgroup (rooted at "/")
    r = run("sh", "-c", "touch /sys/fs/cgroup/x; grep -c -v ':/$' "
            "/proc/self/cgroup", flags=["--memory", "256M"], cwd=ws)
    assert "Read-only file system" in r.stderr
    assert r.stdout.strip() == "0", r.stdout
    create(state, "cg", "--memory", "300M")
    r = sp(state, "exec", "cg", "--", "sh", "-c", CG_MEM)
    assert r.returncode == 0 and r.stdout.strip() == str(300 << 20), r.stderr


@pytest.mark.skipif(not IS_ROOT or not shutil.which("node"),
                    reason="needs root (a cgroup) and node")
def test_node_sees_its_memory_limit(ws):
    code = ("const v8 = require('v8');"
            "console.log(JSON.stringify({c: process.constrainedMemory(),"
            " h: v8.getHeapStatistics().heap_size_limit}))")
    r = run("node", "-e", code, flags=["--memory", "256M"], cwd=ws)
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    assert got["c"] == 256 << 20, got
    # its heap limit follows (about 4 GiB when it sees the host's memory)
    assert got["h"] < 512 << 20, got


def test_cpu_topology_visible(ws):
    r = run("sh", "-c", "lscpu | grep '^CPU(s):'; nproc", cwd=ws)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.split("\n")
    assert lines[0].split()[-1].isdigit() and int(lines[1]) >= 1, r.stdout


def test_tmp_and_home_default_size(ws):
    """Big enough for a real install's cache (1 GiB each); the flag that
    raises it is named in --help."""
    r = run("sh", "-c", "df -k /tmp ~ /dev/shm | tail -n +2", cwd=ws)
    assert r.returncode == 0, r.stderr
    sizes = [int(ln.split()[1]) for ln in r.stdout.splitlines()]
    assert sizes == [1 << 20] * 3, r.stdout
    # past it: ENOSPC, and --tmp-size raises it
    r = run("sh", "-c", "head -c 3000000 /dev/zero > ~/f", cwd=ws,
            flags=["--tmp-size", "2M"])
    assert r.returncode != 0 and "No space left" in r.stderr
    from conftest import sandpit
    h = sandpit("run", "--help")
    assert "--tmp-size" in h.stdout + h.stderr
    assert "No space left on device" in h.stdout + h.stderr
