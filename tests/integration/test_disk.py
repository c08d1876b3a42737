"""Disk limits (docs/disk.md): as root, a workspace writes into its own ext4
image on a loop device: writes past --disk fail with ENOSPC wherever they
land (/workspace, the system paths, HOME), --inodes bounds the files, and
the workspace keeps working once files are deleted; df inside shows the
limit; ps shows used/limit; the loop device goes with rm, with gc of a
workspace whose supervisor was killed with SIGKILL, and a failed create.
As an ordinary user nothing can enforce it: every create says so, and
--require disk refuses. For run, --disk and --inodes bound every tmpfs."""
import glob
import json
import os
import signal
import socket
import subprocess
import time

import pytest

from conftest import IS_ROOT, create, sandpit, sp, start_serve

root_only = pytest.mark.skipif(not IS_ROOT, reason="loop devices need root")
user_only = pytest.mark.skipif(IS_ROOT, reason="the unprivileged path")

MiB = 1 << 20


def sh(state, name, script, rc=0):
    r = sp(state, "exec", name, "--", "/bin/sh", "-c", script)
    assert r.returncode == rc, (r.returncode, r.stdout, r.stderr)
    return r


def ps(state, name):
    r = sp(state, "ps", "--json")
    assert r.returncode == 0, r.stderr
    return next(w for w in json.loads(r.stdout) if w["name"] == name)


def loops_of(state, under="workspaces"):
    """Loop devices whose backing file lies in the state dir's `under`
    (workspaces/; disk/ holds the spare images)."""
    top = os.path.join(os.path.realpath(state), under, "")
    out = []
    for f in glob.glob("/sys/block/loop*/loop/backing_file"):
        try:
            with open(f) as fh:
                if fh.read().strip().startswith(top):
                    out.append(f.split("/")[3])
        except OSError:
            pass
    return out


def mounts_of(state, under="workspaces"):
    top = os.path.join(os.path.realpath(state), under, "")
    with open("/proc/self/mountinfo") as f:
        return [ln for ln in f if (" " + top) in ln]


def wait_for(cond, tries=500):
    """Poll for something the kernel does asynchronously (not a timing
    assertion: up to 10 s before failing)."""
    for _ in range(tries):
        if cond():
            return
        time.sleep(0.02)
    assert cond()


def df_inside(state, name, path):
    """(size, used) bytes of the file system at path, as df sees it inside."""
    r = sh(state, name, "df -P -B1 " + path)
    f = r.stdout.splitlines()[-1].split()
    return int(f[1]), int(f[2])


@root_only
def test_write_past_the_limit_then_delete_and_write_again(state):
    create(state, "w1", "--disk", "32M")
    other = create(state, "w2", "--disk", "32M")
    size, used = df_inside(state, "w1", "/workspace")
    # The image less ext4's own metadata: never above the limit, not far below.
    assert 20 * MiB < size <= 32 * MiB, size
    assert df_inside(state, "w1", "/")[0] == size
    r = sh(state, "w1", "dd if=/dev/zero of=/workspace/big bs=1M count=64 "
                        "2>&1", rc=1)
    assert "No space left on device" in r.stdout, r.stdout
    # Every writable place shares the one limit: the root overlay and HOME
    # are full too (/usr is nobody's for root inside: docs/security.md).
    r = sh(state, "w1", "mkdir -p /data && "
                        "dd if=/dev/zero of=/data/x bs=1M count=4 2>&1; "
                        "dd if=/dev/zero of=$HOME/x bs=1M count=4 2>&1",
           rc=1)
    assert r.stdout.count("No space left on device") == 2, r.stdout
    # The supervisor, the agent and the other workspace are fine.
    assert sh(state, "w1", "echo alive").stdout == "alive\n"
    assert sh(state, other, "head -c 1048576 /dev/zero > /workspace/f && "
                            "wc -c < /workspace/f").stdout == "1048576\n"
    d = ps(state, "w1")["disk"]
    assert d["enforced"] and d["limit"] == 32 * MiB, d
    line = next(ln for ln in sp(state, "ps").stdout.splitlines()
                if ln.startswith("w1 "))
    assert "/32.0M" in line, line
    assert d["used"] > 20 * MiB and d["size"] == size, d
    # Deleting makes room again.
    sh(state, "w1", "rm -f /workspace/big /data/x $HOME/x")
    sh(state, "w1", "dd if=/dev/zero of=/workspace/again bs=1M count=8 "
                    "status=none && sync")
    assert ps(state, "w1")["disk"]["used"] < 16 * MiB
    # Full or not, the state dir stays whole: stop and start, diff works.
    assert sp(state, "stop", "w1").returncode == 0
    assert sp(state, "start", "w1").returncode == 0
    assert sh(state, "w1", "wc -c < /workspace/again").stdout == "8388608\n"
    r = sp(state, "diff", "w1", "--json")
    assert r.returncode == 0 and "/workspace/again" in json.loads(r.stdout)["added"]


