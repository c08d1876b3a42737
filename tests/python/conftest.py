"""The Python client (python/sandpit) against a real `sandpit serve`
(SANDPIT_BIN): each test gets a private server with its own state dir."""
import os
import sys

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "python"))
SANDPIT = os.environ.get("SANDPIT_BIN", os.path.join(ROOT, "build", "sandpit"))

import sandpit  # noqa: E402  (python/, not an installed copy)


@pytest.fixture
def sb():
    with sandpit.Sandpit(sandpit_bin=SANDPIT) as s:
        yield s
