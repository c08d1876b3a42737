"""The escape suite: run tests/escape/escape.c inside the real sandbox and
assert the exact refusal of every attack, then run the same attack with the
layer under test turned off and show the outcome changes (the test can
fail). docs/escape-suite.md lists the attacks, the layer that stops each,
and its control.

Environment: SANDPIT_BIN (the sandpit binary), ESCAPE_BIN (the compiled
escape program). Runs as root (cgroup limits enforced) and as an ordinary
user (limits only warned about); tests that need root skip otherwise.
"""

import ctypes
import fcntl
import json
import os
import re
import socket
import subprocess
import termios

import pytest

SANDPIT = os.path.abspath(os.environ["SANDPIT_BIN"]) \
    if os.environ.get("SANDPIT_BIN") else ""
ESCAPE = os.path.abspath(os.environ["ESCAPE_BIN"]) \
    if os.environ.get("ESCAPE_BIN") else ""
ESCAPE_DIR = os.path.dirname(ESCAPE)
ROOT = os.geteuid() == 0
TIMEOUT = 120  # seconds for any one subprocess

pytestmark = pytest.mark.skipif(
    not (SANDPIT and os.access(SANDPIT, os.X_OK) and ESCAPE
         and os.access(ESCAPE, os.X_OK)),
    reason="set SANDPIT_BIN and ESCAPE_BIN to the built binaries")

needs_root = pytest.mark.skipif(
    not ROOT, reason="cgroup limits are enforced only when run as root")
needs_user = pytest.mark.skipif(
    ROOT, reason="checks the unprivileged warning; runs as an ordinary user")


# ---- the host, read once ----------------------------------------------------

def _sysctl(name, default=None):
    try:
        with open("/proc/sys/" + name.replace(".", "/")) as f:
            return int(f.read().split()[0])
    except (OSError, ValueError):
        return default


def _landlock_abi():
    """landlock_create_ruleset(NULL, 0, LANDLOCK_CREATE_RULESET_VERSION)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    r = libc.syscall(ctypes.c_long(444), None, ctypes.c_size_t(0),
                     ctypes.c_uint32(1))
    return max(int(r), 0)


LANDLOCK_ABI = _landlock_abi()


# ---- running the sandbox ----------------------------------------------------

class Result:
    def __init__(self, proc):
        self.rc = proc.returncode
        self.out = proc.stdout.strip()
        self.err = proc.stderr.strip()

    def __repr__(self):
        return "rc=%d out=%r err=%r" % (self.rc, self.out, self.err)


def run_host(*attack):
    """The escape program straight on the host: the kernel's own answer."""
    p = subprocess.run([ESCAPE, *attack], stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=TIMEOUT)
    return Result(p)


@pytest.fixture
def ws(tmp_path):
    """A workspace an ordinary user's sandbox can enter too."""
    w = tmp_path / "ws"
    w.mkdir()
    os.chmod(tmp_path, 0o755)
    os.chmod(w, 0o777)
    return w


@pytest.fixture
def sp(ws):
    """sp(flags, *attack, stdin=None, quiet=True) runs the attack in the
    sandbox and returns its Result."""
    def run(flags, *attack, stdin=None, quiet=True, ctty=False):
        cmd = [SANDPIT, "run"] + (["-q"] if quiet else [])
        cmd += ["--workspace", str(ws), *flags, "--ro", ESCAPE_DIR,
                "--", ESCAPE, *attack]
        # ctty: make stdin (a pty) the controlling terminal of the caller's
        # session, the situation of bubblewrap CVE-2017-5226.
        pre = (lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0)) if ctty else None
        p = subprocess.run(cmd, cwd=ws,
                           stdin=subprocess.DEVNULL if stdin is None else stdin,
                           capture_output=True, text=True, timeout=TIMEOUT,
                           start_new_session=ctty, preexec_fn=pre)
        return Result(p)
    return run


@pytest.fixture
def hostdir(tmp_path):
    """A host directory outside the plan, with a secret and a canary."""
    d = tmp_path / "host"
    d.mkdir()
    (d / "secret").write_text("host secret\n")
    (d / "canary").write_text("canary\n")
    os.chmod(d, 0o777)
    for f in ("secret", "canary"):
        os.chmod(d / f, 0o666)
    return d


