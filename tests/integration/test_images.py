"""Base images and --rootfs (docs/images.md): a small busybox root
filesystem, packed here into an OCI image layout and a docker-save archive
with two layers, a whiteout and an opaque directory; imported, run,
created, exec'd; hostile images refused with nothing left behind."""
import gzip
import hashlib
import io
import json
import os
import shutil
import stat
import tarfile

import pytest

from conftest import create, sp

BUSYBOX = "/bin/busybox"
APPLETS = ["sh", "ls", "cat", "echo", "id", "pwd", "env", "test", "touch",
           "mkdir", "rm", "sleep", "true", "false", "printf", "stat"]

pytestmark = pytest.mark.skipif(
    not os.path.exists(BUSYBOX) or os.path.islink(BUSYBOX),
    reason="needs busybox-static at /bin/busybox (scripts/deps.sh --test)")


def make_rootfs(d):
    """A tiny root filesystem: busybox and its applet links, passwd/group."""
    os.makedirs(d / "bin")
    shutil.copy(BUSYBOX, d / "bin" / "busybox")
    for a in APPLETS:
        os.symlink("busybox", d / "bin" / a)
    (d / "etc").mkdir()
    (d / "etc" / "passwd").write_text(
        "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n")
    (d / "etc" / "group").write_text("root:x:0:\napp:x:1000:\nstaff:x:50:\n")
    (d / "etc" / "marker").write_text("from-the-image\n")
    for sub in ("home", "root", "var", "usr/share", "opt/keep", "data/opq"):
        os.makedirs(d / sub, exist_ok=True)
    return d


def _add(t, name, data=None, kind="file", mode=0o644, target=None):
    ti = tarfile.TarInfo(name)
    ti.mtime = 1700000000
    if kind == "dir":
        ti.type, ti.mode = tarfile.DIRTYPE, 0o755
        t.addfile(ti)
    elif kind == "link":
        ti.type, ti.linkname = tarfile.SYMTYPE, target
        t.addfile(ti)
    else:
        data = data if isinstance(data, bytes) else (data or "").encode()
        ti.size, ti.mode = len(data), mode
        t.addfile(ti, io.BytesIO(data))


def tar_bytes(fill):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        fill(t)
    return buf.getvalue()


def layers(rootfs):
    """Layer 1: the rootfs plus files the next layer hides; layer 2: a
    whiteout, an opaque directory, a new file."""
    def one(t):
        t.add(str(rootfs), arcname=".", recursive=True,
              filter=lambda ti: setattr(ti, "uid", 0) or setattr(ti, "gid", 0)
              or ti)
        _add(t, "opt/gone.txt", "to be whited out")
        _add(t, "opt/keep/a", "kept")
        _add(t, "data/opq/old1", "hidden by opaque")
        _add(t, "usr/share/old.txt", "old")

    def two(t):
        _add(t, "opt/.wh.gone.txt", "")
        _add(t, "data/opq", kind="dir")
        _add(t, "data/opq/.wh..wh..opq", "")
        _add(t, "data/opq/new1", "after opaque")
        _add(t, "usr/share/new.txt", "new")
    return [tar_bytes(one), tar_bytes(two)]


CONFIG = {
    "architecture": "amd64", "os": "linux",
    "config": {"Env": ["PATH=/bin", "IMGVAR=hello"], "WorkingDir": "/opt/keep",
               "User": "app", "Entrypoint": ["/bin/sh", "-c"],
               "Cmd": ["echo from-cmd $IMGVAR"]},
}


def sha(b):
    return hashlib.sha256(b).hexdigest()


def config_for(layer_tars):
    c = json.loads(json.dumps(CONFIG))
    c["rootfs"] = {"type": "layers",
                   "diff_ids": ["sha256:" + sha(x) for x in layer_tars]}
    return json.dumps(c).encode()


