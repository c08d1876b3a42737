"""The copy-on-write filesystem of persistent workspaces: --from, writes to
/workspace, the system paths and HOME landing in the workspace's upper
layers (never in the host's files), diff, reset, persistence across
stop/start, --read-only-system, a hostile upper dir, failed creates. Each
test has its own SANDPIT_STATE under tmp_path."""
import json
import os
import stat
import subprocess

import pytest

from conftest import IS_ROOT, create, sandpit, sp


def sh(state, name, script, rc=0):
    r = sp(state, "exec", name, "--", "/bin/sh", "-c", script)
    assert r.returncode == rc, (r.returncode, r.stdout, r.stderr)
    return r.stdout


def diff(state, name):
    r = sp(state, "diff", name, "--json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def tree(path):
    """Every path below `path` with its type, size and mtime."""
    out = {}
    for root, dirs, files in os.walk(path):
        for n in dirs + files:
            p = os.path.join(root, n)
            s = os.lstat(p)
            out[os.path.relpath(p, path)] = (stat.S_IFMT(s.st_mode), s.st_size,
                                             s.st_mtime_ns)
    return out


@pytest.fixture
def seed(tmp_path):
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


def test_from_seeds_and_is_never_written(state, seed):
    before = tree(seed)
    create(state, "w1", "--from", seed)
    assert sh(state, "w1", "cat /workspace/keep.txt /workspace/sub/deep.txt") \
        == "keep\ndeep\n"
    sh(state, "w1", "echo new > /workspace/edit.txt; rm /workspace/gone.txt; "
       "echo added > /workspace/added.txt; rm -r /workspace/sub; "
       "mkdir /workspace/sub; echo x > /workspace/sub/other")
    assert sh(state, "w1", "cat /workspace/edit.txt") == "new\n"
    sh(state, "w1", "test ! -e /workspace/gone.txt")
    sh(state, "w1", "test ! -e /workspace/sub/deep.txt")
    # The seed is untouched: same names, sizes, times.
    assert tree(seed) == before
    d = diff(state, "w1")
    assert "/workspace/added.txt" in d["added"]
    assert "/workspace/edit.txt" in d["modified"]
    assert "/workspace/gone.txt" in d["deleted"]
    # sub was removed and made again: opaque, its old file deleted
    assert "/workspace/sub/deep.txt" in d["deleted"]
    assert "/workspace/sub/other" in d["added"]
    assert "/workspace/keep.txt" not in sum((d[k] for k in
                                             ("added", "modified", "deleted")),
                                            [])


def test_system_and_home_writes_land_in_upper(state):
    create(state, "w2")
    sh(state, "w2", "echo hi > $HOME/notes && mkdir -p /opt/tool && "
       "echo 1 > /opt/tool/v && echo w > /workspace/f")
    assert not os.path.exists("/opt/tool/v")
    layers = os.path.join(state, "workspaces", "w2", "layers", "up")
    assert os.path.exists(os.path.join(layers, "root", "upper", "opt", "tool",
                                       "v"))
    # A modified /etc file of the skeleton.
    sh(state, "w2", "echo '# x' >> /etc/hosts")
    d = diff(state, "w2")
    assert "/etc/hosts" in d["modified"]
    assert "/home/sandpit/notes" in d["added"]
    # The host's trees keep their owners: host root's files are nobody's
    # in the user namespace, for a root caller too (docs/security.md), so
    # they are copy-on-write only where the sandbox may write.
    r = sp(state, "exec", "w2", "--", "/bin/sh", "-c",
           "touch /usr/local/x; rm /usr/share/common-licenses/GPL-3")
    assert r.returncode != 0 and "Permission denied" in r.stderr
    assert not os.path.exists("/usr/local/x")
    assert os.path.exists("/usr/share/common-licenses/GPL-3")
    d = diff(state, "w2")
    assert "/opt/tool/v" in d["added"]
    assert "/workspace/f" in d["added"]
    assert d["truncated"] is False


def test_diff_json_shape_and_text(state):
    create(state, "w3")
    d = diff(state, "w3")
    assert set(d) == {"workspace", "added", "modified", "deleted", "truncated"}
    assert d["workspace"] == "w3"
    assert d["added"] == [] and d["modified"] == [] and d["deleted"] == []
    sh(state, "w3", "echo a > /workspace/a")
    r = sp(state, "diff", "w3")
    assert r.returncode == 0
    assert "A /workspace/a" in r.stdout.splitlines()
    assert sp(state, "diff", "nope").returncode == 125
    assert sp(state, "diff").returncode == 125
    assert sp(state, "diff", "../x").returncode == 125


def test_read_only_system(state):
    create(state, "w4", "--read-only-system")
    r = sp(state, "exec", "w4", "--", "/bin/sh", "-c", "touch /usr/local/x")
    assert r.returncode != 0
    assert "Read-only file system" in r.stderr
    sh(state, "w4", "echo ok > /workspace/f && echo h > $HOME/h")
    d = diff(state, "w4")
    assert "/workspace/f" in d["added"]
    assert "/home/sandpit/h" in d["added"]
    assert not [p for p in d["added"] if p.startswith("/usr")]


def test_reset_returns_to_base(state, seed):
    create(state, "w5", "--from", seed)
    sh(state, "w5", "rm /workspace/keep.txt; echo z > /workspace/z; "
       "touch /usr/local/y /etc/y; echo h > $HOME/h")
    assert diff(state, "w5")["added"]
    r = sp(state, "reset", "w5")
    assert r.returncode == 0, r.stderr
    d = diff(state, "w5")
    assert d["added"] == [] and d["modified"] == [] and d["deleted"] == []
    # running again, with the --from content back
    assert sh(state, "w5", "cat /workspace/keep.txt") == "keep\n"
    sh(state, "w5", "test ! -e /workspace/z && test ! -e /usr/local/y && "
       "test ! -e $HOME/h && test ! -e /etc/y")
    # reset of a stopped workspace leaves it stopped
    sh(state, "w5", "echo q > /workspace/q")
    assert sp(state, "stop", "w5").returncode == 0
    assert sp(state, "reset", "w5").returncode == 0
    assert diff(state, "w5")["added"] == []
    r = sp(state, "exec", "w5", "--", "/bin/true")
    assert r.returncode == 125
    assert sp(state, "reset", "nope").returncode == 125


def test_persists_across_stop_start(state, seed):
    create(state, "w6", "--from", seed)
    sysfile = "/etc/p"
    sh(state, "w6", f"echo p > /workspace/p; touch {sysfile}; "
       "echo h > $HOME/h; rm /workspace/gone.txt; mkdir -p /var/lib/thing; "
       "echo v > /var/lib/thing/v")
    assert sp(state, "stop", "w6").returncode == 0
    assert sp(state, "start", "w6").returncode == 0
    assert sh(state, "w6", "cat /workspace/p $HOME/h /var/lib/thing/v") == \
        "p\nh\nv\n"
    sh(state, "w6", f"test -e {sysfile} && test ! -e /workspace/gone.txt")


def test_hostile_upper_is_not_followed(state, tmp_path):
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "inside").write_text("s")
    os.chmod(secret, 0o755)
    create(state, "w7")
    # Symlinks to host paths, a fifo, a deep tree, an odd name.
    sh(state, "w7", f"cd /workspace && ln -s {secret} link && "
       "ln -s / rootlink && mkfifo fifo && "
       "mkdir -p $(printf 'd/%.0s' $(seq 1 200)) && "
       "touch \"$(printf 'bad\\001\\377name')\" && "
       "ln -s /etc $HOME/etclink")
    d = diff(state, "w7")
    paths = d["added"]
    assert "/workspace/link" in paths and "/workspace/fifo" in paths
    assert "/workspace/rootlink" in paths
    assert not [p for p in paths if "inside" in p]
    assert not [p for p in paths if p.startswith("/workspace/rootlink/")]
    assert not [p for p in paths if p.startswith("/home/sandpit/etclink/")]
    assert d["truncated"] is True  # 200 levels is past the depth bound
    assert any(p.startswith("/workspace/bad\\x01") for p in paths)