def expect(res, out, rc=0):
    assert (res.rc, res.out) == (rc, out), res


# ---- seccomp ----------------------------------------------------------------
# (attack, expected in the sandbox, [(layer-off flags, outcome), ...]).
# A control equal to the refusal marks a call the kernel refuses on its own
# (no capability): the *-efault / *-badfd twin is then the control that
# tells the filter's errno from the kernel's.

def _io_uring_off():
    return "ok" if _sysctl("kernel.io_uring_disabled", 0) == 0 else "errno EPERM"


def _perf_off():
    return "ok" if _sysctl("kernel.perf_event_paranoid", 2) <= 2 \
        else "errno EACCES"


SECCOMP = [
    (["ptrace"], "errno EPERM",
     [(["--allow-ptrace"], "ok"), (["--no-seccomp"], "ok")]),
    (["ptrace-traceme"], "errno EPERM", [(["--allow-ptrace"], "ok")]),
    (["process-vm-readv"], "errno EPERM", [(["--allow-ptrace"], "ok")]),
    (["mount-tmpfs", "/tmp"], "errno EPERM",
     [(["--no-seccomp"], "errno EPERM")]),
    (["mount-efault"], "errno EPERM", [(["--no-seccomp"], "errno EFAULT")]),
    (["fsopen"], "errno EPERM", [(["--no-seccomp"], "errno EPERM")]),
    (["open-tree"], "errno EPERM", [(["--no-seccomp"], "ok")]),
    (["unshare-user"], "errno EPERM", [(["--no-seccomp"], "ok")]),
    (["clone-newuser"], "errno EPERM", [(["--no-seccomp"], "ok")]),
    (["clone3"], "errno ENOSYS", [(["--no-seccomp"], "ok")]),
    (["open-by-handle"], "errno EPERM", [(["--no-seccomp"], "errno EPERM")]),
    (["open-by-handle-badfd"], "errno EPERM",
     [(["--no-seccomp"], "errno EFAULT")]),
    (["bpf"], "errno EPERM", []),
    (["bpf-efault"], "errno EPERM", [(["--no-seccomp"], "errno EFAULT")]),
    (["io-uring-setup"], "errno EPERM", [(["--no-seccomp"], _io_uring_off())]),
    (["userfaultfd"], "errno EPERM", [(["--no-seccomp"], "ok")]),
    (["perf-event-open"], "errno EPERM", [(["--no-seccomp"], _perf_off())]),
    (["keyctl"], "errno EPERM", [(["--no-seccomp"], "ok")]),
    (["socket-packet"], "errno EAFNOSUPPORT",
     [(["--no-seccomp"], "errno EPERM")]),
]


@pytest.mark.parametrize("attack,refusal,controls", SECCOMP,
                         ids=[c[0][0] for c in SECCOMP])
def test_seccomp(sp, attack, refusal, controls):
    expect(sp([], *attack), refusal)
    for flags, outcome in controls:
        expect(sp(flags, *attack), outcome)


@pytest.fixture
def tty():
    """A pty that is no session's controlling terminal: without the filter
    the sandbox can take it and type into it."""
    master, slave = os.openpty()
    os.set_blocking(master, False)
    yield master, slave
    os.close(master)
    os.close(slave)


def _drain(fd):
    try:
        return os.read(fd, 4096)
    except (BlockingIOError, OSError):
        return b""


@pytest.mark.parametrize("attack", ["tiocsti", "tiocsti-high"])
def test_tiocsti(sp, tty, attack):
    master, slave = tty
    expect(sp([], attack, stdin=slave), "errno EPERM")
    assert b"#" not in _drain(master)
    # Control: without seccomp the character is typed (echoed to the master).
    res = sp(["--no-seccomp"], attack, stdin=slave)
    if _sysctl("dev.tty.legacy_tiocsti", 1) == 0:
        expect(res, "errno EIO")
    else:
        expect(res, "ok")
        assert b"#" in _drain(master)


