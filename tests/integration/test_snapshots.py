"""Snapshots, restore, fork, pause/resume (docs/snapshots.md), on real
workspaces: contents byte for byte across snapshot -> change -> restore
(files, modes, symlinks, deletions in /workspace, a system path and HOME),
ten forks of one snapshot changed independently and sharing its layers, a
snapshot taken under a continuous writer, a paused busy loop whose CPU
time stops, the depth bound's merge, and failures (a full disk, a missing
snapshot, a name in use, hostile uppers) that leave every workspace as it
was. Each test has its own SANDPIT_STATE."""
import json
import os
import subprocess
import threading
import time

import pytest

from conftest import IS_ROOT, create, sandpit, sp, start_serve

# What a manifest covers: paths written by the tests below.
MANIFEST = r"""
set -e
for d in /workspace /usr/local/snapt /home/sandpit/snapt /etc/ssl; do
  [ -e "$d" ] || continue
  find "$d" -xdev -printf '%p %y %m %s %l\n' | LC_ALL=C sort
  find "$d" -xdev -type f -exec sha256sum {} + | LC_ALL=C sort -k2
done
"""


@pytest.fixture
def seed(tmp_path):
    """A --from directory: files the workspace deletes and edits."""
    d = tmp_path / "seed"
    (d / "sub").mkdir(parents=True)
    (d / "keep.txt").write_text("keep\n")
    (d / "gone.txt").write_text("gone\n")
    (d / "edit.txt").write_text("old\n")
    (d / "sub" / "deep.txt").write_text("deep\n")
    os.chmod(tmp_path, 0o755)
    for root, dirs, files in os.walk(d):
        os.chmod(root, 0o755)
        for f in files:
            os.chmod(os.path.join(root, f), 0o644)
    return str(d)


def sh(state, name, script, rc=0):
    r = sp(state, "exec", name, "--", "/bin/sh", "-c", script)
    assert r.returncode == rc, (r.returncode, r.stdout, r.stderr)
    return r.stdout


def manifest(state, name):
    return sh(state, name, MANIFEST)


def snaps(state, name):
    r = sp(state, "snapshots", name, "--json")
    assert r.returncode == 0, r.stderr
    return {s["name"]: s for s in json.loads(r.stdout)}


def layers(state):
    d = os.path.join(state, "snapshots", "layers")
    return sorted(os.listdir(d)) if os.path.isdir(d) else []


def stack(state, name):
    p = os.path.join(state, "workspaces", name, "layers", "stack")
    return open(p).read().split() if os.path.exists(p) else []


def ps(state):
    r = sp(state, "ps", "--json")
    assert r.returncode == 0, r.stderr
    return {w["name"]: w for w in json.loads(r.stdout)}


# As an ordinary user the host's system trees keep their owner (root), so
# only root writes (and deletes) there; HOME and /workspace are everyone's.
SYS = IS_ROOT

WRITE = r"""
set -e
rm /workspace/gone.txt
echo edited > /workspace/edit.txt
mkdir -p /workspace/d/sub /home/sandpit/snapt
printf 'hello\n' > /workspace/a.txt
chmod 640 /workspace/a.txt
head -c 300000 /dev/urandom > /workspace/d/bin
chmod 751 /workspace/d/sub
ln -s a.txt /workspace/link
ln -s /etc/shadow /workspace/hostile-link
mkfifo /workspace/fifo
echo home > /home/sandpit/snapt/f
""" + (r"""
mkdir -p /usr/local/snapt
echo sys > /usr/local/snapt/f
rm -f /etc/ssl/openssl.cnf
""" if SYS else "")

CHANGE = r"""
set -e
echo back > /workspace/gone.txt
printf 'changed\n' > /workspace/a.txt
chmod 600 /workspace/a.txt
rm -rf /workspace/d /workspace/link
ln -s elsewhere /workspace/link2
echo new > /workspace/new.txt
mkdir /workspace/d2
echo other > /home/sandpit/snapt/f
""" + (r"""
rm -rf /usr/local/snapt
echo back > /etc/ssl/openssl.cnf
""" if SYS else "")


def test_snapshot_change_restore_byte_for_byte(state, seed):
    create(state, "w", "--from", seed)
    sh(state, "w", WRITE)
    before = manifest(state, "w")
    assert "hostile-link p" not in before  # sanity: a link stays a link
    r = sp(state, "snapshot", "w", "s1", "--json")
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["files"] >= 6 and info["bytes"] >= 300000
    sh(state, "w", CHANGE)
    assert manifest(state, "w") != before
    r = sp(state, "restore", "w", "s1")
    assert r.returncode == 0, r.stderr
    assert "restarted" in r.stdout
    after = manifest(state, "w")
    assert after == before
    # deletions survive: the whiteout over /etc/ssl/openssl.cnf came back
    sh(state, "w", "test ! -e /workspace/new.txt && test ! -e /workspace/d2 && "
       "test ! -e /workspace/gone.txt && grep -q edited /workspace/edit.txt")
    if SYS:
        sh(state, "w", "test ! -e /etc/ssl/openssl.cnf && cat /usr/local/snapt/f")
    sh(state, "w", "test -p /workspace/fifo && test -L /workspace/hostile-link")
    # the host was never touched
    assert os.path.exists("/etc/ssl/openssl.cnf")
    # list: size and time
    s = snaps(state, "w")["s1"]
    assert s["size"] >= 300000 and s["files"] >= 6
    assert abs(s["created"] - time.time()) < 300
    # restore again after more changes, on a stopped workspace: stays stopped
    sh(state, "w", "rm /workspace/a.txt")
    assert sp(state, "stop", "w").returncode == 0
    r = sp(state, "restore", "w", "s1")
    assert r.returncode == 0 and "stopped" in r.stdout, r.stdout + r.stderr
    assert ps(state)["w"]["state"] == "stopped"
    assert sp(state, "start", "w").returncode == 0
    assert manifest(state, "w") == before


