"""sandpit's Python client, E2B-style, against a real `sandpit serve`:
workspaces, exec with streaming callbacks, files, patches, shells,
services, snapshots, typed errors, and the clean-up its context managers
promise."""
import os
import shutil
import signal
import subprocess
import sys
import threading
import time

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "python"))
SANDPIT = os.environ.get("SANDPIT_BIN", os.path.join(ROOT, "build", "sandpit"))

import sandpit  # noqa: E402
from sandpit import (Cancelled, InvalidParams, PatchFailed,  # noqa: E402
                     PolicyDenied, Sandpit, ServeFailed, UsageError)


def test_exec_streams_and_returns(sb):
    with sb.create() as ws:
        out, err = [], []
        r = ws.exec("echo one; echo two >&2; echo three", on_stdout=out.append,
                    on_stderr=err.append)
        assert r.exit_code == 0 and r.ok
        assert r.stdout == "one\nthree\n" and r.stderr == "two\n"
        assert "".join(out) == "one\nthree\n" and "".join(err) == "two\n"
        r = ws.exec(["sh", "-c", "exit 3"])
        assert r.exit_code == 3 and not r.ok
        r = ws.exec(["cat"], stdin="fed\n", env={"K": "V"})
        assert r.stdout == "fed\n"
        assert ws.exec("echo $K", env={"K": "V"}).stdout == "V\n"
        r = ws.exec(["sleep", "30"], timeout=1)
        assert r.timed_out and r.exit_code == 124


def test_streaming_arrives_before_the_end(sb):
    # The first line reaches the callback while the command still runs.
    with sb.create() as ws:
        seen = threading.Event()

        def on_out(data):
            if "first" in data:
                seen.set()

        t = threading.Thread(target=lambda: ws.exec(
            "echo first; while [ ! -e /tmp/go ]; do sleep 0.05; done; echo done",
            on_stdout=on_out))
        t.start()
        assert seen.wait(20)
        assert t.is_alive()
        ws.exec("touch /tmp/go")
        t.join(20)
        assert not t.is_alive()


def test_request_timeout_cancels(sb):
    with sb.create() as ws:
        with pytest.raises(Cancelled) as ei:
            ws.exec(["sleep", "60"], request_timeout=0.5)
        assert ei.value.kind == "cancelled"
        # The connection goes on.
        assert ws.exec("echo ok").stdout == "ok\n"


def test_files(sb):
    with sb.create() as ws:
        assert ws.files.write("src/a.txt", "one\n") == 4
        assert ws.files.read("src/a.txt") == "one\n"
        ws.files.write("b.bin", b"\x00\xff\x01", mode=0o600)
        assert ws.files.read_bytes("b.bin") == b"\x00\xff\x01"
        names = {e["path"] for e in ws.files.list(recursive=True)}
        assert {"src", "src/a.txt", "b.bin"} <= names
        rep = ws.files.patch("--- a/src/a.txt\n+++ b/src/a.txt\n@@ -1 +1 @@\n-one\n+two\n")
        assert rep["applied"] is True
        assert ws.exec("cat src/a.txt").stdout == "two\n"
        with pytest.raises(PatchFailed) as ei:
            ws.files.patch("--- a/src/a.txt\n+++ b/src/a.txt\n@@ -1 +1 @@\n-zzz\n+two\n")
        assert ei.value.code == -32000 and ei.value.kind == "patch"
        assert ei.value.report["failure"]["path"] == "src/a.txt"
        assert ws.files.read("src/a.txt") == "two\n"
        ws.files.delete("b.bin")
        with pytest.raises(UsageError) as ei:
            ws.files.read("b.bin")
        assert ei.value.code == -32000 and ei.value.kind == "usage"
        assert "b.bin" in ei.value.message
        with pytest.raises(sandpit.SandpitError):
            ws.files.read("../../etc/passwd")


def test_shell(sb):
    with sb.create() as ws:
        with ws.shells.open("sh") as sh:
            sh.write("echo hel''lo\n")
            assert "hello" in sh.expect("hello")
            sh.write("exit 7\n")
            deadline = time.monotonic() + 20
            while not sh.ended and time.monotonic() < deadline:
                sh.read(wait=1)
            assert sh.ended and sh.exit_code == 7


def test_services(sb):
    with sb.create() as ws:
        s = ws.services.start("web", ["sh", "-c", "echo started; touch /tmp/up; exec sleep 60"],
                              ready="file:/tmp/up", ready_timeout=20)
        assert s["name"] == "web"
        assert ws.services.status("web")["state"] in ("ready", "running")
        assert [x["name"] for x in ws.services.list()] == ["web"]
        deadline = time.monotonic() + 20
        while "started" not in ws.services.logs("web")["output"]:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        r = ws.services.stop("web", grace=1)
        assert r["stopped_by"] == "TERM"


def test_snapshot_restore_fork(sb):
    with sb.create() as ws:
        ws.files.write("f.txt", "before\n")
        ws.snapshot("s1")
        assert [s["name"] for s in ws.snapshots()] == ["s1"]
        ws.files.write("f.txt", "after\n")
        r = ws.restore("s1")
        assert r["restarted"] is True
        assert ws.files.read("f.txt") == "before\n"
        with ws.fork("s1", ws.name + "-fork") as child:
            assert child.files.read("f.txt") == "before\n"
            child.files.write("f.txt", "child\n")
            assert ws.files.read("f.txt") == "before\n"
        assert ws.name + "-fork" not in [w["name"] for w in sb.list()]
        ws.delete_snapshot("s1")
        assert ws.snapshots() == []