def test_tiocsti_callers_terminal(sp, tty):
    """The caller's own controlling terminal: sandpit's setsid() leaves the
    sandbox without it, so even with the filter off the kernel refuses."""
    master, slave = tty
    expect(sp([], "tiocsti", stdin=slave, ctty=True), "errno EPERM")
    expect(sp(["--no-seccomp"], "tiocsti", stdin=slave, ctty=True),
           "errno EPERM")
    assert b"#" not in _drain(master)


def test_tioclinux(sp, tty):
    master, slave = tty
    expect(sp([], "tioclinux", stdin=slave), "errno EPERM")
    expect(sp(["--no-seccomp"], "tioclinux", stdin=slave), "errno ENOTTY")


SIGSYS_EXIT = 128 + 31


def test_int80(sp):
    res = sp([], "int80")
    expect(res, "", rc=SIGSYS_EXIT)
    host = run_host("int80")
    if host.rc != 0:
        pytest.skip("this kernel has no i386 entry point: %r" % host)
    expect(sp(["--no-seccomp"], "int80"), "ok")


def test_x32(sp):
    expect(sp([], "x32"), "", rc=SIGSYS_EXIT)
    # Control: the kernel's own answer (ENOSYS unless x32 is enabled).
    host = run_host("x32")
    res = sp(["--no-seccomp"], "x32")
    assert (res.rc, res.out) == (0, host.out), (res, host)


# ---- Landlock and the network namespace ---------------------------------------

@pytest.fixture
def tcp_listener():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    s.listen(16)
    yield s.getsockname()[1]
    s.close()


@pytest.mark.parametrize("net", [[], ["--net", "allow:example.invalid"]],
                         ids=["none", "allow"])
def test_connect_host_loopback(sp, tcp_listener, net):
    """The private network namespace is the boundary: loopback TCP works
    inside (Landlock does not handle TCP there, docs/landlock.md), but it
    is the sandbox's own loopback, so the host's listener is unreachable."""
    port = str(tcp_listener)
    # Only lo: no interface a connect could leave by (allow: adds only the
    # proxy's listener on lo).
    expect(sp(net, "ifaces"), "lo")
    # The host's listener on 127.0.0.1:PORT is not there ...
    expect(sp(net, "connect", "127.0.0.1", port), "errno ECONNREFUSED")
    # ... and the sandbox can hold the same port itself and reach it.
    expect(sp(net, "serve-self", port), "ok")
    # Control: the host's network reaches the listener, and its port is
    # taken there.
    expect(sp(["--net", "host"], "connect", "127.0.0.1", port), "ok")
    expect(sp(["--net", "host"], "serve-self", port), "errno EADDRINUSE")


@pytest.fixture
def tcp_listener2():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    s.listen(16)
    yield s.getsockname()[1]
    s.close()


def test_tcp_ports_narrow_the_host_network(sp, tcp_listener, tcp_listener2):
    """Where Landlock's TCP rules add something: --net host with
    --tcp-ports reaches the named ports only (and binds only them)."""
    if LANDLOCK_ABI < 4:
        pytest.skip("Landlock ABI %d cannot restrict TCP" % LANDLOCK_ABI)
    named, other = str(tcp_listener), str(tcp_listener2)
    flags = ["--net", "host", "--tcp-ports", named]
    expect(sp(flags, "connect", "127.0.0.1", named), "ok")
    expect(sp(flags, "connect", "127.0.0.1", other), "errno EACCES")
    # in the private namespace too: only the named port binds
    expect(sp(["--tcp-ports", named], "serve-self", named), "ok")
    expect(sp(["--tcp-ports", named], "serve-self", other), "errno EACCES")
    # Control: without the list (or without Landlock) both are reached.
    expect(sp(["--net", "host"], "connect", "127.0.0.1", other), "ok")
    expect(sp(flags + ["--no-landlock"], "connect", "127.0.0.1", other), "ok")
    res = sp(["--tcp-ports", "0"], "connect", "127.0.0.1", named)
    assert res.rc == 125 and "port 0 is not a port" in res.err, res


@pytest.fixture
def abstract_listener():
    name = "sandpit-escape-%d" % os.getpid()
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind("\0" + name)
    s.listen(16)
    yield name
    s.close()