def test_snapshot_of_a_stopped_workspace_and_diff_of_layers(state):
    create(state, "w")
    sh(state, "w", "echo one > /workspace/one")
    assert sp(state, "stop", "w").returncode == 0
    r = sp(state, "snapshot", "w", "s")
    assert r.returncode == 0, r.stderr
    assert "frozen 0.0 ms" in r.stdout
    assert sp(state, "start", "w").returncode == 0
    r = sp(state, "fork", "w", "s", "f")
    assert r.returncode == 0, r.stderr
    assert sh(state, "f", "cat /workspace/one") == "one\n"


def test_fork_ten_independent_sharing_layers(state, seed):
    create(state, "base", "--from", seed)
    sh(state, "base", "mkdir -p /workspace/deps && head -c 200000 /dev/urandom"
       " > /workspace/deps/blob && echo ready > /workspace/state && "
       "rm -f /workspace/gone.txt" + (" /etc/ssl/openssl.cnf" if SYS else ""))
    assert sp(state, "snapshot", "base", "prepared").returncode == 0
    before = layers(state)
    assert len(before) == 1
    blob = sh(state, "base", "sha256sum < /workspace/deps/blob")
    names = ["f%d" % i for i in range(10)]
    for n in names:
        r = sp(state, "fork", "base", "prepared", n)
        assert r.returncode == 0, r.stderr
        assert r.stdout.strip() == n
    # shared, not copied: no new layer, every fork's stack names it
    assert layers(state) == before
    for n in names:
        assert stack(state, n) == before
    for i, n in enumerate(names):
        sh(state, n, "echo %d > /workspace/state; echo mine > /workspace/%s;"
           " rm /workspace/deps/blob" % (i, n) if i % 2 else
           "echo %d > /workspace/state; echo mine > /workspace/%s" % (i, n))
    for i, n in enumerate(names):
        out = sh(state, n, "cat /workspace/state; ls /workspace | sort | tr '\\n' ' ';"
                 " test ! -e /workspace/gone.txt && cat /workspace/keep.txt && echo whiteout-kept")
        lines = out.split("\n")
        assert lines[0] == str(i)
        assert n in lines[1]
        assert not any(o in lines[1].split() for o in names if o != n)
        assert "whiteout-kept" in out
        if i % 2 == 0:
            assert sh(state, n, "sha256sum < /workspace/deps/blob") == blob
        else:
            sh(state, n, "test ! -e /workspace/deps/blob")
    # the source is untouched
    assert sh(state, "base", "cat /workspace/state") == "ready\n"
    # removing the snapshot keeps its layer while forks use it
    assert sp(state, "snapshot", "rm", "base", "prepared").returncode == 0
    assert snaps(state, "base") == {}
    assert layers(state) == before
    for n in names[:9]:
        assert sp(state, "rm", "-f", n).returncode == 0
    assert layers(state) == before
    assert sh(state, "f9", "cat /workspace/state") == "9\n"
    assert sp(state, "rm", "-f", "f9").returncode == 0
    assert layers(state) == []


WRITER = r"""
import os
fd = os.open("/workspace/log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
# 20 files rewritten in place in turn, each with one pwrite of its cycle
# number: at any instant they read n+1 ... n+1 n ... n
os.makedirs("/workspace/ring", exist_ok=True)
ring = [os.open("/workspace/ring/r%02d" % k, os.O_RDWR | os.O_CREAT, 0o644)
        for k in range(20)]
for r in ring:
    os.pwrite(r, b"00000000" * 2048, 0)
i = 0
while True:
    for r in ring:
        os.pwrite(r, ("%08d" % (i + 1)).encode() * 2048, 0)
    rec = ("%08d" % i).encode() * 125          # 1000 bytes, one write
    os.write(fd, rec)
    body = bytes([48 + i % 10]) * 65536
    t = os.open("/workspace/cur.tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.write(t, body)
    os.close(t)
    os.rename("/workspace/cur.tmp", "/workspace/cur")
    i += 1
"""

CHECK = r"""
import os, sys
log = open("/workspace/log", "rb").read()
assert len(log) % 1000 == 0, ("partial record", len(log))
for k in range(len(log) // 1000):
    rec = log[k * 1000:(k + 1) * 1000]
    assert rec == ("%08d" % k).encode() * 125, ("bad record", k)
cur = open("/workspace/cur", "rb").read()
assert len(cur) == 65536 and len(set(cur)) == 1, ("torn cur", len(cur))
vals = []
for k in range(20):
    b = open("/workspace/ring/r%02d" % k, "rb").read()
    assert len(b) == 16384 and b == b[:8] * 2048, ("torn ring file", k)
    vals.append(int(b[:8]))
assert vals == sorted(vals, reverse=True) and vals[0] - vals[-1] <= 1, vals
if os.path.exists("/workspace/cur.tmp"):
    t = open("/workspace/cur.tmp", "rb").read()
    assert len(set(t)) <= 1
print(len(log) // 1000)
"""


def test_snapshot_under_a_continuous_writer_is_consistent(state):
    create(state, "w")
    r = sp(state, "exec", "w", "--", "/bin/sh", "-c",
           "python3 -c '%s' >/dev/null 2>&1 &" % WRITER.replace("'", "'\\''"))
    assert r.returncode == 0, r.stderr
    time.sleep(0.5)
    counts = []
    for k in range(3):
        r = sp(state, "snapshot", "w", "s%d" % k)
        assert r.returncode == 0, r.stderr
        r = sp(state, "fork", "w", "s%d" % k, "c%d" % k)
        assert r.returncode == 0, r.stderr
        r = sp(state, "exec", "c%d" % k, "--", "python3", "-c", CHECK)
        assert r.returncode == 0, r.stdout + r.stderr
        counts.append(int(r.stdout))
        assert sp(state, "rm", "-f", "c%d" % k).returncode == 0
        time.sleep(0.2)
    assert counts[0] > 0 and counts[2] > counts[0]  # it kept writing