def pack_oci(dest, layer_tars, ref="imgref"):
    """An OCI image layout directory: layer 1 gzip-compressed, layer 2
    plain tar."""
    blobs = dest / "blobs" / "sha256"
    os.makedirs(blobs)

    def put(b):
        h = sha(b)
        (blobs / h).write_bytes(b)
        return h
    cfg = config_for(layer_tars)
    ch = put(cfg)
    ls = []
    for i, x in enumerate(layer_tars):
        data = gzip.compress(x, mtime=0) if i == 0 else x
        mt = ("application/vnd.oci.image.layer.v1.tar+gzip" if i == 0 else
              "application/vnd.oci.image.layer.v1.tar")
        ls.append({"mediaType": mt, "digest": "sha256:" + put(data),
                   "size": len(data)})
    man = json.dumps({"schemaVersion": 2,
                      "mediaType": "application/vnd.oci.image.manifest.v1+json",
                      "config": {"mediaType":
                                 "application/vnd.oci.image.config.v1+json",
                                 "digest": "sha256:" + ch, "size": len(cfg)},
                      "layers": ls}).encode()
    mh = put(man)
    (dest / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (dest / "index.json").write_text(json.dumps({
        "schemaVersion": 2,
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                       "digest": "sha256:" + mh, "size": len(man),
                       "annotations": {"org.opencontainers.image.ref.name": ref}}]}))
    return dest, ls


def pack_docker(path, layer_tars, tag="dock:1", compress=False):
    """A docker-save archive: manifest.json, <hex>.json, <id>/layer.tar."""
    cfg = config_for(layer_tars)
    ch = sha(cfg)

    def fill(t):
        _add(t, ch + ".json", cfg)
        names = []
        for x in layer_tars:
            n = sha(x) + "/layer.tar"
            _add(t, sha(x), kind="dir")
            _add(t, n, x)
            names.append(n)
        _add(t, "manifest.json", json.dumps(
            [{"Config": ch + ".json", "RepoTags": [tag], "Layers": names}]))
    data = tar_bytes(fill)
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


@pytest.fixture
def img(tmp_path):
    """Layer tarballs and a world-readable scratch directory."""
    os.chmod(tmp_path, 0o755)
    rootfs = make_rootfs(tmp_path / "rootfs")
    return {"dir": tmp_path, "rootfs": rootfs, "layers": layers(rootfs)}


def images_dir(state):
    return os.path.join(state, "images")


def leftovers(state):
    """What an import left in the store: refs, trees, staging."""
    d = images_dir(state)
    out = {}
    for sub in ("refs", "trees", "tmp"):
        p = os.path.join(d, sub)
        out[sub] = sorted(os.listdir(p)) if os.path.isdir(p) else []
    return out


PROBE_SH = ("test -e /usr/bin/python3 && echo host-python; "
            "test -e /opt/gone.txt && echo whiteout-failed; "
            "test -e /data/opq/old1 && echo opaque-failed; "
            "cat /opt/keep/a /data/opq/new1 /usr/share/new.txt /etc/marker; "
            "echo IMGVAR=$IMGVAR; echo PWD=$(pwd); echo UID=$(id -u) GID=$(id -g)")


def check_probe_output(out):
    assert "host-python" not in out
    assert "whiteout-failed" not in out
    assert "opaque-failed" not in out
    for want in ("kept", "after opaque", "new", "from-the-image",
                 "IMGVAR=hello", "PWD=/opt/keep", "UID=1000 GID=1000"):
        assert want in out, out


def test_import_oci_layout_and_run(state, img):
    layout, _ = pack_oci(img["dir"] / "oci", img["layers"])
    r = sp(state, "image", "import", str(layout), "--name", "busy")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "busy"
    r = sp(state, "image", "ls", "--json")
    assert r.returncode == 0, r.stderr
    [entry] = json.loads(r.stdout)
    assert entry["name"] == "busy" and entry["layers"] == 2
    assert entry["digest"].startswith("sha256:")
    r = sp(state, "run", "-q", "--image", "busy", "--no-workspace", "--",
           "/bin/sh", "-c", PROBE_SH)
    assert r.returncode == 0, r.stderr
    check_probe_output(r.stdout)
    # No command: the image's Entrypoint + Cmd.
    r = sp(state, "run", "-q", "--image", "busy", "--no-workspace")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "from-cmd hello"
    # The tree is read-only inside.
    r = sp(state, "run", "-q", "--image", "busy", "--no-workspace", "--",
           "/bin/sh", "-c", "touch /bin/new 2>/dev/null && echo wrote")
    assert "wrote" not in r.stdout
    # The policy shows the image and its tree instead of system paths.
    r = sp(state, "policy", "show", "--image", "busy", "--no-workspace")
    assert r.returncode == 0, r.stderr
    pol = json.loads(r.stdout)
    assert pol["image"] == "busy"
    assert pol["rootfs"].startswith(images_dir(state) + "/trees/")
    assert pol["system_paths_ro"] == []
    assert leftovers(state)["tmp"] == []