def test_connect_host_abstract_socket(sp, abstract_listener):
    name = abstract_listener
    # --net none: another network namespace, another abstract namespace.
    expect(sp([], "connect-abstract", name), "errno ECONNREFUSED")
    if LANDLOCK_ABI < 6:
        pytest.skip("Landlock ABI %d cannot scope abstract sockets"
                    % LANDLOCK_ABI)
    # --net host shares the host's abstract namespace: Landlock's scoping
    # is all that stands between the sandbox and the host's listeners.
    expect(sp(["--net", "host"], "connect-abstract", name), "errno EPERM")
    expect(sp(["--net", "host", "--no-landlock"], "connect-abstract", name),
           "ok")


# ---- the mount plan -------------------------------------------------------------

def test_read_root_bashrc(sp):
    expect(sp([], "read", "/root/.bashrc"), "errno ENOENT")


def test_read_host_file_outside_plan(sp, hostdir):
    secret = str(hostdir / "secret")
    expect(sp([], "read", secret), "errno ENOENT")
    expect(sp(["--no-landlock", "--no-seccomp"], "read", secret),
           "errno ENOENT")
    # Control: the same file read once the plan names its directory.
    expect(sp(["--ro", str(hostdir)], "read", secret), "ok")


# ---- identity (docs/security.md) ---------------------------------------------

needs_root_caller = pytest.mark.skipif(
    not ROOT, reason="host root's own files: the root caller's identity")


@needs_root_caller
def test_read_root_only_file_in_exposed_tree(sp, tmp_path):
    d = tmp_path / "etc"
    d.mkdir()
    os.chmod(d, 0o755)
    key = d / "key"
    key.write_text("root only\n")
    os.chmod(key, 0o600)
    # the sandbox is a host id range of its own: host root's file is
    # nobody's inside, and 0600 keeps it out
    expect(sp(["--ro", str(d)], "read", str(key)), "errno EACCES")
    expect(sp(["--ro", str(d), "--no-landlock", "--no-seccomp"], "read",
              str(key)), "errno EACCES")
    # Control: without a user namespace the sandbox is host root again.
    expect(sp(["--ro", str(d), "--no-userns"], "read", str(key)), "ok")


def test_read_proc_slabinfo(sp):
    expect(sp([], "read", "/proc/slabinfo"), "errno EACCES")
    if ROOT:
        # Control: host root (no user namespace) reads it.
        expect(sp(["--no-userns"], "read", "/proc/slabinfo"), "ok")


@needs_root_caller
def test_fchmod_suid_callers_stdout(ws, tmp_path):
    out = tmp_path / "out"

    def attempt(flags):
        with open(out, "w") as f:
            p = subprocess.run([SANDPIT, "run", "-q", "--workspace", str(ws),
                                *flags, "--ro", ESCAPE_DIR, "--", ESCAPE,
                                "fchmod-suid", "1"], stdout=f,
                               stdin=subprocess.DEVNULL, cwd=ws,
                               capture_output=False, stderr=subprocess.PIPE,
                               text=True, timeout=TIMEOUT)
        return p, out.read_text().strip(), os.stat(out).st_mode

    p, said, mode = attempt([])
    assert said == "errno EPERM" and not mode & 0o4000, (p.stderr, said)
    # Control: as host root (no user namespace) and without the set-id
    # filter, the caller's file turns set-uid root.
    p, said, mode = attempt(["--no-userns", "--no-seccomp"])
    assert said == "ok", p.stderr  # (its own "ok" on fd 1 then clears it)


def test_chmod_suid_in_workspace_not_host_root(sp, ws):
    # The workspace keeps the caller's ownership (ID-mapped for root), so
    # the set-id filter is what keeps a set-uid root file off the host.
    res = sp([], "chmod-suid", str(ws / "x"))
    st = os.stat(ws / "x")
    assert not (st.st_uid == 0 and st.st_mode & 0o4000), res
    assert not st.st_mode & 0o6000, res
    # Control: without the filter the bit lands (owned by the caller).
    os.unlink(ws / "x")
    res = sp(["--no-seccomp"], "chmod-suid", str(ws / "x"))
    assert os.stat(ws / "x").st_mode & 0o4000, res


def test_write_usr(sp):
    expect(sp([], "write", "/usr/bin/x"), "errno EROFS")
    expect(sp(["--no-landlock"], "write", "/usr/bin/x"), "errno EROFS")
    assert not os.path.exists("/usr/bin/x")