def agent_tree(agent):
    """pid -> (ppid, utime+stime ticks) for the agent and its descendants,
    read on the host from /proc/PID/stat."""
    procs = {}
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            s = open("/proc/%s/stat" % p).read()
        except OSError:
            continue
        f = s[s.rindex(")") + 2:].split()
        procs[int(p)] = (int(f[1]), int(f[11]) + int(f[12]), f[0])
    tree, todo = {}, [agent]
    while todo:
        a = todo.pop()
        for p, (pp, t, st) in procs.items():
            if pp == a and p not in tree:
                tree[p] = (t, st)
                todo.append(p)
    return tree


def test_pause_stops_cpu_and_requests_wait_or_fail(state):
    create(state, "w")
    r = sp(state, "exec", "w", "--", "/bin/sh", "-c",
           "sh -c 'while :; do :; done' >/dev/null 2>&1 &")
    assert r.returncode == 0
    agent = ps(state)["w"]["agent_pid"]
    time.sleep(0.3)
    busy = [p for p, (t, st) in agent_tree(agent).items() if st == "R"]
    assert busy, agent_tree(agent)
    assert sp(state, "pause", "w").returncode == 0
    assert ps(state)["w"]["state"] == "paused"
    assert sp(state, "pause", "w").returncode == 0  # twice is fine
    t1 = {p: t for p, (t, _) in agent_tree(agent).items()}
    time.sleep(1.0)
    t2 = {p: t for p, (t, _) in agent_tree(agent).items()}
    assert t1 == t2, (t1, t2)
    # --no-wait fails at once, clearly
    t0 = time.time()
    r = sp(state, "exec", "w", "--no-wait", "--", "true")
    assert r.returncode == 125 and "paused" in r.stderr
    assert time.time() - t0 < 5
    # a waiting exec completes once resumed
    done = {}

    def waiter():
        done["r"] = sp(state, "exec", "w", "--", "echo", "after")
        done["t"] = time.time()
    th = threading.Thread(target=waiter)
    th.start()
    time.sleep(1.0)
    assert "r" not in done
    t_resume = time.time()
    assert sp(state, "resume", "w").returncode == 0
    th.join(30)
    assert done["r"].returncode == 0 and done["r"].stdout == "after\n"
    assert done["t"] >= t_resume
    time.sleep(0.5)
    t3 = {p: t for p, (t, _) in agent_tree(agent).items()}
    assert sum(t3.values()) > sum(t2.values())
    assert ps(state)["w"]["state"] == "running"
    # a paused workspace stops (and is removed) fine
    assert sp(state, "pause", "w").returncode == 0
    assert sp(state, "stop", "w", timeout=30).returncode == 0
    assert ps(state)["w"]["state"] == "stopped"
    assert not any(p for p in agent_tree(agent))
    assert sp(state, "resume", "w").returncode == 0  # nothing to do
    assert sp(state, "pause", "w").returncode == 125  # not running


def test_depth_bound_merges_layers(state):
    create(state, "w")
    sh(state, "w", "echo base > /workspace/f0; echo gone > /workspace/gone")
    for i in range(1, 17):
        sh(state, "w", "echo %d > /workspace/f%d; echo %d > /workspace/f0" %
           (i, i, i) + ("; rm /workspace/gone" if i == 5 else ""))
        r = sp(state, "snapshot", "w", "s%d" % i, "--json")
        assert r.returncode == 0, r.stderr
        info = json.loads(r.stdout)
        assert info["depth"] == i and info["merged"] is False
        assert sp(state, "restore", "w", "s%d" % i).returncode == 0
    assert len(stack(state, "w")) == 16
    sh(state, "w", "echo 17 > /workspace/f17")
    r = sp(state, "snapshot", "w", "s17", "--json")
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["merged"] is True and info["depth"] == 1
    assert sp(state, "restore", "w", "s17").returncode == 0
    assert len(stack(state, "w")) == 1
    out = sh(state, "w", "cat /workspace/f0; for i in $(seq 1 17); do "
             "cat /workspace/f$i; done; test ! -e /workspace/gone && echo ok")
    assert out.split() == ["16"] + [str(i) for i in range(1, 18)] + ["ok"]
    # older snapshots still restore to what they were
    assert sp(state, "restore", "w", "s3").returncode == 0
    assert sh(state, "w", "cat /workspace/f0; ls /workspace | sort | tr '\\n' ' '") \
        == "3\nf0 f1 f2 f3 gone "


def test_failures_leave_everything_as_it_was(state):
    create(state, "w")
    sh(state, "w", "echo v1 > /workspace/f")
    assert sp(state, "snapshot", "w", "s").returncode == 0
    sh(state, "w", "echo v2 > /workspace/f")
    lay = layers(state)
    # a name in use
    r = sp(state, "snapshot", "w", "s")
    assert r.returncode == 125 and "already has a snapshot" in r.stderr
    assert layers(state) == lay
    create(state, "other")
    r = sp(state, "fork", "w", "s", "other")
    assert r.returncode == 125 and "already exists" in r.stderr
    # a missing snapshot
    for args in (["restore", "w", "nope"], ["fork", "w", "nope", "n2"],
                 ["snapshot", "rm", "w", "nope"]):
        r = sp(state, *args)
        assert r.returncode == 125 and "no snapshot nope" in r.stderr, args
    # hostile names
    for bad in ("../x", "a/b", "", "-x", "x" * 70, "Upper"):
        r = sp(state, "snapshot", "w", bad)
        assert r.returncode == 125, bad
    r = sp(state, "snapshot", "../w", "s2")
    assert r.returncode == 125
    # a workspace that does not exist
    r = sp(state, "snapshot", "nosuch", "s")
    assert r.returncode == 125
    # CRIU: says so, changes nothing
    r = sp(state, "checkpoint", "w", "c", "--processes")
    assert r.returncode == 125 and "not supported" in r.stderr
    assert set(snaps(state, "w")) == {"s"}
    assert layers(state) == lay
    assert sorted(ps(state)) == ["other", "w"]
    assert ps(state)["w"]["state"] == "running"
    assert sh(state, "w", "cat /workspace/f") == "v2\n"
    assert not os.path.exists(os.path.join(state, "workspaces", "n2"))


