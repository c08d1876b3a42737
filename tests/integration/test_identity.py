"""Who the sandbox is on the host (docs/security.md): a root caller's
sandbox runs as a host id range of its own, never host root; the workspace
and --rw binds keep the caller's ownership (ID-mapped mounts); an ordinary
user with an /etc/subuid entry gets more than one id inside."""
import json
import os
import stat
import subprocess
import tarfile

import pytest

from conftest import IS_ROOT, create, run, sandpit, sp

NOBODY = 65534


def sh(script, cwd, flags=(), **kw):
    return run("/bin/sh", "-c", script, flags=flags, cwd=cwd, **kw)


def uid_map(cwd):
    r = sh("cat /proc/self/uid_map", cwd)
    assert r.returncode == 0, r.stderr
    return [tuple(int(x) for x in line.split()) for line in
            r.stdout.splitlines()]


def host_gives_range():
    """Whether this caller should get more than one id (docs/security.md):
    root always; a user with /etc/subuid and /etc/subgid entries and the
    newuidmap/newgidmap helpers."""
    if IS_ROOT:
        return True
    import pwd
    me = pwd.getpwuid(os.geteuid()).pw_name
    for f in ("/etc/subuid", "/etc/subgid"):
        try:
            with open(f) as fh:
                if not any(line.split(":")[0] in (me, str(os.geteuid()))
                           for line in fh):
                    return False
        except OSError:
            return False
    return all(os.access(p, os.X_OK) for p in ("/usr/bin/newuidmap",
                                                 "/usr/bin/newgidmap"))


@pytest.fixture
def ws(tmp_path):
    """A workspace directory owned by the caller (as `cd DIR && sandpit
    run` would have it)."""
    d = tmp_path / "ws"
    d.mkdir()
    os.chmod(tmp_path, 0o755)
    return d


# ---- root callers: never host root ------------------------------------------

@pytest.mark.skipif(not IS_ROOT, reason="the root caller's identity")
def test_root_sandbox_is_a_range_of_its_own(ws):
    m = uid_map(ws)
    assert len(m) == 1
    inside, host, count = m[0]
    assert (inside, count) == (0, 65536)
    assert host >= 65536           # not host root, not a login user
    r = sh("id -u; id -G; cat /proc/self/gid_map", ws)
    lines = r.stdout.split("\n")
    assert lines[0] == "0" and lines[1] == "0"
    assert lines[2].split()[1] == str(host)
    # the host sees the sandbox's processes as that id, not as root
    r = sh("grep -E '^(Uid|Gid):' /proc/self/status", ws,
           flags=["--no-userns"])
    assert r.stdout.split()[1] == "0"   # control: --no-userns is host root


@pytest.mark.skipif(not IS_ROOT, reason="host root's own files")
def test_root_only_files_in_exposed_tree_unreadable(ws, tmp_path):
    tree = tmp_path / "etc"
    (tree / "private").mkdir(parents=True)
    os.chmod(tree, 0o755)
    os.chmod(tree / "private", 0o710)
    key = tree / "key.pem"
    key.write_text("root only\n")
    os.chmod(key, 0o600)
    (tree / "private" / "k").write_text("x\n")
    r = sh(f"cat {key}; echo rc=$?; ls {tree}/private; echo rc=$?; "
           f"stat -c %u:%g {key}", ws, flags=["--ro", str(tree)])
    out = r.stdout.split()
    assert out[0] == "rc=1" and out[1] == "rc=2", r.stdout + r.stderr
    assert "root only" not in r.stdout
    assert out[2] == f"{NOBODY}:{NOBODY}"   # host root's files: nobody's
    # control: the same read as host root (no user namespace) succeeds
    r = sh(f"cat {key}", ws, flags=["--ro", str(tree), "--no-userns"])
    assert r.stdout == "root only\n"


def test_proc_slabinfo_unreadable(ws):
    r = sh("cat /proc/slabinfo", ws)
    assert r.returncode != 0
    assert "Permission denied" in r.stderr


@pytest.mark.skipif(not IS_ROOT, reason="host root's own files")
def test_host_system_files_are_nobodys(ws):
    r = sh("stat -c %u /usr/bin/env /etc/passwd; touch /usr/x; echo $?", ws)
    out = r.stdout.split()
    assert out[0] == str(NOBODY)
    assert out[-1] != "0"


@pytest.mark.skipif(not IS_ROOT, reason="the root caller's descriptors")
def test_stdout_cannot_become_set_uid(ws, tmp_path):
    out = tmp_path / "out"
    with open(out, "w") as f:
        r = subprocess.run([os.environ.get("SANDPIT_BIN", "build/sandpit"),
                            "run", "-q", "--", "/bin/sh", "-c",
                            "chmod 4755 /proc/self/fd/1"],
                           cwd=ws, stdout=f, stderr=subprocess.PIPE,
                           text=True, timeout=60)
    assert r.returncode != 0
    assert "Operation not permitted" in r.stderr
    st = os.stat(out)
    assert not st.st_mode & stat.S_ISUID
    assert st.st_uid == 0


