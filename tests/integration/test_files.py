"""The file API of workspaces (docs/files.md): ls/stat/cat/write/mkdir/rm/mv,
patch, import/export and cp on real workspaces, with hostile inputs: paths
and symlinks planted by the sandboxed program (also swapped between and
during calls), archives carrying each forbidden member, patches that
conflict or reach outside, binary and odd files, and the wire framing.
Each test has its own SANDPIT_STATE under tmp_path."""
import io
import json
import os
import socket
import subprocess
import tarfile
import time
import zipfile

import pytest

from conftest import SANDPIT


def sp(state, *args, input=None, text=True, timeout=60):
    e = dict(os.environ)
    e["SANDPIT_STATE"] = state
    return subprocess.run([SANDPIT, *args], input=input, capture_output=True,
                          text=text, env=e, timeout=timeout)


def spb(state, *args, input=b""):
    return sp(state, *args, input=input, text=False)


@pytest.fixture
def w(state):
    r = sp(state, "create", "fw", "-q")
    assert r.returncode == 0, r.stderr
    return "fw"


def sh(state, name, script):
    r = sp(state, "exec", name, "--", "/bin/sh", "-c", script)
    return r


def data_dir(state, name):
    return os.path.join(state, "workspaces", name, "workspace")


def tree(state, name):
    """Every path under the workspace with its kind and content."""
    out = {}
    root = data_dir(state, name)
    for dp, dns, fns in os.walk(root):
        for n in dns + fns:
            p = os.path.join(dp, n)
            rel = os.path.relpath(p, root)
            if os.path.islink(p):
                out[rel] = ("l", os.readlink(p))
            elif os.path.isdir(p):
                out[rel] = ("d", None)
            else:
                with open(p, "rb") as f:
                    out[rel] = ("f", f.read())
    return out


# ---- write / cat / stat / ls ------------------------------------------------

@pytest.mark.parametrize("data", [
    b"", b"no final newline", b"a\r\nb\r\n", bytes(range(256)) * 17,
    os.urandom(3 * 1024 * 1024)], ids=["empty", "nonl", "crlf", "binary",
                                       "3MiB"])
def test_write_cat_roundtrip(state, w, data):
    r = spb(state, "write", w, "f.bin", input=data)
    assert r.returncode == 0, r.stderr
    r = spb(state, "cat", w, "f.bin")
    assert r.returncode == 0, r.stderr
    assert r.stdout == data
    with open(os.path.join(data_dir(state, w), "f.bin"), "rb") as f:
        assert f.read() == data
    # No temp file is left behind.
    assert not [n for n in os.listdir(data_dir(state, w))
                if n.startswith(".sp-write-")]


def test_cat_offset_length(state, w):
    spb(state, "write", w, "f", input=b"0123456789")
    assert spb(state, "cat", w, "f", "--offset", "3",
               "--length", "4").stdout == b"3456"
    assert spb(state, "cat", w, "f", "--offset", "8").stdout == b"89"
    assert spb(state, "cat", w, "f", "--offset", "100").stdout == b""


def test_write_mode_parents_and_atomic_replace(state, w):
    r = spb(state, "write", w, "a/b/c.sh", "--mode", "755", input=b"x")
    assert r.returncode == 125
    assert b"no such file" in r.stderr
    r = spb(state, "write", w, "a/b/c.sh", "--mode", "755", "-p", input=b"x")
    assert r.returncode == 0, r.stderr
    p = os.path.join(data_dir(state, w), "a/b/c.sh")
    assert os.stat(p).st_mode & 0o777 == 0o755
    ino = os.stat(p).st_ino
    # Replacing keeps the mode, and is a new inode (rename, not truncate).
    assert spb(state, "write", w, "a/b/c.sh", input=b"yy").returncode == 0
    assert os.stat(p).st_mode & 0o777 == 0o755
    assert os.stat(p).st_ino != ino
    # A directory is not replaced by a file.
    r = spb(state, "write", w, "a/b", input=b"z")
    assert r.returncode == 125 and b"is a directory" in r.stderr
    # No setuid through the API.
    r = spb(state, "write", w, "s", "--mode", "4755", input=b"z")
    assert r.returncode == 125


