"""A private containerd for the OCI runtime tests and bench/oci: started on
its own socket with its own root and state directories under a temporary
directory, with a small image built here from busybox-static (no network):
a minimal OCI image layout, imported with `ctr image import`."""
import gzip
import hashlib
import io
import json
import os
import shutil
import signal
import subprocess
import tarfile
import time

IMAGE = "sandpit.test/busybox:1"
BUSYBOX = "/bin/busybox"


def _blob(layout, data):
    d = hashlib.sha256(data).hexdigest()
    with open(os.path.join(layout, "blobs", "sha256", d), "wb") as f:
        f.write(data)
    return "sha256:" + d, len(data)


def _rootfs_tar():
    """busybox-static at /bin/busybox with links for its applets, and the
    directories an OCI config mounts on."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        def add_dir(name, mode=0o755):
            ti = tarfile.TarInfo(name)
            ti.type = tarfile.DIRTYPE
            ti.mode = mode
            t.addfile(ti)
        for d in ("bin", "dev", "proc", "sys", "run", "etc", "root",
                  "home", "home/user", "mnt", "var"):
            add_dir(d, 0o700 if d == "root" else 0o755)
        add_dir("tmp", 0o1777)
        with open(BUSYBOX, "rb") as f:
            data = f.read()
        ti = tarfile.TarInfo("bin/busybox")
        ti.mode = 0o755
        ti.size = len(data)
        t.addfile(ti, io.BytesIO(data))
        applets = subprocess.run([BUSYBOX, "--list"], capture_output=True,
                                 text=True, check=True).stdout.split()
        for a in applets:
            if a == "busybox":
                continue
            ti = tarfile.TarInfo("bin/" + a)
            ti.type = tarfile.SYMTYPE
            ti.linkname = "busybox"
            t.addfile(ti)
        for name, text in (("etc/passwd",
                            "root:x:0:0:root:/root:/bin/sh\n"
                            "user:x:1000:1000:user:/home/user:/bin/sh\n"),
                           ("etc/group", "root:x:0:\nuser:x:1000:\n")):
            b = text.encode()
            ti = tarfile.TarInfo(name)
            ti.mode = 0o644
            ti.size = len(b)
            t.addfile(ti, io.BytesIO(b))
    return buf.getvalue()


def build_image(path):
    """Write an OCI image layout tarball to path."""
    layout = path + ".d"
    shutil.rmtree(layout, ignore_errors=True)
    os.makedirs(os.path.join(layout, "blobs", "sha256"))
    raw = _rootfs_tar()
    layer = gzip.compress(raw, mtime=0)
    diff_id = "sha256:" + hashlib.sha256(raw).hexdigest()
    ldig, lsize = _blob(layout, layer)
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(os.uname().machine,
                                                         os.uname().machine)
    config = {"architecture": arch, "os": "linux",
              "config": {"Env": ["PATH=/bin"], "Cmd": ["/bin/sh"],
                         "WorkingDir": "/"},
              "rootfs": {"type": "layers", "diff_ids": [diff_id]}}
    cdig, csize = _blob(layout, json.dumps(config).encode())
    manifest = {"schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType":
                           "application/vnd.oci.image.config.v1+json",
                           "digest": cdig, "size": csize},
                "layers": [{"mediaType":
                            "application/vnd.oci.image.layer.v1.tar+gzip",
                            "digest": ldig, "size": lsize}]}
    mdig, msize = _blob(layout, json.dumps(manifest).encode())
    index = {"schemaVersion": 2,
             "manifests": [{"mediaType":
                            "application/vnd.oci.image.manifest.v1+json",
                            "digest": mdig, "size": msize,
                            "annotations": {
                                "org.opencontainers.image.ref.name": IMAGE,
                                "io.containerd.image.name": IMAGE},
                            "platform": {"architecture": arch,
                                         "os": "linux"}}]}
    with open(os.path.join(layout, "index.json"), "w") as f:
        json.dump(index, f)
    with open(os.path.join(layout, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)
    with tarfile.open(path, "w") as t:
        for name in ("oci-layout", "index.json", "blobs"):
            t.add(os.path.join(layout, name), arcname=name)
    shutil.rmtree(layout)
    return path


class Containerd:
    """containerd on a private socket; ctr() runs ctr against it."""

    def __init__(self, base):
        self.base = base
        self.sock = os.path.join(base, "c.sock")
        self.root = os.path.join(base, "root")
        self.state = os.path.join(base, "state")
        self.proc = None

    def start(self):
        os.makedirs(self.root, exist_ok=True)
        os.makedirs(self.state, exist_ok=True)
        cfg = os.path.join(self.base, "config.toml")
        with open(cfg, "w") as f:
            f.write(f'''version = 2
root = "{self.root}"
state = "{self.state}"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "{self.sock}"
[ttrpc]
  address = "{self.sock}.ttrpc"
[debug]
  address = "{self.sock}.debug"
[metrics]
  address = ""
[plugins."io.containerd.runtime.v1.linux"]
  shim_debug = false
''')
        self.log = open(os.path.join(self.base, "containerd.log"), "w")
        self.proc = subprocess.Popen(["containerd", "--config", cfg],
                                     stdout=self.log, stderr=self.log,
                                     start_new_session=True)
        for _ in range(200):
            if os.path.exists(self.sock):
                r = self.ctr("version", check=False)
                if r.returncode == 0:
                    return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError("containerd did not start: " +
                           open(os.path.join(self.base,
                                             "containerd.log")).read()[-2000:])

    def ctr(self, *args, check=True, timeout=60, **kw):
        r = subprocess.run(["ctr", "--address", self.sock, *args],
                           capture_output=True, text=True, timeout=timeout,
                           **kw)
        if check and r.returncode != 0:
            raise RuntimeError(f"ctr {' '.join(args)}: rc {r.returncode}: "
                               f"{r.stderr}")
        return r

    def import_image(self, tarpath):
        self.ctr("image", "import", "--no-unpack", tarpath)
        self.ctr("image", "import", tarpath)

    def stop(self):
        if not self.proc:
            return
        # tasks and containers first, so no shim outlives us
        r = self.ctr("tasks", "ls", "-q", check=False)
        for t in r.stdout.split():
            self.ctr("tasks", "kill", "-s", "SIGKILL", t, check=False)
            self.ctr("tasks", "rm", "-f", t, check=False)
        r = self.ctr("containers", "ls", "-q", check=False)
        for c in r.stdout.split():
            self.ctr("containers", "rm", c, check=False)
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.log.close()
        subprocess.run(["umount", "-R", "-l", self.root],
                       capture_output=True)
        subprocess.run(["umount", "-R", "-l", self.state],
                       capture_output=True)