@root_only
def test_inodes_bound_the_files(state):
    create(state, "w", "--disk", "32M", "--inodes", "256")
    r = sh(state, "w", "cd /workspace; i=0; while [ $i -lt 400 ]; do "
                       "touch f$i 2>/dev/null || break; i=$((i+1)); done; "
                       "echo $i", rc=0)
    made = int(r.stdout)
    assert 100 < made < 256, made
    assert "No space left" in sh(state, "w", "touch /workspace/one-more 2>&1",
                                 rc=1).stdout
    d = ps(state, "w")["disk"]
    assert d["inodes_limit"] == 256 and d["inodes_used"] > 200, d
    sh(state, "w", "rm -f /workspace/f*; : > /workspace/after && echo ok")


@root_only
def test_loop_device_released_on_rm_gc_and_after_sigkill(state):
    create(state, "k", "--disk", "32M")
    sh(state, "k", "echo kept > /workspace/kept")
    assert len(loops_of(state)) == 1 and len(mounts_of(state)) == 2
    pid = ps(state, "k")["supervisor_pid"]
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: ps(state, "k")["state"] == "crashed")  # lock let go
    r = sp(state, "gc")
    assert r.returncode == 0, r.stderr
    assert mounts_of(state) == []
    # The sandbox's own mounts of the image go as its last process dies
    # (the agent follows its supervisor), and the device with them.
    wait_for(lambda: loops_of(state) == [])
    # The files stay in the image: diff and start mount it again.
    r = sp(state, "diff", "k", "--json")
    assert r.returncode == 0 and "/workspace/kept" in json.loads(r.stdout)["added"]
    assert sp(state, "start", "k").returncode == 0
    assert sh(state, "k", "cat /workspace/kept").stdout == "kept\n"
    assert len(loops_of(state)) == 1
    assert sp(state, "rm", "-f", "k").returncode == 0
    assert loops_of(state) == [] and mounts_of(state) == []
    # A create that fails after its image was mounted leaves nothing.
    r = sp(state, "create", "bad", "-q", "--disk", "32M", "--from",
           "/nonexistent-dir")
    assert r.returncode != 0
    assert loops_of(state) == [] and mounts_of(state) == []
    assert not os.path.exists(os.path.join(state, "workspaces", "bad"))


@root_only
def test_spare_image_waits_mounted_and_goes_with_the_last_workspace(state):
    create(state, "a", "--disk", "32M")
    # a's supervisor left a formatted, mounted image for the next create
    wait_for(lambda: len(loops_of(state, "disk")) == 1)
    spare = os.path.realpath(os.path.join(state, "disk", "33554432-0.spare"))
    create(state, "b", "--disk", "32M")
    # b took it whole: its loop device is now b's, backed by b's disk.img
    assert len(loops_of(state)) == 2
    with open(glob.glob("/sys/block/%s/loop/backing_file"
                        % loops_of(state)[0])[0]) as f:
        assert f.read().strip() != spare
    sh(state, "b", "echo b > /workspace/f && cat /workspace/f")
    wait_for(lambda: len(loops_of(state, "disk")) == 1)  # b's spare
    # gc keeps the spare while workspaces remain, drops it with the last
    assert sp(state, "gc").returncode == 0
    assert len(loops_of(state, "disk")) == 1
    for n in ("a", "b"):
        assert sp(state, "rm", "-f", n).returncode == 0
    assert sp(state, "gc").returncode == 0
    wait_for(lambda: loops_of(state, "") == [])
    assert mounts_of(state, "") == []