def test_write_ro_mount(sp, hostdir):
    canary = str(hostdir / "canary")
    expect(sp(["--ro", str(hostdir)], "write", canary), "errno EROFS")
    expect(sp(["--ro", str(hostdir), "--no-landlock"], "write", canary),
           "errno EROFS")
    assert (hostdir / "canary").read_text() == "canary\n"
    # Control: a read-write mount of the same directory lets it through.
    expect(sp(["--rw", str(hostdir)], "write", canary), "ok")
    assert (hostdir / "canary").read_text().startswith("escaped")


def test_symlink_out_of_workspace(sp, ws, hostdir):
    target = str(hostdir / "planted")
    expect(sp([], "symlink-write", target), "errno ENOENT")
    expect(sp(["--no-landlock", "--no-seccomp"], "symlink-write", target),
           "errno ENOENT")
    assert not (hostdir / "planted").exists()
    assert os.path.islink(ws / "escape-link")  # the attack did plant it
    # A link to a host file the plan mounts read-only: still no write.
    canary = str(hostdir / "canary")
    expect(sp(["--ro", str(hostdir)], "symlink-write", canary), "errno EROFS")
    assert (hostdir / "canary").read_text() == "canary\n"
    # Control: with the directory mounted read-write the write lands.
    expect(sp(["--rw", str(hostdir)], "symlink-write", target), "ok")
    assert (hostdir / "planted").read_text() == "escaped\n"


def test_proc_kcore(sp):
    # Masked with an empty read-only file when the kernel has it.
    out = "empty" if os.path.exists("/proc/kcore") else "errno ENOENT"
    expect(sp([], "read", "/proc/kcore"), out)


def test_proc_sysrq_trigger(sp):
    # "h" only prints the sysrq help to the kernel log, should it get through.
    out = "errno EROFS" if os.path.exists("/proc/sysrq-trigger") \
        else "errno ENOENT"
    expect(sp([], "write", "/proc/sysrq-trigger", "h"), out)


def test_proc_sys_hostname(sp):
    # /proc/sys is read-only; host root's file, nobody's in the sandbox's
    # user namespace (a root caller's too), is refused first.
    out = "errno EACCES"
    expect(sp([], "write", "/proc/sys/kernel/hostname", "escaped"), out)
    expect(sp(["--no-landlock", "--no-seccomp"], "write",
              "/proc/sys/kernel/hostname", "escaped"), out)
    if ROOT:
        # Control: as host root (no user namespace) the mount's read-only
        # flag is what refuses.
        expect(sp(["--no-userns"], "write", "/proc/sys/kernel/hostname",
                  "escaped"), "errno EROFS")


def test_sysfs_absent(sp):
    expect(sp([], "write", "/sys/kernel/uevent_helper", "/tmp/x"),
           "errno ENOENT")
    expect(sp([], "read", "/sys/kernel/notes"), "errno ENOENT")


def test_proc_self_exe(sp):
    # runc CVE-2019-5736: the binary the sandbox runs is not writable. The
    # kernel answers first: ETXTBSY (running), or EACCES (an unprivileged
    # sandbox is not the file's owner); the read-only mount is behind them.
    res = sp([], "write", "/proc/self/exe")
    assert res.rc == 0 and res.out in ("errno ETXTBSY", "errno EACCES",
                                       "errno EROFS"), res


def test_no_leaked_fds(sp):
    expect(sp([], "fds"), "none")


# ---- the PID namespace ----------------------------------------------------------

def test_kill_host_process(sp):
    victim = subprocess.Popen(["sleep", "300"])
    try:
        res = sp([], "kill", str(victim.pid))
        assert res.rc == 0 and res.out in ("errno ESRCH", "errno EPERM"), res
        res = sp(["--no-landlock", "--no-seccomp"], "kill", str(victim.pid))
        assert res.rc == 0 and res.out in ("errno ESRCH", "errno EPERM"), res
        assert victim.poll() is None, "the host process died"
    finally:
        victim.kill()
        victim.wait(timeout=TIMEOUT)


# ---- resource limits ------------------------------------------------------------

