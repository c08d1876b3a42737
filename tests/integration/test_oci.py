"""sandpit-runc, the OCI runtime, under a real containerd (ocienv.py: a
private containerd on its own socket and directories, an image built here
from busybox-static), driven with `ctr run --runc-binary`. Every scenario
runs with sandpit-runc and with runc, so each difference is visible; the
ones that only concern sandpit's own layers say so in their names.
containerd needs root: as the ordinary user these tests are skipped."""
import json
import os
import shutil
import subprocess
import sys
import threading
import time

import pytest

sys.path.insert(0, os.path.dirname(__file__))
import ocienv  # noqa: E402
from conftest import SANDPIT  # noqa: E402

IMAGE = ocienv.IMAGE
pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="containerd needs root"),
    pytest.mark.skipif(not shutil.which("containerd") or not shutil.which("ctr")
                       or not shutil.which("runc"),
                       reason="containerd, ctr and runc (scripts/deps.sh)"),
    pytest.mark.skipif(not os.path.exists(ocienv.BUSYBOX),
                       reason="busybox-static"),
]


@pytest.fixture(scope="module")
def cd():
    # not under pytest's 0700 basetemp: a container whose user namespace
    # maps root elsewhere must be able to reach its rootfs
    import pathlib
    import tempfile
    base = pathlib.Path(tempfile.mkdtemp(prefix="sandpit-oci-"))
    os.chmod(base, 0o755)
    c = ocienv.Containerd(str(base)).start()
    try:
        c.import_image(ocienv.build_image(str(base / "image.tar")))
        # sandpit-runc is the sandpit binary reached by that name
        link = base / "sandpit-runc"
        os.symlink(os.path.abspath(SANDPIT), link)
        c.runtimes = {"sandpit": str(link), "runc": shutil.which("runc")}
        yield c
    finally:
        c.stop()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(params=["sandpit", "runc"])
def rt(request, cd):
    return request.param


_n = [0]


def cid(prefix="t"):
    _n[0] += 1
    return f"{prefix}{os.getpid()}-{_n[0]}"


def run(cd, rt, *args, flags=(), name=None, timeout=60):
    """ctr run --rm with the runtime; returns CompletedProcess."""
    return cd.ctr("run", "--rm", "--runc-binary", cd.runtimes[rt], *flags,
                  IMAGE, name or cid(), *args, check=False, timeout=timeout)


def start(cd, rt, *args, flags=(), name=None):
    name = name or cid()
    cd.ctr("run", "-d", "--runc-binary", cd.runtimes[rt], *flags, IMAGE,
           name, *args)
    return name


def task_status(cd, name):
    for line in cd.ctr("task", "ls").stdout.splitlines()[1:]:
        f = line.split()
        if f and f[0] == name:
            return f[2], int(f[1])
    return None, None


def wait_status(cd, name, want, timeout=20):
    end = time.time() + timeout
    while time.time() < end:
        st, _ = task_status(cd, name)
        if st == want:
            return True
        time.sleep(0.05)
    return False


def remove(cd, name):
    cd.ctr("task", "kill", "-s", "SIGKILL", name, check=False)
    wait_status(cd, name, "STOPPED", 10)
    cd.ctr("task", "rm", "-f", name, check=False)
    cd.ctr("containers", "rm", name, check=False)


def runtime_state_dir(name):
    # the shim passes --root /run/containerd/runc/<namespace>
    return f"/run/containerd/runc/default/{name}"


# ---- the scenarios of the issue, for both runtimes -----------------------------

def test_exit_code_and_output(cd, rt):
    r = run(cd, rt, "sh", "-c", "echo out; echo err >&2; exit 7")
    assert r.returncode == 7, r.stderr
    assert r.stdout == "out\n"
    assert r.stderr == "err\n"


def test_signal_exit_status(cd, rt):
    r = run(cd, rt, "sh", "-c", "kill -TERM $$")
    # A difference: under runc the command is PID 1, and PID 1 has no
    # default action for SIGTERM (it is ignored); under sandpit PID 1 is
    # sandpit-init, which forwards signals to the command like a shell
    # would, so the command dies of SIGTERM as it would on a host.
    assert r.returncode == (143 if rt == "sandpit" else 0), r.stderr


def test_command_not_found(cd, rt):
    r = run(cd, rt, "/no/such/program")
    assert r.returncode != 0
    assert "no/such/program" in r.stderr