@root_only
def test_a_damaged_image_is_refused_and_the_rest_goes_on(state):
    create(state, "d", "--disk", "32M")
    create(state, "e", "--disk", "32M")
    assert sp(state, "stop", "d").returncode == 0
    assert sp(state, "gc").returncode == 0  # d's image unmounted
    img = os.path.join(state, "workspaces", "d", "disk.img")
    with open(img, "r+b") as f:  # the ext4 magic gone
        f.seek(1024 + 0x38)
        f.write(b"\0\0")
    r = sp(state, "start", "d")
    assert r.returncode != 0 and "not ext4" in r.stderr, r.stderr
    assert mounts_of(state, "workspaces/d") == []
    assert sh(state, "e", "echo fine").stdout == "fine\n"
    assert sp(state, "rm", "-f", "d").returncode == 0


@root_only
def test_reset_empties_the_image_and_keeps_the_limit(state):
    create(state, "r", "--disk", "32M")
    sh(state, "r", "echo x > /workspace/a && echo y > /etc/b")
    assert sp(state, "reset", "r").returncode == 0
    sh(state, "r", "test ! -e /workspace/a && test ! -e /etc/b")
    sh(state, "r", "echo z > /workspace/c")
    r = sh(state, "r", "dd if=/dev/zero of=/workspace/big bs=1M count=64 "
                       "2>&1", rc=1)
    assert "No space left" in r.stdout
    assert "/workspace/c" in json.loads(sp(state, "diff", "r", "--json").stdout)["added"]


@root_only
def test_snapshots_count_toward_the_limit(state):
    create(state, "s", "--disk", "48M")
    size = ps(state, "s")["disk"]["size"]
    chunk = size // 3 + MiB
    sh(state, "s", f"head -c {chunk} /dev/urandom > /workspace/f && sync")
    for snap in ("a", "b"):
        r = sp(state, "snapshot", "s", snap)
        assert r.returncode == 0, r.stderr
    r = sp(state, "snapshot", "s", "c")
    assert r.returncode != 0 and "disk limit" in r.stderr, r.stderr
    assert sp(state, "snapshot", "rm", "s", "a").returncode == 0
    r = sp(state, "snapshot", "s", "c")
    assert r.returncode == 0, r.stderr


@root_only
def test_a_fork_has_an_image_and_a_limit_of_its_own(state):
    create(state, "src", "--disk", "32M")
    sh(state, "src", "head -c 4194304 /dev/zero > /workspace/base")
    assert sp(state, "snapshot", "src", "s").returncode == 0
    r = sp(state, "fork", "src", "s", "kid", "--disk", "48M")
    assert r.returncode == 0, r.stderr
    d = ps(state, "kid")["disk"]
    assert d["enforced"] and d["limit"] == 48 * MiB, d
    # the snapshot's files show through; what the fork writes is its own
    sh(state, "kid", "wc -c < /workspace/base && "
                     "head -c 8388608 /dev/zero > /workspace/mine")
    assert ps(state, "src")["disk"]["used"] < 8 * MiB
    r = sh(state, "kid", "dd if=/dev/zero of=/workspace/big bs=1M count=64 "
                         "2>&1", rc=1)
    assert "No space left" in r.stdout


@root_only
def test_no_limit_and_require(state):
    # --disk 0: no image, the state dir as before; --require disk refuses it.
    create(state, "n", "--disk", "0")
    assert ps(state, "n")["disk"]["enforced"] is False
    assert loops_of(state) == []
    r = sp(state, "create", "m", "--disk", "0", "--require", "disk")
    assert r.returncode == 125 and "--require disk" in r.stderr, r.stderr
    r = sp(state, "create", "o", "--disk", "32M", "--require", "disk")
    assert r.returncode == 0 and "warning" not in r.stderr, r.stderr


