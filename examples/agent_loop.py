#!/usr/bin/env python3
"""An agent's tool loop on sandpit, the part an agent framework would copy.

The tools an LLM is offered (run a command, write, read and patch files,
snapshot and roll back) are thin wrappers around one workspace of the
Python client. Here a scripted "model" stands in for the LLM: it writes a
module and its test, runs the test, sees it fail, patches the bug and runs
it again. Every command runs in the sandbox: no network, no host files.

    pip install ./python            # in a venv; or PYTHONPATH=python
    python3 examples/agent_loop.py  # starts a private `sandpit serve`
    SANDPIT_SOCKET=/run/sandpit.sock python3 examples/agent_loop.py
"""
import json
import sys

import sandpit


def make_tools(ws):
    """name -> (description, function taking the model's JSON arguments)."""
    def run_command(command, timeout=60):
        r = ws.exec(command, timeout=timeout,
                    on_stdout=lambda s: print(s, end=""),   # live, for the human
                    on_stderr=lambda s: print(s, end="", file=sys.stderr))
        return {"exit_code": r.exit_code, "stdout": r.stdout[-4000:],
                "stderr": r.stderr[-4000:], "timed_out": r.timed_out}

    def write_file(path, content):
        return {"bytes": ws.files.write(path, content)}

    def read_file(path):
        return {"content": ws.files.read(path)}

    def apply_patch(patch):
        try:
            return ws.files.patch(patch)
        except sandpit.PatchFailed as e:   # the model gets the reason back
            return {"error": e.message, "report": e.report}

    def checkpoint(name):
        return ws.snapshot(name)

    def rollback(name):
        return ws.restore(name)

    return {
        "run_command": ("Run a shell command in the sandbox", run_command),
        "write_file": ("Write a file under /workspace", write_file),
        "read_file": ("Read a file under /workspace", read_file),
        "apply_patch": ("Apply a unified diff", apply_patch),
        "checkpoint": ("Snapshot the workspace's files", checkpoint),
        "rollback": ("Restore a snapshot", rollback),
    }


# What an LLM would answer, one tool call per turn. (python3 -B: a file
# rewritten within the same second, same size, would otherwise run from
# its stale .pyc.)
SCRIPT = [
    ("write_file", {"path": "calc.py", "content": "def add(a, b):\n    return a - b\n"}),
    ("write_file", {"path": "test_calc.py", "content":
                    "from calc import add\nassert add(2, 3) == 5, add(2, 3)\nprint('tests passed')\n"}),
    ("checkpoint", {"name": "first-draft"}),
    ("run_command", {"command": "python3 -B test_calc.py"}),
    ("apply_patch", {"patch": "--- a/calc.py\n+++ b/calc.py\n@@ -1,2 +1,2 @@\n"
                              " def add(a, b):\n-    return a - b\n+    return a + b\n"}),
    ("run_command", {"command": "python3 -B test_calc.py"}),
]


def main():
    with sandpit.Sandpit() as sb, sb.create(memory="512M", timeout=120) as ws:
        tools = make_tools(ws)
        for name, args in SCRIPT:
            print(f"--> {name}({json.dumps(args)[:70]})")
            try:
                result = tools[name][1](**args)
            except sandpit.SandpitError as e:   # typed: e.code, e.kind
                result = {"error": e.message, "kind": e.kind}
            print(f"<-- {json.dumps(result)[:200]}")
        last = tools["run_command"][1]("python3 -B test_calc.py")
        return 0 if last["exit_code"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