def test_tty(cd, rt):
    name = cid()
    cmd = ("ctr --address {} run --rm -t --runc-binary {} {} {} sh -c "
           "'test -t 0 && test -t 1 && echo TTY-$(tty | cut -c1-8)'").format(
               cd.sock, cd.runtimes[rt], IMAGE, name)
    r = subprocess.run(["script", "-qec", cmd, "/dev/null"],
                       capture_output=True, text=True, timeout=60,
                       stdin=subprocess.DEVNULL)
    assert "TTY-/dev/pts" in r.stdout, (r.stdout, r.stderr)
    assert r.returncode == 0


def test_exec(cd, rt):
    name = start(cd, rt, "sleep", "300")
    try:
        r = cd.ctr("task", "exec", "--exec-id", "e1", name, "sh", "-c",
                   "echo in; cat /proc/1/cmdline | tr '\\0' ' '; exit 5",
                   check=False)
        assert r.returncode == 5, r.stderr
        assert r.stdout.startswith("in\n")
        # exec runs in the container's pid namespace
        r = cd.ctr("task", "exec", "--exec-id", "e2", "--cwd", "/tmp",
                   "--user", "1000", name, "sh", "-c", "pwd; id -u",
                   check=False)
        assert r.returncode == 0, r.stderr
        assert r.stdout.split() == ["/tmp", "1000"]
    finally:
        remove(cd, name)


def test_exec_tty(cd, rt):
    name = start(cd, rt, "sleep", "300")
    try:
        cmd = ("ctr --address {} task exec -t --exec-id e3 {} sh -c "
               "'test -t 0 && echo EXEC-TTY'").format(cd.sock, name)
        r = subprocess.run(["script", "-qec", cmd, "/dev/null"],
                           capture_output=True, text=True, timeout=60,
                           stdin=subprocess.DEVNULL)
        assert "EXEC-TTY" in r.stdout, (r.stdout, r.stderr)
    finally:
        remove(cd, name)


def test_kill_and_delete(cd, rt):
    name = start(cd, rt, "sleep", "300")
    assert wait_status(cd, name, "RUNNING")
    assert os.path.isdir(runtime_state_dir(name))
    cd.ctr("task", "kill", "-s", "SIGKILL", name)
    assert wait_status(cd, name, "STOPPED")
    cd.ctr("task", "rm", name)
    cd.ctr("containers", "rm", name)
    # the runtime's state is gone with the task
    assert not os.path.exists(runtime_state_dir(name))
    r = subprocess.run(["pgrep", "-f", "sleep 300"], capture_output=True,
                       text=True)
    for pid in r.stdout.split():
        cg = open(f"/proc/{pid}/cgroup").read()
        assert name not in cg


def test_pause_resume(cd, rt):
    name = start(cd, rt, "sleep", "300")
    try:
        cd.ctr("task", "pause", name)
        assert task_status(cd, name)[0] == "PAUSED"
        cd.ctr("task", "resume", name)
        assert task_status(cd, name)[0] == "RUNNING"
        r = cd.ctr("task", "ps", name)
        pids = [line.split()[0] for line in r.stdout.splitlines()[1:]]
        assert str(task_status(cd, name)[1]) in pids
    finally:
        remove(cd, name)


def test_memory_limit_oom(cd, rt):
    ev = subprocess.Popen(["ctr", "--address", cd.sock, "events"],
                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                          text=True)
    name = cid("oom")
    try:
        r = run(cd, rt, "dd", "if=/dev/zero", "of=/dev/null", "bs=128M",
                "count=1", flags=("--memory-limit", str(32 << 20)),
                name=name)
        assert r.returncode == 137, (r.returncode, r.stderr)
        time.sleep(0.5)
    finally:
        ev.terminate()
        out = ev.communicate(timeout=10)[0]
    # containerd heard of the OOM kill, as it does from runc
    assert any("/tasks/oom" in line and name in line
               for line in out.splitlines()), out


def test_read_only_rootfs(cd, rt):
    r = run(cd, rt, "sh", "-c", "touch /tmp/x /x 2>&1; echo rc=$?",
            flags=("--read-only",))
    assert "Read-only file system" in r.stdout
    assert "rc=1" in r.stdout
    r = run(cd, rt, "sh", "-c", "touch /tmp/x && echo ok")
    assert r.stdout == "ok\n", r.stderr


def test_env_cwd(cd, rt):
    r = run(cd, rt, "sh", "-c", 'echo "$FOO"; pwd',
            flags=("--env", "FOO=bar baz", "--cwd", "/home"))
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["bar baz", "/home"]