def test_import_oci_archive_named_by_its_ref(state, img):
    """A tar of an OCI layout (podman save --format oci-archive), named by
    its org.opencontainers.image.ref.name annotation."""
    layout, _ = pack_oci(img["dir"] / "oci", img["layers"], ref="tools:2")
    arch = img["dir"] / "oci.tar"
    with tarfile.open(arch, "w") as t:
        t.add(str(layout), arcname=".")
    r = sp(state, "image", "import", str(arch))
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "tools:2"
    r = sp(state, "run", "-q", "--image", "tools:2", "--no-workspace", "--",
           "/bin/cat", "/etc/marker")
    assert r.returncode == 0 and r.stdout == "from-the-image\n", r.stderr
    # --uid / --env / --cwd given by the caller win over the config.
    r = sp(state, "run", "-q", "--image", "tools:2", "--no-workspace",
           "--uid", "7", "--gid", "8", "--env", "IMGVAR=mine", "--cwd", "/",
           "--", "/bin/sh", "-c", "echo $(id -u):$(id -g) $IMGVAR $(pwd)")
    assert r.stdout.strip() == "7:8 mine /", r.stderr


@pytest.mark.parametrize("compress", [False, True])
def test_import_docker_save_archive(state, img, compress):
    arch = pack_docker(img["dir"] / "save.tar", img["layers"], compress=compress)
    r = sp(state, "image", "import", str(arch))
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "dock:1"  # its RepoTags name
    r = sp(state, "run", "-q", "--image", "dock:1", "--no-workspace", "--",
           "/bin/sh", "-c", PROBE_SH)
    assert r.returncode == 0, r.stderr
    check_probe_output(r.stdout)
    assert leftovers(state)["tmp"] == []


