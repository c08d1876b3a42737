"""Shared fixtures for the integration tests: they drive the real sandpit
binary (SANDPIT_BIN) and run the probe program (PROBE_BIN) inside real
sandboxes. They run as root in CI and again as an ordinary user."""
import json
import os
import subprocess
import time

import pytest

SANDPIT = os.environ.get("SANDPIT_BIN", os.path.abspath("build/sandpit"))
PROBE = os.environ.get("PROBE_BIN", os.path.abspath("build/tests/probe"))
PROFILES = os.environ.get(
    "SANDPIT_PROFILE_DIR",
    os.path.join(os.path.dirname(__file__), "..", "..", "profiles"))
IS_ROOT = os.geteuid() == 0


def sandpit(*args, cwd=None, timeout=60, input=None, env=None, **kw):
    """Run the sandpit binary; returns CompletedProcess (text)."""
    e = dict(os.environ)
    e["SANDPIT_PROFILE_DIR"] = os.path.abspath(PROFILES)
    if env:
        e.update(env)
    return subprocess.run([SANDPIT, *args], cwd=cwd, timeout=timeout,
                          input=input, capture_output=True, text=True,
                          env=e, **kw)


def run(*cmd, flags=(), cwd=None, probe=False, **kw):
    """sandpit run [flags] -- cmd; with probe=True the probe's directory is
    given read-only and cmd is run through it."""
    fl = list(flags)
    if probe:
        fl += ["--ro", os.path.dirname(PROBE)]
        cmd = (PROBE, *cmd)
    return sandpit("run", "-q", *fl, "--", *cmd, cwd=cwd, **kw)


@pytest.fixture
def ws(tmp_path):
    """A workspace directory the sandbox (and an ordinary user) can use."""
    d = tmp_path / "ws"
    d.mkdir()
    os.chmod(tmp_path, 0o755)
    os.chmod(d, 0o777)
    return d


# ---- workspaces -----------------------------------------------------------

@pytest.fixture
def state(tmp_path):
    """A private SANDPIT_STATE for one test; every workspace left in it is
    removed at the end, so nothing keeps running behind."""
    d = tmp_path / "state"
    d.mkdir()
    os.chmod(tmp_path, 0o755)
    yield str(d)
    r = sandpit("ps", "--json", env={"SANDPIT_STATE": str(d)})
    if r.returncode == 0:
        for w in json.loads(r.stdout):
            sandpit("rm", "-f", w["name"], env={"SANDPIT_STATE": str(d)})
    # with no workspace left, gc also drops the spare disk images (and
    # their loop devices, docs/disk.md)
    sandpit("gc", env={"SANDPIT_STATE": str(d)})


def sp(state, *args, **kw):
    """sandpit with SANDPIT_STATE set to the test's state directory."""
    env = dict(kw.pop("env", {}) or {})
    env["SANDPIT_STATE"] = state
    return sandpit(*args, env=env, **kw)


def create(state, name, *flags):
    """Create a workspace and check it printed its name."""
    r = sp(state, "create", name, "-q", *flags)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == name
    return name


def start_serve(state, path, *args, stderr=subprocess.DEVNULL):
    """`sandpit serve --socket PATH ARGS...` with SANDPIT_STATE=state,
    returned once its socket is there (the Popen; the caller stops it)."""
    p = subprocess.Popen([SANDPIT, "serve", "--socket", path, *args],
                         env=dict(os.environ, SANDPIT_STATE=state),
                         stderr=stderr)
    for _ in range(300):
        if os.path.exists(path) or p.poll() is not None:
            break
        time.sleep(0.01)
    assert os.path.exists(path), (p.stderr.read() if stderr == subprocess.PIPE
                                  and p.poll() is not None else "no socket")
    return p