def test_hostile_upper_entries(state, tmp_path):
    create(state, "w")
    secret = tmp_path / "secret"
    secret.write_text("host secret\n")
    os.chmod(tmp_path, 0o755)
    # a symlink to a host file, a fifo nobody writes, an unreadable file and
    # directory, a socket, deep nesting: copied as what they are, no hang
    sh(state, "w", "ln -s %s /workspace/s; mkfifo /workspace/p; "
       "echo x > /workspace/unr; chmod 000 /workspace/unr; mkdir -p "
       "/workspace/nd/in; echo y > /workspace/nd/in/f; chmod 000 /workspace/nd;"
       " python3 -c 'import socket; s=socket.socket(socket.AF_UNIX); "
       "s.bind(\"/workspace/sock\")'; d=/workspace/deep; for i in $(seq 60);"
       " do d=$d/x; done; mkdir -p $d; echo z > $d/f" % secret)
    t0 = time.time()
    r = sp(state, "snapshot", "w", "s", timeout=30)
    assert r.returncode == 0, r.stderr
    assert time.time() - t0 < 10
    lay = layers(state)[0]
    root = os.path.join(state, "snapshots", "layers", lay, "workspace")
    assert os.path.islink(os.path.join(root, "s"))
    assert os.readlink(os.path.join(root, "s")) == str(secret)
    assert not os.path.exists(os.path.join(root, "sock"))
    r = sp(state, "fork", "w", "s", "f")
    assert r.returncode == 0, r.stderr
    out = sh(state, "f", "readlink /workspace/s; test -p /workspace/p && echo fifo;"
             " stat -c %a /workspace/unr /workspace/nd; ls /workspace/deep/x/x")
    assert out.split() == [str(secret), "fifo", "0", "0", "x"]


@pytest.mark.skipif(not IS_ROOT, reason="mounts a small tmpfs as the state "
                    "directory (needs root)")
def test_full_disk_snapshot_keeps_nothing(tmp_path):
    d = tmp_path / "tiny"
    d.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=12m", "tmpfs", str(d)],
                   check=True)
    st = str(d)
    try:
        # --disk 0: the workspace writes straight into the state dir (a
        # sparse disk image would only fill the host later, docs/disk.md)
        create(st, "w", "--disk", "0")
        sh(st, "w", "head -c 7000000 /dev/urandom > /workspace/big")
        h = sh(st, "w", "sha256sum < /workspace/big")
        r = sp(st, "snapshot", "w", "s")
        assert r.returncode == 125 and "No space left" in r.stderr, r.stderr
        assert snaps(st, "w") == {}
        assert layers(st) == []
        assert ps(st)["w"]["state"] == "running"
        assert sh(st, "w", "sha256sum < /workspace/big") == h
        sh(st, "w", "echo still > /workspace/small")
    finally:
        sandpit("rm", "-f", "w", env={"SANDPIT_STATE": st})
        subprocess.run(["umount", "-l", str(d)], check=False)


def test_incremental_snapshot_copies_only_changes(state):
    create(state, "w")
    sh(state, "w", "head -c 1000000 /dev/urandom > /workspace/a; "
       "head -c 1000000 /dev/urandom > /workspace/b; chmod 644 /workspace/a")
    orig = sh(state, "w", "sha256sum /workspace/a /workspace/b")

    def snap(name):
        r = sp(state, "snapshot", "w", name, "--json")
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)
    assert snap("s1")["copied"] >= 2000000
    s2 = snap("s2")
    assert s2["bytes"] >= 2000000 and s2["copied"] < 1000
    sh(state, "w", "echo more >> /workspace/b; chmod 600 /workspace/a")
    s3 = snap("s3")
    assert s3["copied"] >= 2000000  # b's content, a's mode (ctime moved)
    changed = sh(state, "w", "sha256sum /workspace/a /workspace/b")
    for s, want, mode in (("s1", orig, "644"), ("s3", changed, "600"),
                          ("s2", orig, "644")):
        assert sp(state, "restore", "w", s).returncode == 0
        assert sh(state, "w", "sha256sum /workspace/a /workspace/b") == want
        assert sh(state, "w", "stat -c %a /workspace/a").strip() == mode
    # after a restore the uppers are new: nothing to link, nothing stale
    sh(state, "w", "echo x > /workspace/c")
    assert snap("s4")["copied"] < 1000
    assert sp(state, "fork", "w", "s4", "f").returncode == 0
    assert sh(state, "f", "cat /workspace/c; sha256sum /workspace/a /workspace/b") \
        == "x\n" + orig


def test_restore_brings_back_restart_services(state):
    create(state, "w")
    for args in (["web", "--restart", "on-failure"], ["once"]):
        r = sp(state, "service", "start", "w", *args, "--", "sleep", "1000")
        assert r.returncode == 0, r.stderr
    assert sp(state, "snapshot", "w", "s").returncode == 0
    r = sp(state, "restore", "w", "s")
    assert r.returncode == 0 and "restarted" in r.stdout, r.stderr
    r = sp(state, "service", "ls", "w", "--json")
    assert r.returncode == 0, r.stderr
    svcs = {s["name"]: s for s in json.loads(r.stdout)}
    assert set(svcs) == {"web"}
    assert svcs["web"]["state"] == "running"
    assert svcs["web"]["argv"] == ["sleep", "1000"]