@user_only
def test_unprivileged_create_warns_and_require_refuses(state):
    r = sp(state, "create", "u")
    assert r.returncode == 0, r.stderr
    assert "warning: disk" in r.stderr and "--require disk" in r.stderr, r.stderr
    assert ps(state, "u")["disk"]["enforced"] is False
    r = sp(state, "create", "v", "--require", "disk")
    assert r.returncode == 125 and "--require disk" in r.stderr, r.stderr
    assert [w["name"] for w in json.loads(sp(state, "ps", "--json").stdout)] == ["u"]
    assert not os.path.exists(os.path.join(state, "workspaces", "v"))
    r = sandpit("doctor", "--json")
    assert json.loads(r.stdout)["layers"]["disk"]["available"] is False


def test_run_tmpfs_bounded_by_disk_and_inodes(tmp_path):
    r = sandpit("run", "-q", "--disk", "16M", "--", "/bin/sh", "-c",
                "df -P -B1 /tmp | tail -1; "
                "dd if=/dev/zero of=/tmp/x bs=1M count=32 2>&1; "
                "rm -f /tmp/x; dd if=/dev/zero of=/tmp/y bs=1M count=4 "
                "status=none && echo again", cwd=str(tmp_path))
    assert int(r.stdout.splitlines()[0].split()[1]) == 16 * MiB, r.stdout
    assert "No space left on device" in r.stdout and "again" in r.stdout, r.stdout
    r = sandpit("run", "-q", "--inodes", "100", "--", "/bin/sh", "-c",
                "cd /tmp; i=0; while [ $i -lt 300 ]; do touch f$i 2>/dev/null "
                "|| break; i=$((i+1)); done; echo $i", cwd=str(tmp_path))
    assert 50 < int(r.stdout) < 100, r.stdout


def test_run_require_disk(tmp_path):
    r = sandpit("run", "-q", "--require", "disk", "--", "/bin/true",
                cwd=str(tmp_path))
    assert r.returncode == 0, r.stderr
    r = sandpit("run", "-q", "--disk", "0", "--require", "disk", "--",
                "/bin/true", cwd=str(tmp_path))
    assert r.returncode == 125 and "--require disk" in r.stderr, r.stderr


def test_bad_values_refused(state):
    for flags, word in [(["--disk", "1M"], "limits.disk"),
                        (["--disk", "lots"], "limits.disk"),
                        (["--inodes", "10"], "limits.inodes"),
                        (["--inodes", "-1"], "limits.inodes")]:
        r = sp(state, "create", "x", *flags)
        assert r.returncode == 125 and word in r.stderr, (flags, r.stderr)
    if IS_ROOT:  # more inodes than the image can hold
        r = sp(state, "create", "x", "--disk", "16M", "--inodes", "5000")
        assert r.returncode == 125 and "limits.inodes" in r.stderr, r.stderr
    assert json.loads(sp(state, "ps", "--json").stdout) == []


@root_only
def test_serve_disk_under_the_operators_ceiling(state, tmp_path):
    pol = tmp_path / "policy.json"
    pol.write_text(json.dumps({"limits": {"disk": "64M", "inodes": 4096}}))
    os.chmod(tmp_path, 0o755)
    os.chmod(pol, 0o644)
    path = str(tmp_path / "s.sock")
    p = start_serve(state, path, "--policy", str(pol))
    try:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(path)
        f = s.makefile("rb")

        def call(i, method, params):
            s.sendall(json.dumps({"jsonrpc": "2.0", "id": i, "method": method,
                                  "params": params}).encode() + b"\n")
            return json.loads(f.readline())

        r = call(1, "workspace.create", {"name": "big", "disk": "1G"})
        assert r["error"]["code"] == -32001 and "disk" in r["error"]["message"], r
        r = call(2, "workspace.create", {"name": "many", "inodes": 100000})
        assert r["error"]["code"] == -32001 and "inodes" in r["error"]["message"], r
        r = call(3, "workspace.create", {"name": "ok", "disk": "32M"})
        assert r["result"]["workspace"] == "ok", r
        r = call(4, "workspace.list", {})
        ws = {w["name"]: w for w in r["result"]["workspaces"]} \
            if isinstance(r["result"], dict) else {w["name"]: w for w in r["result"]}
        assert ws["ok"]["disk"]["limit"] == 32 * MiB and ws["ok"]["disk"]["enforced"], ws
        s.close()
    finally:
        p.terminate()
        p.wait(timeout=10)