@needs_root
def test_fork_bomb(sp):
    res = sp(["--pids", "32"], "forkbomb", "1000")
    m = re.fullmatch(r"forked (\d+) errno EAGAIN", res.out)
    assert res.rc == 0 and m and int(m.group(1)) < 32, res
    # Control, bounded: no limit, 200 children, all forked.
    expect(sp(["--pids", "0"], "forkbomb", "200"), "forked 200")


@needs_root
def test_memory(sp):
    res = sp(["--memory", "64M"], "alloc", "512")
    assert res.rc == 137 and res.out == "", res
    assert "killed: out of memory" in res.err, res
    # Control, bounded: no limit, 128 MiB touched.
    expect(sp(["--memory", "0"], "alloc", "128"), "ok")


@needs_user
def test_limits_unprivileged_warn(sp):
    # No cgroup delegation: said loudly, and processes are still bounded
    # through RLIMIT_NPROC, counted per user namespace.
    res = sp(["--pids", "32"], "forkbomb", "50", quiet=False)
    m = re.fullmatch(r"forked (\d+) errno EAGAIN", res.out)
    assert res.rc == 0 and m and int(m.group(1)) < 32, res
    assert "not enforced" in res.err and "RLIMIT_NPROC" in res.err, res
    # Control: without a pids limit the 50 forks all succeed.
    expect(sp(["--pids", "0"], "forkbomb", "50"), "forked 50")
    res = sp(["--require", "limits", "--pids", "32"], "forkbomb", "50")
    assert res.rc == 125 and res.out == "", res


def test_fill_tmp(sp):
    res = sp(["--tmp-size", "8M"], "fill", "/tmp/fill", "64")
    m = re.fullmatch(r"wrote (\d+) errno ENOSPC", res.out)
    assert res.rc == 0 and m and int(m.group(1)) <= 8, res
    # Control: a larger /tmp takes 16 MiB.
    expect(sp(["--tmp-size", "64M"], "fill", "/tmp/fill", "16"), "wrote 16")


# ---- nothing written grants privilege (docs/security-writes.md) -------------
# Each route to a set-uid or set-gid file on a host path; the filter answers
# EPERM and the host's file carries no set-id bit. Control: --no-seccomp.

SETID_ROUTES = ["chmod", "chmod-sgid", "fchmod", "fchmodat", "fchmodat2",
                "open-creat", "openat-creat-sgid", "creat", "mknod"]


def _setid_bits(path):
    return os.lstat(path).st_mode & 0o6000


@pytest.mark.parametrize("route", SETID_ROUTES)
def test_setid_mode(sp, ws, route):
    f = ws / ("setid-" + route)
    expect(sp([], "setid", route, f.name), "errno EPERM")
    assert not f.exists() or _setid_bits(f) == 0, oct(f.stat().st_mode)
    if f.exists():
        f.unlink()
    # Control: without the filter the same call leaves a set-id file.
    expect(sp(["--no-seccomp"], "setid", route, f.name), "ok")
    assert _setid_bits(f) != 0


def test_setid_mode_rw_bind(sp, hostdir):
    f = hostdir / "setid-rw"
    expect(sp(["--rw", str(hostdir)], "setid", "chmod", str(f)), "errno EPERM")
    assert _setid_bits(f) == 0


def test_setid_mkdir(sp, ws):
    # mkdir's set-gid bit never lands (the kernel drops it); a guard.
    expect(sp([], "setid", "mkdir-sgid", "d1"), "plain")
    expect(sp(["--no-seccomp"], "setid", "mkdir-sgid", "d2"), "plain")


def test_setid_openat2(sp, ws):
    expect(sp([], "openat2", "o2"), "errno ENOSYS")
    assert not (ws / "o2").exists()
    expect(sp(["--no-seccomp"], "openat2", "o2"), "ok")
    assert _setid_bits(ws / "o2") != 0