def svc_ls(state, name):
    r = sp(state, "service", "ls", name, "--json")
    assert r.returncode == 0, r.stderr
    return {s["name"]: s for s in json.loads(r.stdout)}


def test_restore_brings_back_service_whole(state):
    """A restarted service keeps its -e environment, --cwd, --ready probe
    and --ready-timeout, and restore returns only once it is ready again
    (its probe file appears half a second after it starts, in a /tmp that
    starts empty)."""
    create(state, "w")
    sh(state, "w", "mkdir -p /workspace/sub")
    cmd = ("sleep 0.5; touch /tmp/ready-x; echo $FOO \"$BAZ\" $(pwd) "
           ">> /workspace/out; exec sleep 1000")
    r = sp(state, "service", "start", "w", "web", "-e", "FOO=bar",
           "-e", "BAZ=two  words=x", "--cwd", "/workspace/sub",
           "--ready", "file:/tmp/ready-x", "--ready-timeout", "7.5",
           "--restart", "on-failure", "--", "sh", "-c", cmd)
    assert r.returncode == 0 and "ready" in r.stdout, r.stderr
    # A plain one beside it: its spec is reported empty, not invented.
    r = sp(state, "service", "start", "w", "plain", "--restart",
           "on-failure", "--", "sleep", "1000")
    assert r.returncode == 0, r.stderr
    spec = {"env": ["FOO=bar", "BAZ=two  words=x"], "cwd": "/workspace/sub",
            "ready": "file:/tmp/ready-x", "ready_timeout": 7.5,
            "argv": ["sh", "-c", cmd], "restart": "on-failure"}
    before = svc_ls(state, "w")
    assert {k: before["web"][k] for k in spec} == spec
    assert before["plain"]["env"] == [] and before["plain"]["cwd"] is None
    assert before["plain"]["ready"] is None
    assert sh(state, "w", "cat /workspace/out") == "bar two  words=x " \
        "/workspace/sub\n"
    r = sp(state, "service", "status", "w", "web")
    assert r.returncode == 0 and "/workspace/sub" in r.stdout \
        and "file:/tmp/ready-x" in r.stdout, r.stdout
    assert sp(state, "snapshot", "w", "s").returncode == 0
    sh(state, "w", "echo later >> /workspace/out")
    t0 = time.monotonic()
    r = sp(state, "restore", "w", "s")
    assert r.returncode == 0 and "restarted" in r.stdout, r.stderr
    assert time.monotonic() - t0 >= 0.5  # it waited for the probe
    after = svc_ls(state, "w")
    assert set(after) == {"web", "plain"}
    # Ready at once: restore waited, as `service start` does.
    assert after["web"]["state"] == "ready" and after["web"]["ready_at"]
    assert after["plain"]["state"] == "running"
    assert {k: after["web"][k] for k in spec} == spec
    assert after["plain"]["env"] == [] and after["plain"]["cwd"] is None
    # The snapshot's line (not "later"), then the restarted run's own.
    assert sh(state, "w", "cat /workspace/out") == \
        "bar two  words=x /workspace/sub\n" * 2


def test_restore_waits_for_ready_without_blocking_snapshots(state):
    """While restore waits for a slow probe (2 s), a snapshot of another
    workspace goes on: the store's lock is not held meanwhile. A probe
    that never passes leaves the service failed with its reason and the
    restore still succeeds."""
    create(state, "w")
    create(state, "v")
    r = sp(state, "service", "start", "w", "slow", "--ready",
           "file:/tmp/r", "--restart", "on-failure", "--", "sh", "-c",
           "[ -e /workspace/again ] && sleep 2; touch /tmp/r; "
           "exec sleep 1000")
    assert r.returncode == 0, r.stderr
    r = sp(state, "service", "start", "w", "never", "--ready",
           "file:/tmp/never", "--ready-timeout", "0.5", "--restart",
           "on-failure", "--", "sh", "-c",
           "[ -e /workspace/again ] || touch /tmp/never; exec sleep 1000")
    assert r.returncode == 0, r.stderr
    sh(state, "w", "touch /workspace/again")
    assert sp(state, "snapshot", "w", "s").returncode == 0
    res = {}

    def restore():
        res["r"] = sp(state, "restore", "w", "s")
        res["t"] = time.monotonic()

    t = threading.Thread(target=restore)
    t.start()
    time.sleep(0.7)
    r = sp(state, "snapshot", "v", "x")
    done = time.monotonic()
    t.join()
    assert r.returncode == 0, r.stderr
    assert res["r"].returncode == 0, res["r"].stderr
    assert done < res["t"], "the snapshot waited for the restore"
    ls = svc_ls(state, "w")
    assert ls["slow"]["state"] == "ready"
    assert ls["never"]["state"] == "failed"
    assert "readiness timeout" in ls["never"]["reason"]