def test_stat_and_ls(state, w):
    assert sh(state, w, "mkdir -p d/e && printf abc > d/f && ln -s f d/l && "
              "mkfifo d/p").returncode == 0
    r = sp(state, "stat", w, "d/l", "--json")
    assert r.returncode == 0, r.stderr
    s = json.loads(r.stdout)
    assert s["type"] == "symlink" and s["target"] == "f"
    s = json.loads(sp(state, "stat", w, "d/f", "--json").stdout)
    assert s["type"] == "file" and s["size"] == 3
    r = sp(state, "ls", w, "d", "--json")
    ents = json.loads(r.stdout)
    assert [e["path"] for e in ents] == ["e", "f", "l", "p"]
    assert [e["type"] for e in ents] == ["dir", "file", "symlink", "fifo"]
    r = sp(state, "ls", w, "-R", "--json")
    paths = [e["path"] for e in json.loads(r.stdout)]
    assert paths == ["d", "d/e", "d/f", "d/l", "d/p"]
    # Text form.
    r = sp(state, "ls", w, "d")
    assert r.returncode == 0 and "l -> f" in r.stdout
    # A fifo is not read (it would block).
    r = sp(state, "cat", w, "d/p", timeout=10)
    assert r.returncode == 125 and "not a regular file" in r.stderr


def test_ls_stat_escape_control_chars(state, w):
    """Names and link targets from the sandbox reach the terminal escaped
    as diff escapes them: no raw ESC, BEL or newline."""
    assert sh(state, w, "printf x > \"$(printf 'a\\033]0;pwn\\007b')\" && "
              "ln -s \"$(printf 't\\033[2J\\nu')\" lnk").returncode == 0
    for args in (["ls", w], ["stat", w, "lnk"]):
        r = sp(state, *args)
        assert r.returncode == 0, r.stderr
        assert "\x1b" not in r.stdout and "\x07" not in r.stdout, r.stdout
        assert r.stdout.count("\n") == (2 if args[0] == "ls" else 1), r.stdout
    assert "a\\x1b]0;pwn\\x07b" in sp(state, "ls", w).stdout
    assert "lnk -> t\\x1b[2J\\x0au" in sp(state, "stat", w, "lnk").stdout


def test_ls_pages_past_10000(state, w):
    assert sh(state, w, "mkdir many && cd many && "
              "i=0; while [ $i -lt 10050 ]; do : > f$i; i=$((i+1)); done"
              ).returncode == 0
    r = sp(state, "ls", w, "many", "--json", timeout=120)
    assert r.returncode == 0, r.stderr
    ents = json.loads(r.stdout)
    assert len(ents) == 10050
    assert len({e["path"] for e in ents}) == 10050


def test_mkdir_rm_mv(state, w):
    assert sp(state, "files", "mkdir", w, "x/y", "-p").returncode == 0
    r = sp(state, "files", "mkdir", w, "x/y")
    assert r.returncode == 125 and "exists" in r.stderr
    assert sp(state, "files", "mkdir", w, "x/y", "-p").returncode == 0
    spb(state, "write", w, "x/y/f", input=b"1")
    r = sp(state, "files", "rm", w, "x")
    assert r.returncode == 125 and "recursively" in r.stderr
    assert sp(state, "files", "mv", w, "x/y/f", "g").returncode == 0
    spb(state, "write", w, "h", input=b"2")
    r = sp(state, "files", "mv", w, "h", "g", "--no-replace")
    assert r.returncode == 125
    assert sp(state, "files", "rm", w, "x", "-r").returncode == 0
    assert sp(state, "files", "rm", w, "g").returncode == 0
    assert set(tree(state, w)) == {"h"}
    # The workspace itself cannot be removed or replaced.
    for args in (["files", "rm", w, ".", "-r"], ["files", "rm", w, "/workspace"],
                 ["files", "mv", w, "h", "."]):
        assert sp(state, *args).returncode == 125
    assert os.path.isdir(data_dir(state, w))
    # `sandpit files` with a bad subcommand is a usage error.
    assert sp(state, "files", "chmod", w, "h").returncode == 125