# ---- the workspace and --rw keep the caller's ownership ---------------------

def test_workspace_and_rw_files_owned_by_caller(ws, tmp_path):
    rw = tmp_path / "rw"
    rw.mkdir()
    (ws / "mine").write_text("caller's\n")
    os.chmod(ws / "mine", 0o600)
    r = sh(f"echo a > made; echo b > {rw}/made; mkdir d; "
           f"stat -c %u:%g mine made {rw}/made; cat mine; "
           f"echo more >> mine && echo appended",
           ws, flags=["--rw", str(rw)])
    assert r.returncode == 0, r.stderr
    out = r.stdout.split()
    # inside, the caller's files and the new ones are the sandbox's root's
    assert out[:3] == ["0:0"] * 3
    assert out[3:] == ["caller's", "appended"]
    me, mygid = os.geteuid(), os.getegid()
    for p in (ws / "made", ws / "d", rw / "made", ws / "mine"):
        st = os.stat(p)
        assert (st.st_uid, st.st_gid) == (me, mygid), p
    if IS_ROOT:
        # and all that without being host root
        assert uid_map(ws)[0][1] != 0


@pytest.mark.skipif(not IS_ROOT, reason="ids equal on both sides (root)")
def test_root_chown_in_workspace_lands_on_host(ws):
    r = sh("touch f; chown 1234:4321 f; stat -c %u:%g f", ws)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "1234:4321"
    st = os.stat(ws / "f")
    assert (st.st_uid, st.st_gid) == (1234, 4321)


# ---- more than one id inside -----------------------------------------------

def multi_owner_tarball(path):
    with tarfile.open(path, "w:gz") as t:
        for name, uid, gid in (("t/a", 1000, 1000), ("t/b", 2000, 3000),
                               ("t/c", 0, 0)):
            info = tarfile.TarInfo(name)
            info.uid, info.gid, info.size = uid, gid, 2
            info.mode = 0o644
            import io
            t.addfile(info, io.BytesIO(b"x\n"))


def test_chown_and_multi_owner_tar(ws):
    if not host_gives_range():
        pytest.skip("no /etc/subuid range for this user (single-id fallback)")
    multi_owner_tarball(ws / "t.tgz")
    os.chmod(ws / "t.tgz", 0o644)
    r = sh("touch f && chown 1234:1234 f && stat -c %u:%g f && "
           "tar xzf t.tgz && stat -c %n:%u:%g t/a t/b t/c", ws)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["1234:1234", "t/a:1000:1000",
                                "t/b:2000:3000", "t/c:0:0"]


def test_setgroups_and_uid_change_inside(ws):
    if not host_gives_range():
        pytest.skip("no /etc/subuid range for this user (single-id fallback)")
    r = sh("setpriv --reuid 1000 --regid 1000 --groups 1000,1001 sh -c 'id -u; id -G'",
           ws)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["1000", "1000", "1001"]


@pytest.mark.skipif(IS_ROOT, reason="the subordinate ids of a user")
def test_user_subordinate_ids_on_host(ws):
    if not host_gives_range():
        pytest.skip("no /etc/subuid range for this user (single-id fallback)")
    m = uid_map(ws)
    assert m[0] == (0, os.geteuid(), 1)
    sub = [x for x in m if x[0] <= 1234 < x[0] + x[2]][0]
    r = sh("touch f && chown 1234 f", ws)
    assert r.returncode == 0, r.stderr
    assert os.stat(ws / "f").st_uid == sub[1] + 1234 - sub[0]


def test_require_idrange(ws):
    r = sh("true", ws, flags=["--require", "idrange"])
    if host_gives_range():
        assert r.returncode == 0, r.stderr
    else:
        assert r.returncode == 125
        assert "--require idrange" in r.stderr


@pytest.mark.skipif(not IS_ROOT, reason="--no-userns needs root")
def test_require_idmap_conflicts_with_no_userns(ws):
    r = sh("true", ws, flags=["--require", "idmap", "--no-userns"])
    assert r.returncode == 125
    assert "--require idmap conflicts with --no-userns" in r.stderr
    r = sh("true", ws, flags=["--require", "idmap,idrange"])
    assert r.returncode == 0, r.stderr


def test_doctor_reports_identity():
    r = sandpit("doctor", "--json")
    assert r.returncode in (0, 1), r.stderr
    d = json.loads(r.stdout)
    ident, idmap = d["layers"]["identity"], d["layers"]["idmap"]
    if IS_ROOT:
        assert ident["kind"] == "range"
        assert ident["host_uids"][0] >= 65536
        assert ident["host_uids"][1] == 65536
        assert idmap["needed"] is True
    else:
        assert ident["kind"] in ("subordinate", "single")
        assert idmap["needed"] is False
    r = sandpit("doctor")
    assert "identity" in r.stdout and "idmap" in r.stdout


