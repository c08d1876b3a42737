"""Fixtures for the packaging suite: the man pages and shell completions
against the real binary (SANDPIT_BIN), from the source tree."""
import os
import subprocess

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SANDPIT = os.environ.get("SANDPIT_BIN", os.path.join(ROOT, "build", "sandpit"))


@pytest.fixture
def state(tmp_path):
    """A private state dir with a workspace "alpha" holding the snapshots
    "s-one" and "s-two", and a workspace "beta"; removed afterwards."""
    d = str(tmp_path / "state")
    os.makedirs(d)
    env = dict(os.environ, SANDPIT_STATE=d)

    def sp(*a):
        r = subprocess.run([SANDPIT, *a], env=env, capture_output=True,
                           text=True, timeout=60)
        assert r.returncode == 0, (a, r.stderr)

    sp("create", "alpha", "--no-workspace")
    sp("create", "beta", "--no-workspace")
    sp("snapshot", "alpha", "s-one")
    sp("snapshot", "alpha", "s-two")
    yield d
    for w in ("alpha", "beta"):
        subprocess.run([SANDPIT, "rm", "-f", w], env=env, capture_output=True,
                       timeout=60)