# ---- escapes ----------------------------------------------------------------

ESCAPES = [
    ("abs", "ln -s /etc/passwd x", "x"),
    ("climb", "ln -s ../../../../../../etc/passwd x", "x"),
    ("dir", "ln -s /etc x", "x/passwd"),
    ("magic", "ln -s /proc/self/root/etc/passwd x", "x"),
    ("magic-fd", "ln -s /proc/self/cwd/../etc x", "x/passwd"),
]


@pytest.mark.parametrize("name,plant,path", ESCAPES,
                         ids=[e[0] for e in ESCAPES])
def test_read_escape_refused(state, w, name, plant, path):
    assert sh(state, w, plant).returncode == 0
    r = spb(state, "cat", w, path)
    assert r.returncode == 125, r.stdout[:100]
    assert b"root:" not in r.stdout
    r = sp(state, "ls", w, path)
    assert r.returncode == 125 or "root:" not in r.stdout


@pytest.mark.parametrize("path", ["../x", "a/../../x", "/etc/passwd",
                                  "/workspace/../etc/passwd", "/tmp/x"])
def test_dotdot_and_absolute_refused(state, w, path):
    r = spb(state, "cat", w, path)
    assert r.returncode == 125
    assert b"root:" not in r.stdout
    r = spb(state, "write", w, path, input=b"evil")
    assert r.returncode == 125
    assert sh(state, w, "! test -e /tmp/x && ! grep -q evil /etc/passwd"
              ).returncode == 0


def test_write_through_symlinked_parent_refused(state, w):
    # The sandbox's /tmp is writable to it; the API must never write there.
    assert sh(state, w, "ln -s /tmp t && mkdir real && ln -s real inner"
              ).returncode == 0
    for p in ("t/evil", "inner/evil"):
        r = spb(state, "write", w, p, "-p", input=b"evil")
        assert r.returncode == 125
        assert b"symlink" in r.stderr
    assert sh(state, w, "! test -e /tmp/evil && ! test -e real/evil"
              ).returncode == 0
    # mkdir, rm, mv through one are refused too.
    assert sp(state, "files", "mkdir", w, "t/d").returncode == 125
    assert sp(state, "files", "rm", w, "t/x").returncode == 125
    assert sp(state, "files", "mv", w, "inner", "t/moved").returncode == 125
    # A symlink as the last component is replaced, not followed.
    assert sh(state, w, "echo keep > /tmp/target && ln -s /tmp/target last"
              ).returncode == 0
    assert spb(state, "write", w, "last", input=b"new").returncode == 0
    r = sh(state, w, "cat /tmp/target; test -L last || echo replaced")
    assert r.stdout == "keep\nreplaced\n"


