#!/usr/bin/env python3
"""What `tools/list` costs a model per tool profile (docs/mcp.md, "Tool
profiles"): starts `sandpit mcp --tools PROFILE` (SANDPIT_BIN, default
build/sandpit), initializes with 2025-11-25, asks tools/list and prints
the compact JSON's bytes and bytes/4 as tokens. Usage:
    python3 bench/mcp_tools_tokens.py [PROFILE...]   (default: core files full)
"""
import json
import os
import subprocess
import sys
import tempfile

BIN = os.environ.get("SANDPIT_BIN", os.path.join(os.path.dirname(__file__), "..", "build", "sandpit"))


def measure(profile):
    msgs = [
        {"jsonrpc": "2.0", "id": 1, "method": "initialize",
         "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                    "clientInfo": {"name": "bench", "version": "1"}}},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
    ]
    with tempfile.TemporaryDirectory() as state:
        p = subprocess.run([BIN, "mcp", "--tools", profile],
                           input="".join(json.dumps(m) + "\n" for m in msgs),
                           capture_output=True, text=True, timeout=60,
                           env=dict(os.environ, SANDPIT_STATE=state))
    for line in p.stdout.splitlines():
        m = json.loads(line)
        if m.get("id") == 2:
            size = len(json.dumps(m["result"], separators=(",", ":")))
            return len(m["result"]["tools"]), size
    raise SystemExit(f"{profile}: no tools/list answer: {p.stderr.strip()}")


for prof in sys.argv[1:] or ["core", "files", "full"]:
    n, size = measure(prof)
    print(f"{prof}: {n} tools, {size} bytes, ~{size // 4} tokens")