def test_service_spec_bounds_round_trip_or_refused(state):
    """Many -e entries round-trip whole through `service ls --json` and a
    restore; a spec over SP_SERVICE_SPEC_MAX (128 KiB) is refused at start
    with a clear error (CLI and raw control socket alike), nothing cut and
    nothing started; malformed env entries are refused by the agent."""
    import socket
    create(state, "w")
    env = ["E%04d=%s" % (i, "v" * 90 + str(i)) for i in range(1000)]
    args = [a for e in env for a in ("-e", e)]
    cmd = "env | grep -c '^E[0-9]' > /workspace/n; exec sleep 1000"
    r = sp(state, "service", "start", "w", "big", *args, "--restart",
           "on-failure", "--", "sh", "-c", cmd)
    assert r.returncode == 0, r.stderr
    assert svc_ls(state, "w")["big"]["env"] == env
    assert sh(state, "w", "cat /workspace/n") == "1000\n"
    assert sp(state, "snapshot", "w", "s").returncode == 0
    sh(state, "w", "rm /workspace/n")
    assert sp(state, "restore", "w", "s").returncode == 0
    got = svc_ls(state, "w")["big"]
    assert got["env"] == env and got["state"] == "running"
    for _ in range(100):
        out = sh(state, "w", "cat /workspace/n 2>/dev/null || true")
        if out:
            break
        time.sleep(0.05)
    assert out == "1000\n"
    # Too big: 200 entries of 1000 bytes.
    huge = [a for i in range(200) for a in ("-e", "H%d=%s" % (i, "x" * 1000))]
    r = sp(state, "service", "start", "w", "huge", *huge, "--", "true")
    assert r.returncode == 125, (r.returncode, r.stderr)
    assert "131072 bytes a service may have" in r.stderr, r.stderr
    assert len(r.stderr.splitlines()) == 1
    assert "huge" not in svc_ls(state, "w")
    # The same straight on the control socket: the agent refuses it.
    s = socket.socket(socket.AF_UNIX)
    s.connect(os.path.join(state, "workspaces", "w", "control.sock"))
    f = s.makefile("rb")

    def call(**params):
        s.sendall(json.dumps({"id": 1, "method": "service.start",
                              "params": params}).encode() + b"\n")
        return json.loads(f.readline())

    try:
        m = call(name="huge", argv=["true"],
                 env=["H%d=%s" % (i, "x" * 1000) for i in range(200)])
        assert "more than the 131072" in m["error"]["message"], m
        m = call(name="huge", argv=["x" * 70000, "y" * 70000])
        assert "more than the 131072" in m["error"]["message"], m
        for bad in (["=v"], ["NOEQ"], [7], ["A=" + "y" * 140000],
                    ["A=b"] * 1025):
            m = call(name="bad", argv=["true"], env=bad)
            assert "error" in m, (bad[:2], m)
        m = call(name="bad", argv=["true"], cwd=7)
        assert "error" in m, m
    finally:
        s.close()
    assert set(svc_ls(state, "w")) == {"big"}


def test_secret_env_past_the_line_bound_is_refused_not_fatal(state,
                                                             tmp_path):
    """20 secrets of 60,000 bytes given as --secret-env make the request
    the supervisor passes on longer than the agent takes (1 MiB): exec and
    service start are refused with a clear error and the workspace runs
    on (it used to end the agent); half of them still work."""
    import random
    os.chmod(tmp_path, 0o755)
    flags, names = [], []
    rnd = random.Random(7)
    for i in range(20):
        p = tmp_path / ("s%d" % i)
        p.write_text("".join(rnd.choice("abcdefghijklmnop")
                             for _ in range(60000)))
        os.chmod(p, 0o644)
        flags += ["--secret", "S%d=@%s" % (i, p)]
        names += ["--secret-env", "S%d" % i]
    create(state, "w", *flags)
    r = sp(state, "exec", "w", *names, "--", "true")
    assert r.returncode == 125 and "longer than 1048576" in r.stderr, \
        r.stderr
    r = sp(state, "service", "start", "w", "x", *names, "--", "true")
    assert r.returncode == 125 and "longer than 1048576" in r.stderr, \
        r.stderr
    assert ps(state)["w"]["state"] == "running"
    r = sp(state, "service", "start", "w", "y", *names[:20], "--",
           "sh", "-c", "echo ${#S0} ${#S9} > /workspace/n; exec sleep 100")
    assert r.returncode == 0, r.stderr
    assert svc_ls(state, "w")["y"]["secret_env"] == \
        ["S%d" % i for i in range(10)]
    for _ in range(100):
        if sh(state, "w", "cat /workspace/n 2>/dev/null || true"):
            break
        time.sleep(0.05)
    assert sh(state, "w", "cat /workspace/n") == "60000 60000\n"


def test_service_list_stays_one_line_with_big_specs(state):
    """Eight services with 120 KiB specs each: `service ls --json` still
    answers (the later ones say spec_omitted, their status has it all),
    and restore brings every one back whole."""
    create(state, "w")
    val = "z" * (120 * 1024)
    for i in range(8):
        r = sp(state, "service", "start", "w", "s%d" % i, "-e",
               "BIG=%s" % val, "--restart", "on-failure", "--", "sleep",
               "1000")
        assert r.returncode == 0, r.stderr
    ls = svc_ls(state, "w")
    assert len(ls) == 8
    omitted = [n for n, v in ls.items() if v.get("spec_omitted")]
    assert omitted and len(omitted) < 8
    for n, v in ls.items():
        if n in omitted:
            assert "env" not in v and "argv" not in v
        else:
            assert v["env"] == ["BIG=" + val]
    r = sp(state, "service", "status", "w", omitted[0], "--json")
    assert json.loads(r.stdout)["env"] == ["BIG=" + val]
    assert sp(state, "snapshot", "w", "s").returncode == 0
    assert sp(state, "restore", "w", "s").returncode == 0
    ls = svc_ls(state, "w")
    assert sorted(ls) == ["s%d" % i for i in range(8)]
    for n in ls:
        r = sp(state, "service", "status", "w", n, "--json")
        st = json.loads(r.stdout)
        assert st["env"] == ["BIG=" + val] and st["state"] == "running", n