def test_bind_mount(cd, rt, tmp_path):
    src = tmp_path / "shared"
    src.mkdir()
    (src / "file").write_text("from the host\n")
    r = run(cd, rt, "sh", "-c", "cat /host/file; echo x > /host/new; echo rc=$?",
            flags=("--mount",
                   f"type=bind,src={src},dst=/host,options=rbind:ro"))
    assert r.stdout.startswith("from the host\n"), r.stderr
    assert "rc=1" in r.stdout
    assert not (src / "new").exists()


def test_pod_shared_netns(cd, rt):
    a = start(cd, rt, "sh", "-c", "echo pong | nc -l -p 8089")
    try:
        assert wait_status(cd, a, "RUNNING")
        pid = task_status(cd, a)[1]
        time.sleep(0.3)  # nc listening
        netns = f"/proc/{pid}/ns/net"
        want = os.readlink(netns)
        r = run(cd, rt, "sh", "-c",
                "readlink /proc/self/ns/net; echo ping | nc 127.0.0.1 8089",
                flags=("--with-ns", f"network:{netns}"))
        assert r.returncode == 0, r.stderr
        lines = r.stdout.splitlines()
        assert lines[0] == want
        assert lines[1] == "pong"
    finally:
        remove(cd, a)


def test_fifty_at_once(cd, rt):
    names = [cid("many") for _ in range(50)]
    errors = []

    def one(n):
        r = cd.ctr("run", "-d", "--runc-binary", cd.runtimes[rt], IMAGE, n,
                   "sleep", "300", check=False, timeout=180)
        if r.returncode != 0:
            errors.append(r.stderr)

    threads = [threading.Thread(target=one, args=(n,)) for n in names]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, errors[:3]
        for n in names:
            assert task_status(cd, n)[0] == "RUNNING", n
    finally:
        for n in names:
            remove(cd, n)