def test_bad_from_leaves_nothing(state, tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    for bad in (str(tmp_path / "missing"), str(f)):
        r = sp(state, "create", "wb", "-q", "--from", bad)
        assert r.returncode == 125, r.stderr
        assert "--from" in r.stderr
        assert not os.path.exists(os.path.join(state, "workspaces", "wb"))
    r = sp(state, "create", "wb", "-q", "--from")
    assert r.returncode == 125


def test_run_is_unchanged(tmp_path):
    # run keeps its read-only system and tmpfs root: no overlay there
    r = sandpit("run", "--", "/bin/sh", "-c", "touch /usr/local/x",
                cwd=str(tmp_path))
    assert r.returncode != 0
    r = sandpit("run", "--", "/bin/sh", "-c", "mkdir /opt2", cwd=str(tmp_path))
    assert r.returncode != 0


def test_failed_mount_leaves_nothing(state):
    # procfs cannot be an overlay lower layer: the mount fails in the child
    r = sp(state, "create", "wm", "-q", "--from", "/proc/sys")
    assert r.returncode == 125
    assert "copy-on-write layer" in r.stderr
    assert not os.path.exists(os.path.join(state, "workspaces", "wm"))
    assert sp(state, "ps", "--json").stdout.strip() == "[]"


@pytest.mark.skipif(not IS_ROOT, reason="mounts a small tmpfs")
def test_full_disk_leaves_nothing(tmp_path):
    d = tmp_path / "tiny"
    d.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=40k", "tmpfs", str(d)],
                   check=True)
    try:
        r = sandpit("create", "wf", "-q", env={"SANDPIT_STATE": str(d)})
        assert r.returncode == 125
        assert "No space left" in r.stderr
        assert os.listdir(d / "workspaces") == []
    finally:
        subprocess.run(["umount", "-l", str(d)], check=False)