def test_restore_with_secrets_and_secret_env_service(state, tmp_path):
    """A running workspace with secrets: restore without them is refused
    before anything stops (as reset is); with --secret it restores, and a
    service started with --secret-env comes back with the same name
    reference: its value is set again by the supervisor, never shown in
    `service ls --json` (names only) nor written under the state dir. One
    whose -e held a secret's value (so it is seen redacted) is left out."""
    import socket
    sec = tmp_path / "tok"
    sec.write_text("s3cr3t-value-1234\n")
    os.chmod(tmp_path, 0o755)
    os.chmod(sec, 0o644)
    create(state, "w", "--secret", "TOK=@%s" % sec)
    cmd = ('[ "$TOK" = "$(cat /run/secrets/TOK)" ] && echo "same $A" '
           '>> /workspace/chk; exec sleep 1000')
    r = sp(state, "service", "start", "w", "web", "-e", "A=1",
           "--secret-env", "TOK", "--restart", "on-failure", "--", "sh",
           "-c", cmd)
    assert r.returncode == 0, r.stderr
    r = sp(state, "service", "start", "w", "leaky", "-e",
           "B=s3cr3t-value-1234", "--restart", "on-failure", "--", "sleep",
           "1000")
    assert r.returncode == 0, r.stderr
    ls = svc_ls(state, "w")
    # --secret-env shows the name alone; a value typed with -e that is a
    # secret's is redacted like any string the agent answers.
    assert ls["web"]["env"] == ["A=1"] and ls["web"]["secret_env"] == ["TOK"]
    assert ls["leaky"]["env"] == ["B=[REDACTED:TOK]"]
    r = sp(state, "service", "status", "w", "web", "--json")
    assert "s3cr3t" not in r.stdout and "secret_envv" not in r.stdout
    for _ in range(100):
        if sh(state, "w", "cat /workspace/chk 2>/dev/null || true"):
            break
        time.sleep(0.05)
    assert sh(state, "w", "cat /workspace/chk") == "same 1\n"
    # Hostile: an unknown name is refused; a client's own "secret_envv"
    # (the supervisor's key) is dropped, never reaching the service.
    r = sp(state, "service", "start", "w", "x", "--secret-env", "NOPE",
           "--", "true")
    assert r.returncode == 125 and "NOPE" in r.stderr, r.stderr
    s = socket.socket(socket.AF_UNIX)
    s.connect(os.path.join(state, "workspaces", "w", "control.sock"))
    f = s.makefile("rb")
    s.sendall(json.dumps({"id": 1, "method": "service.start", "params": {
        "name": "forged", "argv": ["sh", "-c",
                                   "echo \"[$EVIL]\" > /workspace/forged"],
        "secret_envv": ["EVIL=x"]}}).encode() + b"\n")
    m = json.loads(f.readline())
    s.close()
    assert "result" in m, m
    for _ in range(100):
        if sh(state, "w", "cat /workspace/forged 2>/dev/null || true"):
            break
        time.sleep(0.05)
    assert sh(state, "w", "cat /workspace/forged") == "[]\n"
    sh(state, "w", "echo one > /workspace/f")
    assert sp(state, "snapshot", "w", "s").returncode == 0
    sh(state, "w", "echo two > /workspace/f")
    r = sp(state, "restore", "w", "s")
    assert r.returncode == 125 and "--secret" in r.stderr \
        and "TOK" in r.stderr, r.stderr
    assert len(r.stderr.splitlines()) == 1
    assert svc_ls(state, "w")["web"]["state"] == "running"
    assert sh(state, "w", "cat /workspace/f") == "two\n"
    r = sp(state, "restore", "w", "s", "--secret", "TOK=@%s" % sec)
    assert r.returncode == 0 and "restarted" in r.stdout, r.stderr
    # It says what came back: web, and leaky left out (as failed).
    assert "\nservice web: running\n" in r.stdout, r.stdout
    assert "\nservice leaky: failed: not started again" in r.stdout, r.stdout
    assert "s3cr3t" not in r.stdout + r.stderr
    assert sh(state, "w", "cat /workspace/f") == "one\n"
    ls = svc_ls(state, "w")
    assert ls["web"]["state"] == "running"
    assert ls["web"]["secret_env"] == ["TOK"] and ls["web"]["env"] == ["A=1"]
    # Its spec reached restore redacted: started so it would not be the
    # same service, so it is left out rather than changed.
    assert "leaky" not in ls
    for _ in range(100):
        if sh(state, "w", "cat /workspace/chk") == "same 1\n" * 2:
            break
        time.sleep(0.05)
    assert sh(state, "w", "cat /workspace/chk") == "same 1\n" * 2
    r = subprocess.run(["grep", "-rlaF", "s3cr3t-value", state],
                       capture_output=True, text=True)
    assert r.stdout == "", r.stdout
    # Stopped, it restores without them and stays stopped.
    assert sp(state, "stop", "w").returncode == 0
    r = sp(state, "restore", "w", "s")
    assert r.returncode == 0 and "stopped" in r.stdout, r.stderr
    for bad in (["w"], ["w", "s", "x"], ["w", "s", "--secret"],
                ["w", "s", "--secret", "TOK=inline"], ["-w", "s"]):
        r = sp(state, "restore", *bad)
        assert r.returncode == 125, (bad, r.stderr)