def test_runtime_killed_mid_create_leaves_nothing(cd, rt, tmp_path):
    if rt == "runc":
        pytest.skip("runc has no point to stop it mid-create")
    marker = tmp_path / "stalled"
    wrapper = tmp_path / "stall-runc"
    wrapper.write_text("#!/bin/sh\n"
                       f"SANDPIT_TEST_OCI_STALL_CREATE={marker} "
                       f"exec {cd.runtimes[rt]} \"$@\"\n")
    wrapper.chmod(0o755)
    name = cid("k9")
    p = subprocess.Popen(["ctr", "--address", cd.sock, "run", "--rm",
                          "--runc-binary", str(wrapper), IMAGE, name,
                          "sleep", "4242"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    try:
        end = time.time() + 30
        while not marker.exists() and time.time() < end:
            time.sleep(0.05)
        assert marker.exists()
        pid = int(marker.read_text())
        # the container's processes exist now, waiting for start
        assert subprocess.run(["pgrep", "-f", "sleep 4242"],
                              capture_output=True).returncode == 0
        os.kill(pid, 9)
        out, err = p.communicate(timeout=60)
        assert p.returncode != 0
    finally:
        if p.poll() is None:
            p.kill()
    cd.ctr("containers", "rm", name, check=False)
    end = time.time() + 10
    while time.time() < end and subprocess.run(
            ["pgrep", "-f", "sleep 4242"], capture_output=True).returncode == 0:
        time.sleep(0.1)
    assert subprocess.run(["pgrep", "-f", "sleep 4242"],
                          capture_output=True).returncode != 0
    assert not os.path.exists(runtime_state_dir(name))
    for h in ("memory", "pids", "freezer"):
        assert not os.path.exists(f"/sys/fs/cgroup/{h}/default/{name}")
    assert not os.path.exists(f"/sys/fs/cgroup/default/{name}")


# ---- what sandpit adds (the same probe under runc shows the difference) ----------

def test_container_root_is_not_host_root(cd, rt):
    r = run(cd, rt, "sh", "-c", "id -u; cat /proc/self/uid_map")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.split("\n")
    assert lines[0] == "0"
    m = lines[1].split()
    if rt == "sandpit":
        assert m[0] == "0" and m[1] != "0"  # root inside, not outside
    else:
        assert m == ["0", "0", "4294967295"]


def test_sandpit_layers_and_opt_out(cd, rt):
    # sandpit's seccomp deny list refuses a new user namespace inside
    r = run(cd, rt, "unshare", "-U", "true")
    if rt == "sandpit":
        assert r.returncode != 0
        r = run(cd, rt, "sh", "-c", "cat /proc/self/uid_map",
                flags=("--annotation", "run.sandpit.layers.off=userns"))
        assert r.stdout.split() == ["0", "0", "4294967295"], r.stderr
        r = run(cd, rt, "true",
                flags=("--annotation", "run.sandpit.layers.off=bogus"))
        assert r.returncode != 0 and "bogus" in r.stderr


# ---- the runtime alone, on a bundle --------------------------------------------

@pytest.fixture
def bundle(tmp_path, cd):
    b = tmp_path / "bundle"
    (b / "rootfs").mkdir(parents=True)
    import io
    import tarfile
    with tarfile.open(fileobj=io.BytesIO(ocienv._rootfs_tar())) as t:
        t.extractall(b / "rootfs")
    r = subprocess.run([cd.runtimes["sandpit"], "spec", "--bundle", str(b)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    cfg = json.loads((b / "config.json").read_text())
    cfg["process"]["terminal"] = False
    cfg["root"]["readonly"] = False
    (b / "config.json").write_text(json.dumps(cfg))
    return b


def rtcmd(cd, rt, root, *args, **kw):
    return subprocess.run([cd.runtimes[rt], "--root", str(root), *args],
                          capture_output=True, text=True, timeout=60, **kw)


def rtcreate(cd, rt, root, *args):
    """create: the container keeps the runtime's stdio, so no pipe."""
    with open(os.path.join(str(root) + ".err"), "w+") as err:
        r = subprocess.run([cd.runtimes[rt], "--root", str(root), "create",
                            *args], stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=err, timeout=60)
        err.seek(0)
        r.stderr = err.read()
    return r


def edit(bundle, fn):
    cfg = json.loads((bundle / "config.json").read_text())
    fn(cfg)
    (bundle / "config.json").write_text(json.dumps(cfg))


def test_create_start_state_delete(cd, rt, bundle, tmp_path):
    root = tmp_path / "root"
    edit(bundle, lambda c: c["process"].update(args=["sleep", "300"]))
    r = rtcreate(cd, rt, root, "--bundle", str(bundle), "--pid-file",
                 str(tmp_path / "pid"), "c1")
    assert r.returncode == 0, r.stderr
    st = json.loads(rtcmd(cd, rt, root, "state", "c1").stdout)
    assert st["status"] == "created"
    assert st["id"] == "c1"
    assert st["pid"] == int((tmp_path / "pid").read_text())
    assert st["bundle"] == str(bundle)
    r = rtcmd(cd, rt, root, "start", "c1")
    assert r.returncode == 0, r.stderr
    assert json.loads(rtcmd(cd, rt, root, "state", "c1").stdout)["status"] == "running"
    r = rtcmd(cd, rt, root, "delete", "c1")
    assert r.returncode != 0  # running: needs --force
    r = rtcmd(cd, rt, root, "kill", "c1", "KILL")
    assert r.returncode == 0, r.stderr
    end = time.time() + 10
    while time.time() < end and json.loads(
            rtcmd(cd, rt, root, "state", "c1").stdout)["status"] != "stopped":
        time.sleep(0.05)
    assert json.loads(rtcmd(cd, rt, root, "state", "c1").stdout)["status"] == "stopped"
    r = rtcmd(cd, rt, root, "delete", "c1")
    assert r.returncode == 0, r.stderr
    assert rtcmd(cd, rt, root, "state", "c1").returncode != 0


def test_run_user_and_hostname(cd, rt, bundle, tmp_path):
    def f(c):
        c["process"]["args"] = ["sh", "-c", "id -u; id -g; id -G; hostname"]
        c["process"]["user"] = {"uid": 1000, "gid": 1000,
                                "additionalGids": [5, 1000]}
        c["hostname"] = "box"
    edit(bundle, f)
    r = rtcmd(cd, rt, tmp_path / "root", "run", "--bundle", str(bundle), "u1")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "1000" and lines[1] == "1000"
    assert set(lines[2].split()) == {"1000", "5"}
    assert lines[3] == "box"


def test_unsupported_field_refused_by_name(cd, rt, bundle, tmp_path):
    if rt == "runc":
        pytest.skip("runc accepts linux.intelRdt")
    edit(bundle, lambda c: c["linux"].update(intelRdt={"closID": "x"}))
    r = rtcreate(cd, rt, tmp_path / "root", "--bundle", str(bundle), "x1")
    assert r.returncode != 0
    assert "linux.intelRdt" in r.stderr
    r = rtcreate(cd, rt, tmp_path / "root", "--bundle", str(bundle),
                 "--no-such-flag", "x2")
    assert r.returncode != 0 and "--no-such-flag" in r.stderr
    assert not (tmp_path / "root" / "x1").exists()


def test_namespace_path_of_wrong_kind_refused(cd, rt, bundle, tmp_path):
    # a "network" path that is a pid namespace must not be joined as one
    def f(c):
        for ns in c["linux"]["namespaces"]:
            if ns["type"] == "network":
                ns["path"] = "/proc/1/ns/pid"
    edit(bundle, f)
    r = rtcmd(cd, rt, tmp_path / "root", "run", "--bundle", str(bundle), "n1",
              stdin=subprocess.DEVNULL)
    assert r.returncode != 0
    assert rtcmd(cd, rt, tmp_path / "root", "state", "n1").returncode != 0


def test_spec_user_namespace(cd, rt):
    # the spec's own mappings are honoured (containerd chowns the rootfs)
    r = run(cd, rt, "sh", "-c", "cat /proc/self/uid_map; touch /etc/x && echo wrote",
            flags=("--uidmap", "0:300000:65536", "--gidmap", "0:300000:65536"))
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["0", "300000", "65536", "wrote"]


def test_hooks(cd, rt, bundle, tmp_path):
    log = tmp_path / "hooks.log"
    hook = tmp_path / "hook.sh"
    hook.write_text("#!/bin/sh\n"
                    f"echo \"$1 $(cat | tr -d '\\n' | head -c 300)\" >> {log}\n")
    hook.chmod(0o755)

    def f(c):
        c["process"]["args"] = ["true"]
        c["hooks"] = {k: [{"path": str(hook), "args": ["hook.sh", k]}]
                      for k in ("createRuntime", "poststart", "poststop")}
    edit(bundle, f)
    r = rtcmd(cd, rt, tmp_path / "root", "run", "--bundle", str(bundle), "h1",
              stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr
    lines = log.read_text().splitlines()
    assert [line.split()[0] for line in lines] == ["createRuntime",
                                                   "poststart", "poststop"]
    st = json.loads(lines[0].split(" ", 1)[1])
    assert st["id"] == "h1" and st["pid"] > 0
    assert st["bundle"] == str(bundle)


def test_update_pause_ps_events(cd, rt, bundle, tmp_path):
    root = tmp_path / "root"
    cg = f"/sandpit-test/{rt}-{os.getpid()}"

    def f(c):
        c["process"]["args"] = ["sleep", "300"]
        c["linux"]["cgroupsPath"] = cg
    edit(bundle, f)
    with open(tmp_path / "run.err", "w") as err:
        r = subprocess.run([cd.runtimes[rt], "--root", str(root), "run",
                            "-d", "--bundle", str(bundle), "p1"],
                           stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=err, timeout=60)
    assert r.returncode == 0, (tmp_path / "run.err").read_text()
    try:
        limit = tmp_path / "res.json"
        limit.write_text(json.dumps({"memory": {"limit": 50 << 20},
                                     "pids": {"limit": 77}}))
        r = rtcmd(cd, rt, root, "update", "--resources", str(limit), "p1")
        assert r.returncode == 0, r.stderr
        mem = (f"/sys/fs/cgroup/memory{cg}/memory.limit_in_bytes"
               if os.path.isdir("/sys/fs/cgroup/memory")
               else f"/sys/fs/cgroup{cg}/memory.max")
        assert int(open(mem).read()) == 50 << 20
        pids = json.loads(rtcmd(cd, rt, root, "ps", "--format", "json",
                                "p1").stdout)
        st = json.loads(rtcmd(cd, rt, root, "state", "p1").stdout)
        assert st["pid"] in pids
        assert rtcmd(cd, rt, root, "pause", "p1").returncode == 0
        assert json.loads(rtcmd(cd, rt, root, "state",
                                "p1").stdout)["status"] == "paused"
        assert rtcmd(cd, rt, root, "resume", "p1").returncode == 0
        assert json.loads(rtcmd(cd, rt, root, "state",
                                "p1").stdout)["status"] == "running"
        ev = json.loads(rtcmd(cd, rt, root, "events", "--stats", "p1").stdout)
        assert ev["type"] == "stats" and ev["id"] == "p1"
        assert ev["data"]["memory"]["usage"]["limit"] == 50 << 20
    finally:
        rtcmd(cd, rt, root, "delete", "--force", "p1")
    assert rtcmd(cd, rt, root, "state", "p1").returncode != 0