def test_context_managers_clean_up():
    with Sandpit(sandpit_bin=SANDPIT) as sb:
        with sb.create("gone") as ws:
            assert ws.exec("true").exit_code == 0
        assert "gone" not in [w["name"] for w in sb.list()]
        kept = sb.create("kept", delete_on_exit=False)
        with kept:
            pass
        assert "kept" in [w["name"] for w in sb.list()]
        proc, tmp = sb._proc, sb._tmp
        # The private server's supervisor for "kept":
        sup = [w["supervisor_pid"] for w in sb.list() if w["name"] == "kept"][0]
    # The private server is gone with its socket dir, and its workspace's
    # supervisor with it.
    assert proc.poll() is not None
    assert not os.path.exists(tmp)
    for _ in range(100):
        if not os.path.exists(f"/proc/{sup}"):
            break
        time.sleep(0.05)
    assert not os.path.exists(f"/proc/{sup}")


def test_typed_errors(sb):
    with pytest.raises(UsageError) as ei:
        sb.workspace("nope").exec("true")
    assert ei.value.code == -32000
    with pytest.raises(InvalidParams) as ei:
        sb.create("bad name!")
    assert ei.value.code == -32602
    with sb.create("dup"):
        with pytest.raises(sandpit.SandpitError) as ei:
            sb.create("dup")
        assert ei.value.code in (-32000, -32602)
    with pytest.raises(sandpit.ProtocolError):
        sb.call("no.such.method")


def test_policy_denied(tmp_path):
    pol = tmp_path / "p.json"
    pol.write_text('{"limits": {"memory": "256M"}}')
    with Sandpit(sandpit_bin=SANDPIT, policy=str(pol)) as sb:
        with pytest.raises(PolicyDenied) as ei:
            sb.create(memory="2G")
        assert ei.value.code == -32001 and ei.value.kind == "denied"
        with sb.create(memory="128M") as ws:
            assert ws.info["limits"]["memory"] == 128 * 1024 * 1024


def test_connects_to_a_running_serve(tmp_path):
    # Sandpit(SOCKET): another process's server, left running on close.
    path = str(tmp_path / "s.sock")
    state = tmp_path / "state"
    state.mkdir()
    p = subprocess.Popen([SANDPIT, "serve", "--socket", path],
                         env=dict(os.environ, SANDPIT_STATE=str(state)))
    try:
        for _ in range(500):
            if os.path.exists(path):
                break
            time.sleep(0.01)
        with Sandpit(path) as sb:
            assert "exec" in sb.methods()
            with sb.create() as ws:
                assert ws.exec("echo hi").stdout == "hi\n"
        assert p.poll() is None
        os.environ["SANDPIT_SOCKET"] = path
        try:
            with Sandpit() as sb:
                assert sb.socket_path == path
        finally:
            del os.environ["SANDPIT_SOCKET"]
    finally:
        p.send_signal(signal.SIGTERM)
        assert p.wait(10) == 0


def test_serve_that_cannot_start(tmp_path):
    with pytest.raises(ServeFailed):
        Sandpit(sandpit_bin="/bin/false")
    with pytest.raises(sandpit.ConnectionLost):
        Sandpit(str(tmp_path / "nothing.sock"))


def test_server_gone_mid_session(tmp_path):
    sb = Sandpit(sandpit_bin=SANDPIT)
    try:
        sb._proc.send_signal(signal.SIGTERM)
        sb._proc.wait(10)
        with pytest.raises(sandpit.ConnectionLost):
            for _ in range(50):
                sb.list()
                time.sleep(0.05)
    finally:
        sb.close()


def test_pip_install_into_a_venv(tmp_path):
    # `pip install ./python` into a venv (Debian's pip refuses the system
    # Python without --break-system-packages); offline here, so the build
    # uses the system's setuptools and wheel (python3-wheel) instead of
    # fetching them.
    venv = tmp_path / "venv"
    subprocess.run(["/usr/bin/python3", "-m", "venv", "--system-site-packages",
                    str(venv)], check=True)
    py = str(venv / "bin" / "python")
    src = tmp_path / "python"        # the build writes beside its sources
    shutil.copytree(os.path.join(ROOT, "python"), src,
                    ignore=shutil.ignore_patterns("__pycache__", "build", "*.egg-info"))
    r = subprocess.run([py, "-m", "pip", "install", "-q", "--no-index",
                        "--no-build-isolation", str(src)],
                       capture_output=True, text=True, timeout=300,
                       cwd=str(tmp_path))
    assert r.returncode == 0, r.stderr
    r = subprocess.run([py, "-c", "import sandpit, sys; print(sandpit.__file__); "
                        "sb = sandpit.Sandpit(sandpit_bin=sys.argv[1]); "
                        "ws = sb.create(); print(ws.exec('echo venv').stdout, end=''); "
                        "ws.delete(); sb.close()", SANDPIT],
                       capture_output=True, text=True, timeout=120, cwd=str(tmp_path))
    assert r.returncode == 0, r.stderr
    path, out = r.stdout.splitlines()
    assert path.startswith(str(venv)) and out == "venv"


def test_example_runs(tmp_path):
    r = subprocess.run([sys.executable, os.path.join(ROOT, "examples", "agent_loop.py")],
                       capture_output=True, text=True, timeout=120,
                       env=dict(os.environ, SANDPIT_BIN=SANDPIT,
                                PYTHONPATH=os.path.join(ROOT, "python")))
    assert r.returncode == 0, r.stderr
    assert "tests passed" in r.stdout