def test_setid_fchmod_stdout(ws, tmp_path):
    """fchmod(1, 04755) on the caller's stdout file (the attack reports on
    stderr: a write to the file would clear the bit again)."""
    def run(flags):
        out = tmp_path / "out"
        with open(out, "w") as f:
            os.chmod(out, 0o644)
            p = subprocess.run(
                [SANDPIT, "run", "-q", "--workspace", str(ws), *flags,
                 "--ro", ESCAPE_DIR, "--", ESCAPE, "fchmod-fd", "1"],
                cwd=ws, stdin=subprocess.DEVNULL, stdout=f,
                stderr=subprocess.PIPE, text=True, timeout=TIMEOUT)
        assert p.returncode == 0, p
        return p.stderr.strip(), _setid_bits(out)
    assert run([]) == ("errno EPERM", 0)
    if ROOT:
        # A root caller's sandbox is not the owner of root's file (its own
        # id range, docs/security.md): the identity layer refuses too.
        assert run(["--no-seccomp"]) == ("errno EPERM", 0)
        layer_off = ["--no-seccomp", "--no-userns"]
    else:
        layer_off = ["--no-seccomp"]
    # Control: with the layers off, the bit lands.
    out, bits = run(layer_off)
    assert out == "ok" and bits != 0


def test_setcap(sp, ws):
    # security.capability needs CAP_SETFCAP, which the sandbox never holds
    # (every capability dropped, bounding set empty): the kernel refuses,
    # with or without the filter.
    expect(sp([], "setcap", "c1"), "errno EPERM")
    expect(sp(["--no-seccomp"], "setcap", "c2"), "errno EPERM")
    for n in ("c1", "c2"):
        with pytest.raises(OSError):
            os.getxattr(ws / n, "security.capability")
    if ROOT:
        # Control: the same call with CAP_SETFCAP (host root) succeeds.
        h = ws / "c3"
        expect(run_host("setcap", str(h)), "ok")
        assert os.getxattr(h, "security.capability")


# ---- sources that would hand over the host (docs/policy.md) -----------------

@pytest.mark.parametrize("cwd,attack", [
    ("/proc", ["write", "/proc/sys/kernel/hostname", "escaped"]),
    ("/proc/sys/kernel", ["write", "core_pattern", "|/tmp/x"]),
    ("/sys", ["write", "/sys/power/state", "mem"]),
    ("/dev", ["write", "/dev/escape-node"]),
])
def test_system_dir_workspace(cwd, attack):
    """cd /proc && sandpit run ... : refused before anything starts."""
    if not os.path.isdir(cwd):
        pytest.skip(cwd + " is not on this host")
    before = open("/proc/sys/kernel/hostname").read()
    p = subprocess.run([SANDPIT, "run", "-q", "--ro", ESCAPE_DIR, "--",
                        ESCAPE, *attack], cwd=cwd, stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=TIMEOUT)
    assert p.returncode == 125, p
    assert p.stdout == "" and "docs/policy.md" in p.stderr, p
    assert open("/proc/sys/kernel/hostname").read() == before
    assert not os.path.exists("/dev/escape-node")


def test_workspace_exec_setid_and_openat2(tmp_path):
    """The same filter for a workspace's execs: set-id modes EPERM, openat2
    ENOSYS (the exec filter) — while the agent's own file API, which needs
    openat2, still works."""
    state = tmp_path / "state"
    state.mkdir()
    os.chmod(tmp_path, 0o755)
    env = dict(os.environ, SANDPIT_STATE=str(state))

    def sp_(*args, **kw):
        return subprocess.run([SANDPIT, *args], env=env, capture_output=True,
                              text=True, timeout=TIMEOUT, **kw)
    r = sp_("create", "esc", "-q", "--ro", ESCAPE_DIR)
    assert r.returncode == 0, r.stderr
    try:
        r = sp_("exec", "esc", "--", ESCAPE, "setid", "chmod", "f")
        assert r.stdout.strip() == "errno EPERM", r
        r = sp_("exec", "esc", "--", ESCAPE, "openat2", "g")
        assert r.stdout.strip() == "errno ENOSYS", r
        r = sp_("write", "esc", "w.txt", input="via the agent\n")
        assert r.returncode == 0, r.stderr
        assert sp_("cat", "esc", "w.txt").stdout == "via the agent\n"
        r = sp_("stat", "esc", "f", "--json")
        assert json.loads(r.stdout)["mode"] & 0o6000 == 0, r.stdout
    finally:
        sp_("rm", "-f", "esc")