def test_serve_snapshot_methods(state, tmp_path):
    """workspace.snapshot / snapshots / restore / snapshot_delete over
    `sandpit serve`, with hostile arguments refused."""
    import socket
    path = str(tmp_path / "s.sock")
    p = start_serve(state, path)
    try:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(path)
        f = s.makefile("rb")
        n = [0]

        def call(method, params):
            n[0] += 1
            s.sendall(json.dumps({"jsonrpc": "2.0", "id": n[0],
                                  "method": method,
                                  "params": params}).encode() + b"\n")
            while True:
                r = json.loads(f.readline())
                if r.get("id") == n[0]:
                    return r
        assert "result" in call("workspace.create", {"name": "r1"})
        sh(state, "r1", "echo one > /workspace/f")
        r = call("workspace.snapshot", {"workspace": "r1", "snapshot": "a"})
        assert r["result"]["snapshot"] == "a" and r["result"]["files"] >= 1
        sh(state, "r1", "echo two > /workspace/f")
        r = call("workspace.snapshots", {"workspace": "r1"})
        assert [x["name"] for x in r["result"]["snapshots"]] == ["a"]
        r = call("workspace.restore", {"workspace": "r1", "snapshot": "a"})
        assert r["result"]["restarted"] is True
        assert sh(state, "r1", "cat /workspace/f") == "one\n"
        for bad in ({"workspace": "r1", "snapshot": "../x"},
                    {"workspace": "r1"},
                    {"workspace": "r1", "snapshot": "a", "extra": 1},
                    {"workspace": "../r1", "snapshot": "a"},
                    {"workspace": "r1", "snapshot": 7}):
            r = call("workspace.snapshot", bad)
            assert "error" in r, bad
        r = call("workspace.restore", {"workspace": "r1", "snapshot": "nope"})
        assert "error" in r and "no snapshot" in r["error"]["message"]
        r = call("workspace.snapshot_delete", {"workspace": "r1", "snapshot": "a"})
        assert r["result"]["deleted"] is True
        assert snaps(state, "r1") == {}
        s.close()
    finally:
        p.terminate()
        p.wait(timeout=10)


def test_a_missing_layer_is_refused_not_ignored(state):
    create(state, "w")
    sh(state, "w", "echo a > /workspace/a")
    assert sp(state, "snapshot", "w", "s").returncode == 0
    assert sp(state, "fork", "w", "s", "f").returncode == 0
    assert sp(state, "stop", "f").returncode == 0
    import shutil
    lay = layers(state)
    assert len(lay) == 1
    shutil.rmtree(os.path.join(state, "snapshots", "layers", lay[0]))
    r = sp(state, "start", "f")
    assert r.returncode == 125 and "is missing" in r.stderr, r.stderr
    r = sp(state, "restore", "w", "s")
    assert r.returncode == 125 and "missing" in r.stderr, r.stderr
    assert ps(state)["w"]["state"] == "running"  # checked before stopping


def test_mountinfo_inside_names_no_host_state_path(state, tmp_path):
    # Overlay options show in /proc/self/mountinfo as they were given: the
    # layers under the state dir are mounted by paths relative to it, so
    # the sandbox does not learn where (in whose home) the state lives —
    # with the state named through a symlink, and with snapshot layers
    # stacked under the root.
    link = tmp_path / "named-state-5e2b"
    os.symlink(state, link)
    st = str(link)
    create(st, "w")
    assert sp(st, "exec", "w", "--", "sh", "-c",
              "echo one > /workspace/a; echo etc > /etc/sp-a").returncode == 0
    assert sp(st, "snapshot", "w", "s1").returncode == 0
    assert sp(st, "restore", "w", "s1").returncode == 0
    r = sp(st, "exec", "w", "--", "sh", "-c",
           "cat /proc/self/mountinfo; cat /workspace/a /etc/sp-a")
    assert r.returncode == 0, r.stderr
    assert r.stdout.endswith("one\netc\n")
    ovl = [ln for ln in r.stdout.splitlines() if " - overlay " in ln]
    assert any(" / / " in ln for ln in ovl), r.stdout   # the root overlay
    assert any("lowerdir+" in ln or "lowerdir=" in ln for ln in ovl)
    for p in {state, st, os.path.realpath(state), str(tmp_path)}:
        assert p not in r.stdout, (p, r.stdout)


def test_restore_says_which_services_came_back(state):
    """restore prints one line per service it brought back: ready (its
    probe passed), running (no probe) or failed with the reason (here a
    readiness timeout: the file its probe waits for is not in the
    snapshot); a service without --restart is not brought back and not
    listed. --json gives the same as {services: [{name, state, reason}]}
    and a stopped workspace lists none."""
    create(state, "w")
    assert sp(state, "snapshot", "w", "s").returncode == 0
    sh(state, "w", "touch /workspace/ok")
    for args in (["web", "--ready", "file:/tmp/web", "--", "sh", "-c",
                  "touch /tmp/web; exec sleep 1000"],
                 ["db", "--ready", "file:/tmp/db", "--ready-timeout", "1",
                  "--", "sh", "-c",
                  "[ -e /workspace/ok ] && touch /tmp/db; exec sleep 1000"],
                 ["plain", "--", "sleep", "1000"]):
        r = sp(state, "service", "start", "w", args[0], "--restart",
               "on-failure", *args[1:])
        assert r.returncode == 0, r.stderr
    r = sp(state, "service", "start", "w", "once", "--", "sleep", "1000")
    assert r.returncode == 0, r.stderr
    r = sp(state, "restore", "w", "s")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert "restarted" in lines[0]
    assert lines[1:] == ["service web: ready",
                         "service db: failed: readiness timeout (1s)",
                         "service plain: running"], lines
    ls = svc_ls(state, "w")
    assert ls["web"]["state"] == "ready" and ls["db"]["state"] == "failed"
    assert "once" not in ls
    # Again, as JSON: db is failed now, so it is not brought back.
    sh(state, "w", "touch /workspace/ok")
    r = sp(state, "restore", "w", "s", "--json")
    assert r.returncode == 0, r.stderr
    j = json.loads(r.stdout)
    assert j["workspace"] == "w" and j["snapshot"] == "s"
    assert j["restarted"] is True
    assert j["services"] == [{"name": "web", "state": "ready"},
                             {"name": "plain", "state": "running"}], j
    assert sp(state, "stop", "w").returncode == 0
    r = sp(state, "restore", "w", "s", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == {"workspace": "w", "snapshot": "s",
                                    "restarted": False, "services": []}
    r = sp(state, "restore", "w", "s")
    assert r.returncode == 0 and "service" not in r.stdout, r.stdout