# ---- workspaces -------------------------------------------------------------

def test_workspace_identity(state, tmp_path):
    name = create(state, "ids")
    r = sp(state, "exec", name, "--", "/bin/sh", "-c",
           "cd /workspace && echo a > a && mkdir d && stat -c %u:%g a d && "
           "cat /proc/self/uid_map && stat -c %u /usr/bin/env")
    assert r.returncode == 0, r.stderr
    out = r.stdout.split()
    assert out[:2] == ["0:0", "0:0"]
    if IS_ROOT:
        assert out[3] != "0"                 # never host root
        assert out[-1] == str(NOBODY)        # host files: nobody's
    # on the host, the workspace's files are the caller's
    up = os.path.join(state, "workspaces", name, "workspace")
    me = os.geteuid()
    assert os.stat(os.path.join(up, "a")).st_uid == me
    assert os.stat(os.path.join(up, "d")).st_uid == me
    # and survive a restart with the same ownership inside
    assert sp(state, "stop", name).returncode == 0
    assert sp(state, "start", name).returncode == 0
    r = sp(state, "exec", name, "--", "/bin/sh", "-c",
           "echo b >> /workspace/a && stat -c %u /workspace/a")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "0"


@pytest.mark.skipif(not IS_ROOT, reason="runs sandpit as a user without "
                    "an /etc/subuid entry (nobody), which needs root")
def test_single_id_fallback_is_loud():
    import shutil
    import tempfile
    if not shutil.which("runuser"):
        pytest.skip("no runuser")
    d = tempfile.mkdtemp(prefix="sandpit-nobody.")   # nobody must reach it
    os.chmod(d, 0o777)
    try:
        single_id_fallback(d)
    finally:
        shutil.rmtree(d, ignore_errors=True)


def single_id_fallback(d):
    binary = os.path.abspath(os.environ.get("SANDPIT_BIN", "build/sandpit"))

    def as_nobody(*flags):
        return subprocess.run(
            ["runuser", "-u", "nobody", "--", "env", f"HOME={d}", binary,
             "run", "--memory", "0", "--pids", "0", *flags, "--", "/bin/sh",
             "-c", "cat /proc/self/uid_map"],
            cwd=w, capture_output=True, text=True, timeout=60)
    # The workspace is a directory of its own: HOME holds the state dir,
    # which is never a workspace (docs/policy.md).
    w = os.path.join(d, "w")
    os.mkdir(w)
    os.chmod(w, 0o777)
    r = as_nobody()
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["0", "65534", "1"]
    assert "only your own id is mapped inside" in r.stderr
    assert "--require idrange" in r.stderr
    r = as_nobody("--require", "idrange")
    assert r.returncode == 125
    assert "--require idrange: only one id can be mapped inside" in r.stderr


def test_uid_inside_keeps_callers_ownership(ws):
    # --uid N: the caller's files are N's inside, N's new files the
    # caller's on the host (root: the ID-mapped workspace swaps 0 and N;
    # a user: its own id is N)
    (ws / "mine").write_text("x\n")
    r = sh("stat -c %u:%g mine; echo y > made; stat -c %u:%g made; id -u",
           ws, flags=["--uid", "1000", "--gid", "1000"])
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["1000:1000", "1000:1000", "1000"]
    st = os.stat(ws / "made")
    assert (st.st_uid, st.st_gid) == (os.geteuid(), os.getegid())
    if IS_ROOT:
        assert uid_map(ws)[0][1] != 0


def test_reset_and_rm_remove_what_the_sandbox_chowned(state):
    # files chowned inside to other ids are a user's subordinate ids on the
    # host: reset and rm must still remove them (docs/security.md)
    if not host_gives_range():
        pytest.skip("no /etc/subuid range for this user (single-id fallback)")
    name = create(state, "chowned")
    script = ("mkdir -p /workspace/d/sub && touch /workspace/d/sub/f && "
              "chmod 700 /workspace/d /workspace/d/sub && "
              "chown -R 1234:1234 /workspace/d && mkdir -p /opt/x && "
              "touch /opt/x/y && chown -R 77:77 /opt/x")
    r = sp(state, "exec", name, "--", "/bin/sh", "-c", script)
    assert r.returncode == 0, r.stderr
    r = sp(state, "reset", name)
    assert r.returncode == 0, r.stderr
    r = sp(state, "exec", name, "--", "/bin/sh", "-c",
           "test ! -e /workspace/d && test ! -e /opt/x && " + script)
    assert r.returncode == 0, r.stderr
    r = sp(state, "rm", "-f", name)
    assert r.returncode == 0, r.stderr
    assert os.listdir(os.path.join(state, "workspaces")) == []