def test_toctou_swap_during_writes(state, w):
    """A sandboxed program swaps a directory and a symlink to /tmp as fast
    as it can while the client writes through the path: no write may land
    in /tmp."""
    assert sh(state, w, "mkdir -p d").returncode == 0
    e = dict(os.environ, SANDPIT_STATE=state)
    swapper = subprocess.Popen(
        [SANDPIT, "exec", w, "--", "/bin/sh", "-c",
         "end=$(( $(date +%s) + 4 )); while [ $(date +%s) -lt $end ]; do "
         "mv d d.real; ln -s /tmp d; rm d; mv d.real d; done"],
        env=e, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        ok = 0
        end = time.monotonic() + 3
        i = 0
        while time.monotonic() < end:
            r = spb(state, "write", w, f"d/f{i}", input=b"x")
            ok += r.returncode == 0
            spb(state, "cat", w, f"d/f{i}")
            i += 1
    finally:
        swapper.wait(timeout=30)
    r = sh(state, w, "ls /tmp | grep -c '^f' || true")
    assert r.stdout.strip() == "0", r.stdout
    assert ok > 0


def test_toctou_swap_during_reads(state, w):
    """A file swapped with a symlink to /etc/passwd (and a directory with
    one to /etc) as fast as possible while the client reads it: a read
    returns the workspace's file or fails, never the host's."""
    assert sh(state, w, "mkdir d && echo mine > d/passwd && "
              "echo mine > f").returncode == 0
    e = dict(os.environ, SANDPIT_STATE=state)
    swapper = subprocess.Popen(
        [SANDPIT, "exec", w, "--", "/bin/sh", "-c",
         "end=$(( $(date +%s) + 4 )); while [ $(date +%s) -lt $end ]; do "
         "mv f f.real; ln -s /etc/passwd f; rm f; mv f.real f; "
         "mv d d.real; ln -s /etc d; rm d; mv d.real d; done"],
        env=e, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        got = 0
        end = time.monotonic() + 3
        while time.monotonic() < end:
            for p in ("f", "d/passwd"):
                r = spb(state, "cat", w, p)
                assert b"root:" not in r.stdout
                got += r.returncode == 0 and r.stdout == b"mine\n"
    finally:
        swapper.wait(timeout=30)
    assert got > 0


# ---- patch ------------------------------------------------------------------

def test_patch_applies_create_modify_delete(state, w):
    spb(state, "write", w, "a.txt", input=b"one\ntwo\nthree\n")
    spb(state, "write", w, "gone.txt", input=b"bye\n")
    spb(state, "write", w, "crlf.txt", input=b"x\r\ny\r\n")
    spb(state, "write", w, "nonl.txt", input=b"last")
    diff = (b"--- a/a.txt\n+++ b/a.txt\n@@ -1,3 +1,3 @@\n one\n-two\n+TWO\n"
            b" three\n"
            b"--- /dev/null\n+++ b/new/dir/n.txt\n@@ -0,0 +1 @@\n+fresh\n"
            b"--- a/gone.txt\n+++ /dev/null\n@@ -1 +0,0 @@\n-bye\n"
            b"--- a/crlf.txt\n+++ b/crlf.txt\n@@ -1,2 +1,2 @@\n x\r\n-y\r\n"
            b"+z\r\n"
            b"--- a/nonl.txt\n+++ b/nonl.txt\n@@ -1 +1 @@\n-last\n"
            b"\\ No newline at end of file\n+LAST\n"
            b"\\ No newline at end of file\n")
    r = spb(state, "patch", w, "--json", input=diff)
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    assert rep["ok"] is True
    st = {f["path"]: f["status"] for f in rep["files"]}
    assert st == {"a.txt": "modified", "new/dir/n.txt": "created",
                  "gone.txt": "deleted", "crlf.txt": "modified",
                  "nonl.txt": "modified"}
    t = tree(state, w)
    assert t["a.txt"][1] == b"one\nTWO\nthree\n"
    assert t["new/dir/n.txt"][1] == b"fresh\n"
    assert "gone.txt" not in t
    assert t["crlf.txt"][1] == b"x\r\nz\r\n"
    assert t["nonl.txt"][1] == b"LAST"


def test_patch_conflict_changes_nothing(state, w):
    spb(state, "write", w, "a.txt", input=b"one\ntwo\n")
    spb(state, "write", w, "b.txt", input=b"uno\ndos\n")
    before = tree(state, w)
    diff = (b"--- a/a.txt\n+++ b/a.txt\n@@ -1,2 +1,2 @@\n one\n-two\n+2\n"
            b"--- a/b.txt\n+++ b/b.txt\n@@ -1,2 +1,2 @@\n uno\n-tres\n+3\n")
    r = spb(state, "patch", w, input=diff)
    assert r.returncode == 1
    assert b"b.txt" in r.stderr and b"@@ -1,2 +1,2 @@" in r.stderr
    assert b"tres" in r.stderr and b"dos" in r.stderr
    assert tree(state, w) == before
    r = spb(state, "patch", w, "--json", input=diff)
    assert r.returncode == 1
    rep = json.loads(r.stdout)
    assert rep["ok"] is False and rep["failure"]["path"] == "b.txt"


@pytest.mark.parametrize("target", [b"../outside.txt", b"/etc/passwd",
                                    b"a/../../x"])
def test_patch_outside_refused(state, w, target):
    diff = (b"--- /dev/null\n+++ " + target +
            b"\n@@ -0,0 +1 @@\n+evil\n")
    r = spb(state, "patch", w, "-p0", input=diff)
    assert r.returncode == 125, r.stderr
    assert tree(state, w) == {}
    assert sh(state, w, "! grep -rq evil / 2>/dev/null || "
              "! grep -q evil /etc/passwd").returncode == 0


def test_patch_through_planted_symlink_refused(state, w):
    assert sh(state, w, "ln -s /tmp t && echo keep > /tmp/f").returncode == 0
    diff = b"--- a/t/f\n+++ b/t/f\n@@ -1 +1 @@\n-keep\n+evil\n"
    r = spb(state, "patch", w, input=diff)
    assert r.returncode in (1, 125)
    assert sh(state, w, "cat /tmp/f").stdout == "keep\n"


def test_patch_binary_and_garbage_refused(state, w):
    spb(state, "write", w, "b.bin", input=bytes(range(256)))
    r = spb(state, "patch", w, input=b"diff --git a/b.bin b/b.bin\n"
            b"GIT binary patch\nliteral 0\nHcmV?d00001\n")
    assert r.returncode == 125
    r = spb(state, "patch", w, input=os.urandom(4096))
    assert r.returncode == 125
    assert tree(state, w)["b.bin"][1] == bytes(range(256))


# ---- import / export / cp ---------------------------------------------------

def tar_bytes(members, mode="w"):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode, format=tarfile.GNU_FORMAT) as t:
        for ti, data in members:
            t.addfile(ti, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def ti(name, kind=tarfile.REGTYPE, data=b"", linkname="", mode=0o644):
    t = tarfile.TarInfo(name)
    t.type = kind
    t.mode = mode
    t.linkname = linkname
    if kind == tarfile.REGTYPE:
        t.size = len(data)
    return (t, data if kind == tarfile.REGTYPE else None)


def test_import_valid_tar_gz_zip(state, w):
    good = [ti("d", tarfile.DIRTYPE, mode=0o755), ti("d/f.txt", data=b"hi\n"),
            ti("d/l", tarfile.SYMTYPE, linkname="f.txt")]
    r = spb(state, "import", w, "--json", input=tar_bytes(good))
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["entries"] == 3
    t = tree(state, w)
    assert t["d/f.txt"] == ("f", b"hi\n") and t["d/l"] == ("l", "f.txt")
    r = spb(state, "import", w, "gz", input=tar_bytes(good, "w:gz"))
    assert r.returncode == 0, r.stderr
    assert tree(state, w)["gz/d/f.txt"][1] == b"hi\n"
    zb = io.BytesIO()
    with zipfile.ZipFile(zb, "w") as z:
        z.writestr("z/a.txt", "zip!")
    r = spb(state, "import", w, "zz", input=zb.getvalue())
    assert r.returncode == 0, r.stderr
    assert tree(state, w)["zz/z/a.txt"][1] == b"zip!"
    # A second import merges into existing directories.
    r = spb(state, "import", w, input=tar_bytes([ti("d/g.txt", data=b"g")]))
    assert r.returncode == 0, r.stderr
    t = tree(state, w)
    assert t["d/g.txt"][1] == b"g" and t["d/f.txt"][1] == b"hi\n"
    assert not [p for p in t if ".sp-import-" in p]


@pytest.mark.parametrize("tool", ["zstd", "xz", "bzip2"])
def test_import_compressed(state, w, tool):
    import shutil
    if not shutil.which(tool):
        pytest.skip(f"no {tool}")
    raw = tar_bytes([ti("c.txt", data=b"compressed " + tool.encode())])
    comp = subprocess.run([tool, "-c"], input=raw, capture_output=True,
                          check=True).stdout
    r = spb(state, "import", w, tool, input=comp)
    assert r.returncode == 0, r.stderr
    assert tree(state, w)[f"{tool}/c.txt"][1] == b"compressed " + tool.encode()


FORBIDDEN = [
    ("dotdot", [ti("ok.txt", data=b"1"), ti("../evil", data=b"x")]),
    ("absolute", [ti("ok.txt", data=b"1"), ti("/tmp/evil", data=b"x")]),
    ("symlink-then-file", [ti("ok.txt", data=b"1"),
                           ti("s", tarfile.SYMTYPE, linkname="/tmp"),
                           ti("s/evil", data=b"x")]),
    ("hardlink-out", [ti("ok.txt", data=b"1"),
                      ti("h", tarfile.LNKTYPE, linkname="/etc/passwd")]),
    ("hardlink-dotdot", [ti("ok.txt", data=b"1"),
                         ti("h", tarfile.LNKTYPE, linkname="../../x")]),
]


@pytest.mark.parametrize("name,members", FORBIDDEN,
                         ids=[f[0] for f in FORBIDDEN])
def test_import_forbidden_changes_nothing(state, w, name, members):
    spb(state, "write", w, "keep.txt", input=b"k")
    before = tree(state, w)
    r = spb(state, "import", w, input=tar_bytes(members))
    assert r.returncode == 125, (r.stdout, r.stderr)
    assert tree(state, w) == before
    assert sh(state, w, "! test -e /tmp/evil").returncode == 0


def test_import_device_skipped_setuid_dropped(state, w):
    members = [ti("dev", tarfile.CHRTYPE), ti("fifo", tarfile.FIFOTYPE),
               ti("suid", data=b"#!/bin/sh\n", mode=0o4755)]
    r = spb(state, "import", w, "--json", input=tar_bytes(members))
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    assert rep["skipped"] == 2
    t = tree(state, w)
    assert set(t) == {"suid"}
    assert os.stat(os.path.join(data_dir(state, w), "suid")).st_mode & 0o7000 == 0


def test_import_kind_conflict_changes_nothing(state, w):
    spb(state, "write", w, "d", input=b"a file")
    before = tree(state, w)
    r = spb(state, "import", w, input=tar_bytes(
        [ti("new.txt", data=b"n"), ti("d", tarfile.DIRTYPE),
         ti("d/x", data=b"x")]))
    assert r.returncode == 125
    assert tree(state, w) == before


def test_import_garbage_refused(state, w):
    r = spb(state, "import", w, input=os.urandom(10000))
    assert r.returncode == 125
    assert tree(state, w) == {}


def test_export_roundtrip(state, w):
    assert sh(state, w, "mkdir -p src/sub && printf 1 > src/a && "
              "printf 2 > src/sub/b && ln -s a src/l && mkfifo src/p"
              ).returncode == 0
    r = spb(state, "export", w, "src")
    assert r.returncode == 0, r.stderr
    with tarfile.open(fileobj=io.BytesIO(r.stdout)) as t:
        names = sorted(t.getnames())
        assert names == ["src", "src/a", "src/l", "src/sub", "src/sub/b"]
        assert t.extractfile("src/sub/b").read() == b"2"
        assert t.getmember("src/l").issym()
    r = spb(state, "export", w, "--gzip")
    assert r.returncode == 0
    assert r.stdout[:2] == b"\x1f\x8b"


def test_export_diff(state, w):
    assert sh(state, w, "mkdir -p a/b && printf 1 > a/b/f && ln -s f a/l && "
              "printf y > top && echo x > /tmp/outside").returncode == 0
    r = spb(state, "export", w, "--diff")
    assert r.returncode == 0, r.stderr
    with tarfile.open(fileobj=io.BytesIO(r.stdout)) as t:
        names = t.getnames()
        assert names == ["a", "a/b", "a/b/f", "a/l", "top",
                         ".sandpit-diff.json"]
        assert t.extractfile("a/b/f").read() == b"1"
        assert t.getmember("a/l").issym()
        d = json.loads(t.extractfile(".sandpit-diff.json").read())
    assert d == {"added": ["a", "a/b", "a/b/f", "a/l", "top"],
                 "modified": [], "deleted": []}
    r = spb(state, "export", w, "a/b", "--diff")
    with tarfile.open(fileobj=io.BytesIO(r.stdout)) as t:
        assert t.getnames() == ["a/b", "a/b/f", ".sandpit-diff.json"]


def test_cp_both_ways(state, w, tmp_path):
    host = tmp_path / "host"
    (host / "d" / "e").mkdir(parents=True)
    (host / "d" / "e" / "f.txt").write_bytes(b"deep")
    (host / "one.bin").write_bytes(bytes(range(256)))
    assert sp(state, "cp", str(host / "one.bin"), f"{w}:one.bin").returncode == 0
    assert sp(state, "cp", str(host / "d"), f"{w}:dcopy").returncode == 0
    t = tree(state, w)
    assert t["one.bin"][1] == bytes(range(256))
    assert t["dcopy/e/f.txt"][1] == b"deep"
    out = tmp_path / "out"
    assert sp(state, "cp", f"{w}:dcopy", str(out)).returncode == 0
    assert (out / "e" / "f.txt").read_bytes() == b"deep"
    assert sp(state, "cp", f"{w}:one.bin", str(out)).returncode == 0
    assert (out / "one.bin").read_bytes() == bytes(range(256))
    assert not [n for n in os.listdir(tmp_path) if ".sp-cp-" in n]
    # Exactly one side must be a workspace path.
    assert sp(state, "cp", str(host), str(out)).returncode == 125
    # A symlink planted inside comes out as a symlink, never followed.
    assert sh(state, w, "ln -s /etc/passwd dcopy/pw").returncode == 0
    out2 = tmp_path / "out2"
    assert sp(state, "cp", f"{w}:dcopy", str(out2)).returncode == 0
    assert os.path.islink(out2 / "pw")


def test_cp_out_modes_clamped_by_umask(state, w, tmp_path):
    """World-writable modes from the sandbox reach the host only as far as
    the caller's umask lets them (docs/security-writes.md)."""
    assert sh(state, w, "mkdir -p m/d && printf x > m/f && "
              "chmod 0777 m/f m/d m").returncode == 0
    e = dict(os.environ, SANDPIT_STATE=state)
    out = tmp_path / "mout"
    r = subprocess.run([SANDPIT, "cp", f"{w}:m", str(out)], env=e,
                       capture_output=True, text=True, timeout=60,
                       preexec_fn=lambda: os.umask(0o027))
    assert r.returncode == 0, r.stderr
    assert os.stat(out / "f").st_mode & 0o7777 == 0o750
    assert os.stat(out / "d").st_mode & 0o7777 == 0o750
    assert os.stat(out).st_mode & 0o7777 == 0o750


# ---- the wire ---------------------------------------------------------------

def raw(state, name):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(os.path.join(state, "workspaces", name, "control.sock"))
    s.settimeout(10)
    return s


def recv_reply(s):
    buf = b""
    while b"\n" not in buf:
        chunk = s.recv(65536)
        if not chunk:
            break
        buf += chunk
    line, _, rest = buf.partition(b"\n")
    return json.loads(line), rest


def test_wire_frames(state, w):
    s = raw(state, w)
    payload = b"\x00\n\xff" * 1000
    s.sendall(json.dumps({"id": 1, "method": "file.write", "params": {
        "path": "wire.bin"}, "frame": len(payload)}).encode() + b"\n" + payload)
    rep, _ = recv_reply(s)
    assert rep["result"]["size"] == len(payload)
    s.sendall(b'{"id":2,"method":"file.read","params":{"path":"wire.bin"}}\n')
    rep, rest = recv_reply(s)
    n = rep["frame"]
    while len(rest) < n:
        rest += s.recv(65536)
    assert rest == payload
    s.sendall(b'{"id":3,"method":"file.read","params":{"path":"nope"}}\n')
    rep, _ = recv_reply(s)
    assert rep["error"]["data"]["errno"] == 2
    s.close()


@pytest.mark.parametrize("frame", [-1, 0, 2**40, "12", 1.5])
def test_wire_bad_frame_drops_client(state, w, frame):
    s = raw(state, w)
    s.sendall(json.dumps({"id": 1, "method": "file.write", "params": {
        "path": "x"}, "frame": frame}).encode() + b"\n")
    rep, _ = recv_reply(s)
    assert "error" in rep
    s.close()
    # The workspace still serves others.
    assert spb(state, "write", w, "ok", input=b"1").returncode == 0
    assert "x" not in tree(state, w)


def test_archive_needs_pipe(state, w, tmp_path):
    s = raw(state, w)
    s.sendall(b'{"id":1,"method":"archive.export","params":{}}\n')
    rep, _ = recv_reply(s)
    assert rep["error"]["code"] == 4
    s.close()


def test_patch_help_and_dry_run_says_so(state, w):
    r = sp(state, "patch", "--help")
    assert r.returncode == 0 and r.stdout.startswith("usage: sandpit patch")
    r = sp(state, "cat", "-h")
    assert r.returncode == 0 and "usage: sandpit cat" in r.stdout
    diff = b"--- /dev/null\n+++ b/new.txt\n@@ -0,0 +1 @@\n+x\n"
    r = spb(state, "patch", "--dry-run", w, input=diff)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(b"would be created new.txt (1 hunks)\n")
    assert b"dry run: nothing was written" in r.stdout
    assert "new.txt" not in tree(state, w)
    r = spb(state, "patch", w, input=diff)
    assert r.stdout == b"created new.txt (1 hunks)\n"
    assert "new.txt" in tree(state, w)


def test_options_before_the_name(state, w):
    """Options may come before NAME (anywhere before --)."""
    r = sp(state, "exec", "--timeout", "30", "-e", "A=1", "-w", "/tmp", w,
           "--", "sh", "-c", "echo $A; pwd")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["1", "/tmp"]
    # a command given without -- keeps its own options
    r = sp(state, "exec", "-e", "A=2", w, "sh", "-c", "echo $A")
    assert r.returncode == 0 and r.stdout == "2\n", r.stderr
    r = sp(state, "service", "start", "--ready", "cmd:true", w, "s1", "--",
           "sleep", "60")
    assert r.returncode == 0, r.stderr
    r = sp(state, "service", "stop", "--grace", "1", w, "s1")
    assert r.returncode == 0, r.stderr
    r = sp(state, "snapshot", "--json", w, "snap1")
    assert r.returncode == 0 and json.loads(r.stdout)["snapshot"] == "snap1"
    r = sp(state, "snapshots", "--json", w)
    assert r.returncode == 0 and json.loads(r.stdout)[0]["name"] == "snap1"
    # still a usage error without a name
    r = sp(state, "exec", "--timeout", "3")
    assert r.returncode == 125 and "usage" in r.stderr
    # create and fork take their names after policy flags too
    r = sp(state, "create", "--memory", "256M", "--idle-timeout", "600",
           "-q", "late")
    assert r.returncode == 0 and r.stdout.strip() == "late", r.stderr
    r = sp(state, "fork", "--pids", "64", w, "snap1", "late2")
    assert r.returncode == 0, r.stderr
    listed = {x["name"] for x in json.loads(sp(state, "ps", "--json").stdout)}
    assert {"late", "late2"} <= listed, listed