def test_create_exec_diff_and_rm(state, img):
    layout, _ = pack_oci(img["dir"] / "oci", img["layers"])
    assert sp(state, "image", "import", str(layout), "--name", "busy").returncode == 0
    create(state, "wimg", "--image", "busy")
    r = sp(state, "exec", "wimg", "--", "/bin/sh", "-c", PROBE_SH)
    assert r.returncode == 0, r.stderr
    check_probe_output(r.stdout)
    # Writes land in the workspace's layers, never in the shared tree.
    r = sp(state, "exec", "wimg", "--", "/bin/sh", "-c",
           "echo hi > /opt/keep/mine && rm /usr/share/old.txt && cat /opt/keep/mine")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "hi"
    [tree] = leftovers(state)["trees"]
    treedir = os.path.join(images_dir(state), "trees", tree)
    assert not os.path.exists(os.path.join(treedir, "opt/keep/mine"))
    assert os.path.exists(os.path.join(treedir, "usr/share/old.txt"))
    r = sp(state, "diff", "wimg", "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert "/opt/keep/mine" in d["added"]
    assert "/usr/share/old.txt" in d["deleted"]
    # A second workspace on the same image does not see the first's writes.
    create(state, "wimg2", "--image", "busy")
    r = sp(state, "exec", "wimg2", "--", "/bin/sh", "-c",
           "test -e /opt/keep/mine && echo leaked; cat /usr/share/old.txt")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "old"
    # Survives a restart with the same tree.
    assert sp(state, "stop", "wimg").returncode == 0
    assert sp(state, "start", "wimg").returncode == 0
    r = sp(state, "exec", "wimg", "--", "/bin/cat", "/opt/keep/mine")
    assert r.stdout.strip() == "hi", r.stderr
    # image rm is refused while a workspace uses the image.
    r = sp(state, "image", "rm", "busy")
    assert r.returncode == 125
    assert "used by workspace" in r.stderr and "wimg" in r.stderr
    assert os.path.isdir(treedir)
    assert sp(state, "rm", "-f", "wimg").returncode == 0
    assert sp(state, "rm", "-f", "wimg2").returncode == 0
    r = sp(state, "image", "rm", "busy")
    assert r.returncode == 0, r.stderr
    assert leftovers(state) == {"refs": [], "trees": [], "tmp": []}


def test_one_tree_shared_between_names(state, img):
    layout, _ = pack_oci(img["dir"] / "oci", img["layers"])
    for n in ("a", "b"):
        assert sp(state, "image", "import", str(layout), "--name", n).returncode == 0
    lo = leftovers(state)
    assert lo["refs"] == ["a.json", "b.json"] and len(lo["trees"]) == 1
    assert sp(state, "image", "rm", "a").returncode == 0
    assert len(leftovers(state)["trees"]) == 1  # b still uses it
    assert sp(state, "image", "rm", "b").returncode == 0
    assert leftovers(state)["trees"] == []


def _refused(state, src, *extra, msg):
    before = leftovers(state)
    r = sp(state, "image", "import", str(src), "--name", "bad", *extra)
    assert r.returncode == 125, r.stdout
    assert msg in r.stderr, r.stderr
    assert r.stderr.startswith("sandpit: ") and r.stderr.count("\n") == 1
    assert leftovers(state) == before
    return r


def test_digest_mismatch_refused(state, img):
    layout, ls = pack_oci(img["dir"] / "oci", img["layers"])
    blob = layout / "blobs" / "sha256" / ls[1]["digest"][7:]
    data = bytearray(blob.read_bytes())
    data[600] ^= 1
    blob.write_bytes(bytes(data))
    _refused(state, layout, msg="digest mismatch")


def test_docker_layer_mismatch_refused(state, img):
    tampered = [img["layers"][0], img["layers"][1]]
    arch = pack_docker(img["dir"] / "save.tar", tampered)
    # Rewrite the archive with a layer whose bytes differ from its diff_id.
    with tarfile.open(arch) as t:
        members = [(m, t.extractfile(m).read() if m.isfile() else None)
                   for m in t.getmembers()]
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as t:
        for m, data in members:
            if m.name.endswith("layer.tar") and data:
                data = data[:-1024] + b"\1" * 1024
            t.addfile(m, io.BytesIO(data) if data is not None else None)
    arch.write_bytes(out.getvalue())
    _refused(state, arch, msg="digest mismatch")


def test_missing_blob_refused(state, img):
    layout, ls = pack_oci(img["dir"] / "oci", img["layers"])
    os.unlink(layout / "blobs" / "sha256" / ls[0]["digest"][7:])
    _refused(state, layout, msg="missing blob")


def test_traversal_in_layer_refused(state, img, tmp_path):
    victim = tmp_path / "victim"

    def evil(t):
        _add(t, "ok.txt", "fine")
        _add(t, "../victim", "escaped")
    bad = [img["layers"][0], tar_bytes(evil)]
    layout, _ = pack_oci(img["dir"] / "oci", bad)
    _refused(state, layout, msg="..")
    assert not victim.exists()
    # A symlink planted by one layer is not followed by the next.
    def plant(t):
        _add(t, "esc", kind="link", target=str(tmp_path))
    def follow(t):
        _add(t, "esc/victim", "escaped")
    bad = [tar_bytes(plant), tar_bytes(follow)]
    layout2, _ = pack_oci(img["dir"] / "oci2", bad)
    sp(state, "image", "import", str(layout2), "--name", "bad2")
    assert not victim.exists()
    assert leftovers(state)["tmp"] == []


def test_bad_inputs_refused(state, img, tmp_path):
    layout, _ = pack_oci(img["dir"] / "oci", img["layers"])
    for name in ("Bad", "../x", "a/b", "", "x" * 129, "-x"):
        r = sp(state, "image", "import", str(layout), "--name", name)
        assert r.returncode == 125, name
    junk = tmp_path / "junk"
    junk.mkdir()
    r = sp(state, "image", "import", str(junk), "--name", "j")
    assert r.returncode == 125 and "neither" in r.stderr
    r = sp(state, "run", "-q", "--image", "nosuch", "--no-workspace", "--",
           "/bin/true")
    assert r.returncode == 125 and "no image named" in r.stderr
    r = sp(state, "image", "rm", "nosuch")
    assert r.returncode == 125
    # A hostile index: not JSON, a bad digest.
    (layout / "index.json").write_text("{")
    r = sp(state, "image", "import", str(layout), "--name", "j")
    assert r.returncode == 125 and "invalid JSON" in r.stderr
    (layout / "index.json").write_text(json.dumps(
        {"manifests": [{"digest": "sha256:../../etc/passwd"}]}))
    r = sp(state, "image", "import", str(layout), "--name", "j")
    assert r.returncode == 125 and "digest" in r.stderr
    assert leftovers(state) == {"refs": [], "trees": [], "tmp": []}


def test_run_rootfs_dir(state, img, ws):
    rootfs = str(img["rootfs"])
    r = sp(state, "run", "-q", "--rootfs", rootfs, "--workspace", str(ws), "--",
           "/bin/sh", "-c",
           "test -e /usr/bin/python3 && echo host-python; cat /etc/marker; "
           "echo hi > out.txt; pwd")
    assert r.returncode == 0, r.stderr
    assert "host-python" not in r.stdout
    assert "from-the-image" in r.stdout
    assert str(ws) in r.stdout
    assert (ws / "out.txt").read_text() == "hi\n"
    # The host's root is not a rootfs; neither is a missing path or a file.
    for bad, msg in (("/", "host's root"), (str(img["dir"] / "nope"), "rootfs"),
                     (str(img["rootfs"] / "etc" / "marker"), "not a directory")):
        r = sp(state, "run", "-q", "--rootfs", bad, "--no-workspace", "--",
               "/bin/true")
        assert r.returncode == 125 and msg in r.stderr, (bad, r.stderr)
    # A workspace on a rootfs: writes go to its layers, not the rootfs.
    create(state, "wroot", "--rootfs", rootfs)
    r = sp(state, "exec", "wroot", "--", "/bin/sh", "-c",
           "echo x > /etc/marker2 && cat /etc/marker")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "from-the-image"
    assert not (img["rootfs"] / "etc" / "marker2").exists()


def _mcp(state, *args):
    from test_mcp import Mcp
    m = Mcp(state, *args)
    m.init()
    return m


def test_front_end_image_trust(state, img, tmp_path):
    """An MCP client may use only the images the operator's policy allows
    (by name or digest), or any imported one with allow_untrusted_images."""
    layout, _ = pack_oci(img["dir"] / "oci", img["layers"])
    for n in ("good", "other"):
        assert sp(state, "image", "import", str(layout), "--name", n).returncode == 0
    digest = json.loads(sp(state, "image", "ls", "--json").stdout)[0]["digest"]
    pol = tmp_path / "policy.json"
    pol.write_text(json.dumps({"images": {"allowed": ["good"]}}))
    os.chmod(pol, 0o644)
    m = _mcp(state, "--policy", str(pol))
    try:
        r = m.tool("workspace_create", name="a1", image="other")
        assert r["isError"] is True and "not allowed" in r["content"][0]["text"]
        r = m.tool("workspace_create", name="a1", image="nosuch")
        assert r["isError"] is True and "no image named" in r["content"][0]["text"]
        r = m.tool("workspace_create", name="a1", image="../../x")
        assert r["isError"] is True
        r = m.tool("workspace_create", name="a1", image="good")
        assert r["isError"] is False, r
        r = m.tool("exec", workspace="a1",
                   command=["/bin/sh", "-c", "cat /etc/marker; id -u"])
        assert "from-the-image" in json.dumps(r), r
    finally:
        m.close()
    # Allowed by digest; and without a list, nothing is allowed.
    pol.write_text(json.dumps({"images": {"allowed": [digest]}}))
    m = _mcp(state, "--policy", str(pol))
    try:
        assert m.tool("workspace_create", name="a2", image="other")["isError"] is False
    finally:
        m.close()
    m = _mcp(state)
    try:
        r = m.tool("workspace_create", name="a3", image="good")
        assert r["isError"] is True and "not allowed" in r["content"][0]["text"]
    finally:
        m.close()
    pol.write_text(json.dumps({"allow_untrusted_images": True}))
    m = _mcp(state, "--policy", str(pol))
    try:
        assert m.tool("workspace_create", name="a4", image="other")["isError"] is False
    finally:
        m.close()
    # A bad images key is refused when the policy is read.
    pol.write_text(json.dumps({"images": {"allowed": ["Bad/Name"]}}))
    r = sp(state, "policy", "show", "--policy", str(pol))
    assert r.returncode == 125 and "images" in r.stderr


def test_post_create_needs_allow(state, img, tmp_path):
    layout, _ = pack_oci(img["dir"] / "oci", img["layers"])
    assert sp(state, "image", "import", str(layout), "--name", "busy").returncode == 0
    r = sp(state, "create", "p1", "-q", "--image", "busy", "--post-create",
           "echo ran > /opt/keep/setup")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "p1"
    assert "not run" in r.stderr and "--allow-post-create" in r.stderr
    r = sp(state, "exec", "p1", "--", "/bin/sh", "-c", "test -e /opt/keep/setup || echo absent")
    assert r.stdout.strip() == "absent"
    r = sp(state, "create", "p2", "-q", "--image", "busy", "--post-create",
           "echo ran > /opt/keep/setup; echo setup-output", "--allow-post-create")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "p2"  # its output goes to stderr
    assert "setup-output" in r.stderr
    r = sp(state, "exec", "p2", "--", "/bin/cat", "/opt/keep/setup")
    assert r.stdout.strip() == "ran"
    # From a policy file: the same rule.
    pol = tmp_path / "p.json"
    pol.write_text(json.dumps({"post_create": "touch /workspace/made"}))
    os.chmod(pol, 0o644)
    r = sp(state, "create", "p3", "-q", "--policy", str(pol))
    assert r.returncode == 0 and "not run" in r.stderr, r.stderr
    r = sp(state, "create", "p4", "-q", "--policy", str(pol), "--allow-post-create")
    assert r.returncode == 0, r.stderr
    r = sp(state, "exec", "p4", "--", "/bin/sh", "-c", "ls /workspace")
    assert "made" in r.stdout
    # A failing setup command: reported, workspace kept.
    r = sp(state, "create", "p5", "-q", "--post-create", "exit 3", "--allow-post-create")
    assert r.returncode == 125 and "status 3" in r.stderr
    assert "p5" in sp(state, "ps").stdout


def test_hostile_layer_contents_neutralised(state, img):
    """A layer's setuid bits are dropped, device nodes not made, and a
    top-level name that overlayfs would read as syntax ("x:DIR" would add
    DIR as a lower layer) is not taken into the sandbox."""
    def hostile(t):
        _add(t, "bin/suid", "#!/bin/sh\n", mode=0o4755)
        ti = tarfile.TarInfo("dev-null-copy")
        ti.type, ti.devmajor, ti.devminor = tarfile.CHRTYPE, 1, 3
        t.addfile(ti)
        # "ev:etc" as a lower dir is tree/ev plus "etc" relative to the
        # supervisor's cwd "/": the host's /etc (checked: it showed
        # /etc/shadow before names like this were refused).
        _add(t, "ev", kind="dir")
        _add(t, "ev:etc", kind="dir")
        _add(t, "ev:etc/f", "x")
        _add(t, "a,b", kind="dir")
    layout, _ = pack_oci(img["dir"] / "oci", [img["layers"][0], tar_bytes(hostile)])
    r = sp(state, "image", "import", str(layout), "--name", "h")
    assert r.returncode == 0, r.stderr
    [tree] = leftovers(state)["trees"]
    treedir = os.path.join(images_dir(state), "trees", tree)
    st = os.lstat(os.path.join(treedir, "bin", "suid"))
    assert st.st_mode & (stat.S_ISUID | stat.S_ISGID) == 0
    assert not os.path.lexists(os.path.join(treedir, "dev-null-copy"))
    create(state, "hw", "--image", "h")
    r = sp(state, "exec", "hw", "--", "/bin/sh", "-c",
           "ls -a /; test -e /ev:etc/shadow && echo host-etc; true")
    assert r.returncode == 0, r.stderr
    assert "ev:etc" not in r.stdout and "a,b" not in r.stdout
    assert "host-etc" not in r.stdout
    r = sp(state, "run", "-q", "--image", "h", "--no-workspace", "--",
           "/bin/ls", "/")
    assert r.returncode == 0 and "ev:etc" not in r.stdout, r.stderr


# ---- hard links into earlier layers (docs/images.md) -----------------------

def _hard(t, name, target):
    """A hard link entry: name -> target (a path in the image)."""
    ti = tarfile.TarInfo(name)
    ti.mtime = 1700000000
    ti.type, ti.linkname, ti.mode = tarfile.LNKTYPE, target, 0o755
    t.addfile(ti)


def _tree(state):
    [tree] = leftovers(state)["trees"]
    return os.path.join(images_dir(state), "trees", tree)


def test_hardlink_into_earlier_layer(state, img):
    """Layer 2 hard-links /usr/bin/a of layer 1 as /usr/bin/b (and chains
    a link to that link, through "./"): the import succeeds and both names
    are one inode, in the tree and in a workspace, as with docker's
    overlay2. A write in the workspace copies up and never reaches the
    shared tree."""
    def one(t):
        t.add(str(img["rootfs"]), arcname=".", recursive=True)
        _add(t, "usr/bin", kind="dir")
        _add(t, "usr/bin/a", "#!/bin/sh\necho tool-a\n", mode=0o755)
        _add(t, "usr/lib/x", "replaced later")

    def two(t):
        _hard(t, "usr/bin/b", "usr/bin/a")
        _hard(t, "usr/sbin/c", "./usr//bin/b")  # a new dir; a link to a link
        _add(t, "usr/lib/x", "layer two")       # replaced, then linked: new
        _hard(t, "usr/lib/y", "usr/lib/x")
    tars = [tar_bytes(one), tar_bytes(two)]
    for kind in ("oci", "docker"):
        if kind == "oci":
            src, _ = pack_oci(img["dir"] / "oci", tars)
        else:
            src = pack_docker(img["dir"] / "save.tar", tars)
        r = sp(state, "image", "import", str(src), "--name", "hl-" + kind)
        assert r.returncode == 0, r.stderr
    tree = _tree(state)  # one config digest: one tree for both names
    a, b, c = (os.lstat(os.path.join(tree, p))
               for p in ("usr/bin/a", "usr/bin/b", "usr/sbin/c"))
    assert stat.S_ISREG(a.st_mode) and a.st_ino == b.st_ino == c.st_ino
    assert a.st_nlink == 3
    x, y = (os.lstat(os.path.join(tree, p)) for p in ("usr/lib/x", "usr/lib/y"))
    assert x.st_ino == y.st_ino
    with open(os.path.join(tree, "usr/lib/y")) as f:
        assert f.read() == "layer two"
    assert leftovers(state)["tmp"] == []

    create(state, "whl", "--image", "hl-oci")
    r = sp(state, "exec", "whl", "--", "/bin/sh", "-c",
           "stat -c %i /usr/bin/a /usr/bin/b /usr/sbin/c; "
           "cat /usr/bin/b /usr/lib/y; echo; /bin/sh /usr/bin/b")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.split("\n")
    assert lines[0] == lines[1] == lines[2] and lines[0].isdigit(), r.stdout
    assert "echo tool-a" in r.stdout and "layer two" in r.stdout
    assert r.stdout.rstrip().endswith("tool-a")
    # A write through one name copies it up in the workspace only.
    r = sp(state, "exec", "whl", "--", "/bin/sh", "-c",
           "echo changed > /usr/bin/b && cat /usr/bin/b; "
           "stat -c %i /usr/bin/a /usr/bin/b; cat /usr/bin/a")
    assert r.returncode == 0, r.stderr
    # The written name is copied up alone (overlayfs breaks the link, as
    # docker's overlay2 does): the other name keeps the image's content.
    out = r.stdout.split("\n")
    assert out[0] == "changed" and out[1] != out[2], r.stdout
    assert "echo tool-a" in r.stdout
    with open(os.path.join(tree, "usr/bin/a")) as f:
        assert f.read() == "#!/bin/sh\necho tool-a\n"
    assert os.lstat(os.path.join(tree, "usr/bin/b")).st_ino == a.st_ino
    create(state, "whl2", "--image", "hl-docker")
    r = sp(state, "exec", "whl2", "--", "/bin/cat", "/usr/bin/b")
    assert r.returncode == 0 and "echo tool-a" in r.stdout, r.stderr
    for w in ("whl", "whl2"):
        assert sp(state, "rm", "-f", w).returncode == 0


def _base_layer(t):
    _add(t, "usr/bin/a", "tool a")
    _add(t, "usr/lib", kind="dir")
    _add(t, "etc/passwd", "image passwd")
    _add(t, "d", kind="link", target="/etc")          # absolute, to the host's
    _add(t, "rel", kind="link", target="etc")         # relative, in the image


HOSTILE_LINKS = [
    # (layers after the base, message)
    ([lambda t: _add(t, "usr/bin/.wh.a", ""),          # removed in layer 2
      lambda t: _hard(t, "usr/bin/b", "usr/bin/a")],
     "in neither this layer nor the layers below"),
    ([lambda t: (_add(t, "usr/bin/.wh.a", ""),         # removed earlier in
                 _hard(t, "usr/bin/b", "usr/bin/a"))],  # the same layer
     "in neither this layer nor the layers below"),
    ([lambda t: (_add(t, "usr/bin", kind="dir"),       # opaque directory
                 _add(t, "usr/bin/.wh..wh..opq", ""),
                 _hard(t, "usr/bin/b", "usr/bin/a"))],
     "in neither this layer nor the layers below"),
    ([lambda t: _hard(t, "x", "d/passwd")], 'goes through "d"'),
    ([lambda t: _hard(t, "x", "rel/passwd")], 'goes through "rel"'),
    ([lambda t: (_add(t, "e", kind="link", target="/etc"),
                 _hard(t, "x", "e/passwd"))], 'goes through "e"'),
    ([lambda t: _hard(t, "x", "../../etc/passwd")], '".." component'),
    ([lambda t: _hard(t, "x", "usr/../../etc/passwd")], '".." component'),
    ([lambda t: _hard(t, "x", "/etc/passwd")], "absolute"),
    ([lambda t: _hard(t, "x", "usr/lib")], "is a directory"),
    ([lambda t: _hard(t, "x", "d")], "is a symlink"),
    ([lambda t: _hard(t, "x", "nosuch/file")],
     "in neither this layer nor the layers below"),
]


@pytest.mark.parametrize("case", range(len(HOSTILE_LINKS)))
def test_hardlink_hostile_targets_refused(state, img, case):
    """A link to a whited-out path, through a symlink (to the host's /etc
    or inside the image), out with "..", to a directory, a symlink or a
    missing name: refused naming the entry and its layer, nothing of the
    import left in the store, nothing linked on the host."""
    later, msg = HOSTILE_LINKS[case]
    tars = [tar_bytes(_base_layer)] + [tar_bytes(f) for f in later]
    passwd = os.stat("/etc/passwd")
    layout, _ = pack_oci(img["dir"] / "oci", tars)
    r = _refused(state, layout, msg=msg)
    assert "layer %d" % len(tars) in r.stderr, r.stderr
    name = "usr/bin/b" if "usr/bin/b" in r.stderr else "x"
    assert 'archive entry "%s" refused' % name in r.stderr, r.stderr
    assert leftovers(state) == {"refs": [], "trees": [], "tmp": []}
    now = os.stat("/etc/passwd")
    assert (now.st_ino, now.st_nlink) == (passwd.st_ino, passwd.st_nlink)
    # The docker-save form is refused the same way.
    arch = pack_docker(img["dir"] / "save.tar", tars)
    _refused(state, arch, msg=msg)


def test_fork_stands_on_its_snapshots_base(state, img):
    # A snapshot's layers are changes to its base: a fork asked to stand on
    # another (the host's files, or another image) is refused, naming both;
    # without flags, or with the same image, it forks.
    layout, _ = pack_oci(img["dir"] / "oci", img["layers"])
    assert sp(state, "image", "import", str(layout), "--name", "busy").returncode == 0
    assert sp(state, "image", "import", str(layout), "--name", "busy2").returncode == 0
    create(state, "wi", "--image", "busy")
    assert sp(state, "exec", "wi", "--", "/bin/sh", "-c",
              "echo mine > /opt/keep/f").returncode == 0
    assert sp(state, "snapshot", "wi", "s1").returncode == 0
    for flags, asked in ((["--memory", "64M"], "the host's system files"),
                         (["--image", "busy2"], "image busy2")):
        r = sp(state, "fork", "wi", "s1", "bad", *flags)
        assert r.returncode == 125, r.stderr
        assert "is on image busy" in r.stderr and asked in r.stderr, r.stderr
        assert sp(state, "exec", "bad", "--", "true").returncode != 0
    for new, flags in (("f1", []), ("f2", ["--image", "busy"])):
        r = sp(state, "fork", "wi", "s1", new, *flags)
        assert r.returncode == 0, r.stderr
        r = sp(state, "exec", new, "--", "/bin/sh", "-c", "cat /opt/keep/f")
        assert r.stdout == "mine\n", r.stderr
