"""The report (docs/report.md): `sandpit run --report`, what it says about
how a command ended, what it used and what the sandbox refused it, checked
field by field on real sandboxes; the summary line on stderr; a denial
storm that stays correct and bounded. Network tests aim only at loopback."""
import json
import os
import socket

import pytest

from conftest import IS_ROOT, PROBE, sandpit


def run_report(tmp_path, *cmd, flags=(), probe=False, quiet=True):
    # A read-only workspace is not ID-mapped (docs/security.md): it must be
    # open to the sandbox's ids, as pytest's 0700 tmp_path is not.
    os.chmod(tmp_path, 0o755)
    out = tmp_path / "report.json"
    fl = list(flags)
    if probe:
        fl += ["--ro", os.path.dirname(PROBE)]
        cmd = (PROBE, *cmd)
    r = sandpit("run", *(["-q"] if quiet else []), "--report", str(out),
                *fl, "--", *cmd, cwd=str(tmp_path), timeout=300)
    assert out.exists(), (r.returncode, r.stderr)
    rep = json.loads(out.read_text())
    return r, rep


def test_plain_exit_report(tmp_path):
    r, rep = run_report(tmp_path, "sh", "-c", "exit 3")
    assert r.returncode == 3
    assert rep["version"] == 1
    assert rep["command"] == ["sh", "-c", "exit 3"]
    assert rep["outcome"] == {"ended": "exit", "exit_code": 3}
    assert rep["denials"] == [] and rep["denials_total"] == 0
    res = rep["resources"]
    assert res["wall_ms"] > 0 and res["cpu_user_ms"] >= 0
    assert res["memory_peak_bytes"] > 0
    # what cannot be known says why
    for k in ("pids_peak", "disk_written_bytes"):
        if res[k] is None:
            assert res["unknown"][k]
    ly = rep["layers"]
    assert ly["seccomp"] == {"on": True, "filter": "default"}
    assert ly["network"] == "none"
    assert ly["user_namespace"] is True
    assert ly["landlock"]["on"] in (True, False)
    assert rep["observed"]["syscall"] == {"observed": True}
    assert rep["observed"]["network_proxy"]["observed"] is False
    assert rep["observed"]["network_direct"]["observed"] is False
    assert "network namespace" in rep["observed"]["network_direct"]["why"]
    assert rep["observed"]["file"]["observed"] is False
    assert "audit" in rep["observed"]["file"]["why"]
    # nothing refused, nothing failed: no summary line
    assert "sandbox:" not in r.stderr


def test_refused_syscall_reported_and_summarised(tmp_path):
    r, rep = run_report(tmp_path, "bpf", "3", probe=True, quiet=False)
    assert r.returncode == 0 and r.stdout == "ok\n"  # EPERM each time
    assert rep["denials"] == [{
        "kind": "syscall", "syscall": "bpf", "errno": "EPERM",
        "rule": "seccomp default deny list", "count": 3,
        "first_ms": rep["denials"][0]["first_ms"]}]
    assert rep["denials_total"] == 3 and rep["denials_dropped"] == 0
    # it succeeded: no summary
    assert "sandbox: syscall" not in r.stderr
    # it failed after a denial: one line per kind on stderr
    r = sandpit("run", "--ro", os.path.dirname(PROBE), "--", "sh", "-c",
                f"{PROBE} bpf 1; {PROBE} socket-packet; exit 1",
                cwd=str(tmp_path))
    assert r.returncode == 1
    assert "sandbox: syscall bpf refused (seccomp default deny list) and 1 " \
           "more syscall denial\n" in r.stderr, r.stderr
    # -q: quiet
    r = sandpit("run", "-q", "--ro", os.path.dirname(PROBE), "--", "sh", "-c",
                f"{PROBE} bpf 1; exit 1", cwd=str(tmp_path))
    assert r.returncode == 1 and "sandbox:" not in r.stderr


def test_socket_family_keeps_its_errno_and_arg(tmp_path):
    r, rep = run_report(tmp_path, "socket-packet", probe=True)
    assert r.stdout == "errno EAFNOSUPPORT\n"
    d = rep["denials"][0]
    assert d["syscall"] == "socket" and d["errno"] == "EAFNOSUPPORT"
    assert d["family"] == socket.AF_PACKET
    assert d["rule"] == "seccomp: socket family not allowed"


def test_denial_storm_stays_correct_and_bounded(tmp_path):
    """A million refused calls: each answered EPERM, the report one entry
    with the count, and no more."""
    r, rep = run_report(tmp_path, "bpf", "1000000", probe=True)
    assert r.returncode == 0 and r.stdout == "ok\n", r.stdout
    assert len(rep["denials"]) == 1
    assert rep["denials"][0]["count"] == 1000000
    assert rep["denials_total"] == 1000000


def test_distinct_denials_bounded(tmp_path):
    """More distinct denials than the table keeps: the rest are counted in
    denials_dropped (SP_MAX_REPORT_DENIALS = 64)."""
    code = ("import ctypes\n"
            "l = ctypes.CDLL(None, use_errno=True)\n"
            "for fam in range(17, 17 + 100):\n"
            "    l.socket(fam, 1, 0)\n")
    r, rep = run_report(tmp_path, "/usr/bin/python3", "-c", code)
    assert r.returncode == 0, r.stderr
    fams = [d for d in rep["denials"] if d["syscall"] == "socket"]
    assert len(rep["denials"]) == 64
    assert rep["denials_total"] == rep["denials_dropped"] + sum(
        d["count"] for d in rep["denials"])
    assert rep["denials_dropped"] >= 100 - len(fams)


def test_no_report_watches_nothing(tmp_path):
    r = sandpit("run", "--no-report", "--ro", os.path.dirname(PROBE), "--",
                "sh", "-c", f"{PROBE} bpf 2; exit 1", cwd=str(tmp_path))
    assert r.returncode == 1
    assert "sandbox:" not in r.stderr
    r = sandpit("run", "--no-report", "--report", "-", "--", "true",
                cwd=str(tmp_path))
    assert r.returncode == 125 and "conflict" in r.stderr


def test_report_to_stderr(tmp_path):
    r = sandpit("run", "-q", "--report", "-", "--", "true", cwd=str(tmp_path))
    assert r.returncode == 0
    rep = json.loads(r.stderr.strip().splitlines()[-1])
    assert rep["outcome"] == {"ended": "exit", "exit_code": 0}


def test_report_unwritable_path_is_an_error(tmp_path):
    r = sandpit("run", "-q", "--report", str(tmp_path / "no" / "r.json"),
                "--", "true", cwd=str(tmp_path))
    assert r.returncode == 125
    assert "--report" in r.stderr and "No such file" in r.stderr
    assert not (tmp_path / "no").exists()


def test_timeout_report(tmp_path):
    r, rep = run_report(tmp_path, "sleep", "30", flags=["--timeout", "0.5"])
    assert r.returncode == 124
    assert rep["outcome"]["ended"] == "timeout"
    assert rep["outcome"]["exit_code"] == 124
    assert rep["layers"]["timeout_s"] == 0.5


def test_read_only_write_not_observable_said_plainly(tmp_path):
    r, rep = run_report(tmp_path, "sh", "-c", "echo x > /usr/sp-report-x",
                        flags=["--workspace-ro"])
    assert r.returncode != 0
    assert rep["denials"] == []
    assert rep["observed"]["file"]["observed"] is False
    assert "EROFS" in rep["observed"]["file"]["why"]


def test_direct_connect_not_observable_said_plainly(tmp_path):
    r, rep = run_report(tmp_path, "connect-ip", "127.0.0.1", "9", probe=True)
    assert r.stdout == "errno ECONNREFUSED\n"
    assert rep["denials"] == []
    assert rep["observed"]["network_direct"]["observed"] is False


def test_proxy_refusal_reported(tmp_path):
    """A request through the proxy to a loopback address no rule names:
    refused, and the report names host, port and why."""
    lsn = socket.socket()
    lsn.bind(("127.0.0.1", 0))
    port = lsn.getsockname()[1]
    code = ("import socket\n"
            "s = socket.create_connection(('127.0.0.1', 3128))\n"
            f"s.sendall(b'CONNECT 127.0.0.2:{port} HTTP/1.1\\r\\n\\r\\n')\n"
            "print(s.makefile('rb').readline()[:12])\n")
    try:
        r, rep = run_report(tmp_path, "/usr/bin/python3", "-c", code,
                            flags=["--net", f"allow:localhost:{port}",
                                   "--net-allow-private"])
    finally:
        lsn.close()
    assert r.returncode == 0, r.stderr
    assert "403" in r.stdout
    d = rep["denials"]
    assert len(d) == 1, d
    assert d[0]["kind"] == "network" and d[0]["host"] == "127.0.0.2"
    assert d[0]["port"] == port and d[0]["status"] == 403
    assert d[0]["rule"].startswith("IP addresses are refused unless a rule "
                                   f"names them (allowed: localhost:{port}")
    assert d[0]["count"] == 1
    assert rep["layers"]["network"] == "allow"
    assert rep["observed"]["network_proxy"] == {"observed": True}


@pytest.mark.skipif(not IS_ROOT, reason="cgroup limits need root here")
def test_oom_report(tmp_path):
    r, rep = run_report(tmp_path, "sh", "-c",
                        "head -c 512M /dev/zero | tail > /dev/null",
                        flags=["--memory", "64M"])
    assert r.returncode == 137
    o = rep["outcome"]
    assert o["ended"] == "oom" and o["limit_bytes"] == 64 << 20
    assert o["exit_code"] == 137 and o["signal"] == 9
    assert o["text"] == "killed: out of memory (limit 64 MiB)"
    assert rep["resources"]["memory_peak_bytes"] >= 32 << 20
    assert rep["layers"]["memory_limit_bytes"] == 64 << 20


@pytest.mark.skipif(not IS_ROOT, reason="cgroup limits need root here")
def test_pids_report(tmp_path):
    r, rep = run_report(tmp_path, "sh", "-c",
                        "for i in $(seq 20); do sleep 5 & done; wait",
                        flags=["--pids", "5", "--timeout", "20"])
    assert r.returncode != 0
    o = rep["outcome"]
    assert o["ended"] == "pids", o
    assert o["refused_forks"] >= 1 and o["limit"] == 5
    assert o["text"].startswith("failed: the process limit refused ")


@pytest.mark.skipif(IS_ROOT, reason="the unprivileged path")
def test_limits_unenforced_said_in_report(tmp_path):
    r, rep = run_report(tmp_path, "true")
    assert r.returncode == 0
    assert rep["layers"]["limits"].startswith("no cgroup")
    assert rep["resources"]["pids_peak"] is None
    assert rep["resources"]["unknown"]["pids_peak"]


# ---- workspaces: exec, serve, mcp, the denial log --------------------------

import platform  # noqa: E402
import subprocess  # noqa: E402

from conftest import create, sp, start_serve  # noqa: E402

# bpf(2) through ctypes, for workspaces made by serve/mcp (no probe there)
BPF_PY = ("import ctypes; l = ctypes.CDLL(None, use_errno=True); "
          "r = l.syscall(321, 0, 0, 0); "
          "print(r, ctypes.get_errno()); raise SystemExit(3)")
x86_64 = pytest.mark.skipif(platform.machine() != "x86_64",
                            reason="bpf is syscall 321 on x86_64 only")


def test_exec_report_fields(state, tmp_path):
    pd = os.path.dirname(PROBE)
    create(state, "r1", "--ro", pd)
    out = tmp_path / "rep.json"
    r = sp(state, "exec", "r1", "--report", str(out), "--", "sh", "-c",
           f"{PROBE} bpf 2; {PROBE} socket-packet; exit 4")
    assert r.returncode == 4
    assert r.stdout == "ok\nerrno EAFNOSUPPORT\n"
    # failed after denials: one line per kind on stderr
    assert "sandbox: syscall bpf refused (seccomp default deny list) and 1 " \
           "more syscall denial\n" in r.stderr, r.stderr
    rep = json.loads(out.read_text())
    assert rep["command"] == ["sh", "-c",
                              f"{PROBE} bpf 2; {PROBE} socket-packet; exit 4"]
    assert rep["outcome"] == {"ended": "exit", "exit_code": 4}
    d = rep["denials"]
    assert [(x["syscall"], x["errno"], x["count"]) for x in d] == [
        ("bpf", "EPERM", 2), ("socket", "EAFNOSUPPORT", 1)]
    assert d[1]["family"] == socket.AF_PACKET
    assert rep["denials_total"] == 3 and rep["denials_dropped"] == 0
    assert rep["observed"]["syscall"] == {"observed": True}
    assert rep["resources"]["wall_ms"] > 0
    assert rep["resources"]["memory_peak_bytes"] > 0
    assert rep["resources"]["pids_peak"] is None
    assert "shared" in rep["resources"]["unknown"]["pids_peak"]
    assert rep["layers"]["seccomp"] == {"on": True, "filter": "default"}
    # an exec of its own does not see another's denials
    r = sp(state, "exec", "r1", "--report", str(out), "--", "true")
    assert r.returncode == 0
    assert json.loads(out.read_text())["denials"] == []


def test_exec_denial_storm_bounded(state, tmp_path):
    pd = os.path.dirname(PROBE)
    create(state, "r2", "--ro", pd)
    out = tmp_path / "rep.json"
    r = sp(state, "exec", "r2", "--report", str(out), "--", PROBE, "bpf",
           "1000000", timeout=300)
    assert r.returncode == 0 and r.stdout == "ok\n", r.stdout + r.stderr
    rep = json.loads(out.read_text())
    assert [(x["syscall"], x["count"]) for x in rep["denials"]] == [
        ("bpf", 1000000)]
    # the denial log: one line for the whole storm
    r = sp(state, "audit", "r2", "--json")
    assert r.returncode == 0, r.stderr
    lines = [json.loads(l) for l in r.stdout.splitlines()]
    assert len(lines) == 1 and lines[0]["count"] == 1000000


def test_audit_survives_stop_start(state):
    pd = os.path.dirname(PROBE)
    create(state, "r3", "--ro", pd)
    assert sp(state, "exec", "r3", "--", PROBE, "bpf", "2").returncode == 0
    assert sp(state, "stop", "r3").returncode == 0
    r = sp(state, "audit", "r3")
    assert r.returncode == 0, r.stderr
    assert "syscall bpf refused x2 (seccomp default deny list) by: " \
           f"{PROBE} bpf 2\n" in r.stdout, r.stdout
    assert sp(state, "start", "r3").returncode == 0
    sp(state, "exec", "r3", "--", PROBE, "socket-packet")
    r = sp(state, "audit", "r3", "--json")
    es = [json.loads(l) for l in r.stdout.splitlines()]
    assert [(e["seq"], e["kind"], e.get("syscall")) for e in es] == [
        (1, "syscall", "bpf"), (2, "syscall", "socket")]
    assert es[1]["family"] == socket.AF_PACKET
    r = sp(state, "audit", "nosuch")
    assert r.returncode == 125 and "no workspace named nosuch" in r.stderr
    r = sp(state, "audit", "r3", "--bogus")
    assert r.returncode == 125 and "unexpected argument" in r.stderr


def test_audit_log_is_bounded(state):
    """Entries past the ring's size push the oldest out; the files stay
    under SP_AUDIT_LOG_BYTES (1 MiB) in all."""
    pd = os.path.dirname(PROBE)
    create(state, "r4", "--ro", pd)
    # 64 distinct denials per exec (a line each in the log), 100 execs:
    # over 1 MiB of lines
    code = ("import ctypes\n"
            "l = ctypes.CDLL(None)\n"
            "for fam in range(17, 17 + 64):\n"
            "    l.socket(fam, 1, 0)\n")
    for _ in range(100):
        assert sp(state, "exec", "r4", "--", "/usr/bin/python3", "-c",
                  code).returncode == 0
    d = os.path.join(state, "workspaces", "r4")
    size = sum(os.path.getsize(os.path.join(d, f)) for f in
               ("audit.jsonl", "audit.1.jsonl")
               if os.path.exists(os.path.join(d, f)))
    assert size <= 1024 * 1024
    assert os.path.exists(os.path.join(d, "audit.1.jsonl"))
    r = sp(state, "audit", "r4", "--json")
    es = [json.loads(l) for l in r.stdout.splitlines()]
    seqs = [e["seq"] for e in es]
    assert seqs == sorted(seqs) and seqs[-1] == 100 * 64 and seqs[0] > 1


@x86_64
def test_serve_exec_report_and_audit(state, tmp_path):
    from test_serve import Conn
    path = str(tmp_path / "s.sock")
    p = start_serve(state, path)
    try:
        c = Conn(path)
        assert c.call("workspace.create", {"name": "s1"})["state"] == "running"
        r = c.call("exec", {"workspace": "s1",
                            "command": ["/usr/bin/python3", "-c", BPF_PY]})
        assert r["exit_code"] == 3
        assert r["stdout"] == "-1 1\n"  # EPERM
        rep = r["report"]
        assert rep["outcome"] == {"ended": "exit", "exit_code": 3}
        assert rep["command"] == ["/usr/bin/python3", "-c", BPF_PY]
        assert [(d["syscall"], d["count"]) for d in rep["denials"]] == [
            ("bpf", 1)]
        a = c.call("workspace.audit", {"workspace": "s1"})
        assert [(e["seq"], e["syscall"]) for e in a["entries"]] == [(1, "bpf")]
        assert a["last"] == 1
        a = c.call("workspace.audit", {"workspace": "s1", "after": 1})
        assert a["entries"] == []
        e = c.call("workspace.audit", {"workspace": "s1", "max": 0}, raw=True)
        assert e["error"]["code"] == -32602, e
        c.call("workspace.delete", {"workspace": "s1"})
        c.close()
    finally:
        p.terminate()
        p.wait(timeout=10)


@x86_64
def test_mcp_exec_text_starts_with_denials(state):
    from test_mcp import Mcp
    m = Mcp(state)
    try:
        m.init()
        m.tool("workspace_create", name="m1")
        r = m.tool("exec", workspace="m1",
                   command=["/usr/bin/python3", "-c", BPF_PY])
        text = r["content"][0]["text"]
        assert text.startswith(
            "sandbox: syscall bpf refused (seccomp default deny list)\n"
            "exit code 3\n"), text
        rep = r["structuredContent"]["report"]
        assert rep["denials"][0]["syscall"] == "bpf"
        a = m.tool("workspace_audit", workspace="m1")
        assert a["structuredContent"]["entries"][0]["syscall"] == "bpf"
        # no denial: no sandbox line
        r = m.tool("exec", workspace="m1", command="exit 2")
        assert r["content"][0]["text"].startswith("exit code 2"), r
    finally:
        m.close()


def test_exec_changes(state, tmp_path):
    """--changes: the paths this exec created, changed and deleted in the
    workspace's copy-on-write layer, not those of execs before it."""
    create(state, "c1")
    assert sp(state, "exec", "c1", "--", "sh", "-c",
              "echo a > keep.txt; echo y > gone.txt; mkdir d; "
              "echo o > d/old").returncode == 0
    out = tmp_path / "rep.json"
    r = sp(state, "exec", "c1", "--changes", "--report", str(out), "--",
           "sh", "-c", "echo b >> keep.txt; echo n > d/new; rm gone.txt; "
           "mkdir e; rm /etc/hostname 2>/dev/null; true")
    assert r.returncode == 0, r.stderr
    ch = json.loads(out.read_text())["changes"]
    assert ch["created"] == ["/workspace/d/new", "/workspace/e"]
    assert ch["changed"] == ["/workspace/keep.txt"]
    assert ch["deleted"] == ["/workspace/gone.txt"]
    assert ch["truncated"] is False
    # without --changes: no "changes"
    r = sp(state, "exec", "c1", "--report", str(out), "--", "true")
    assert "changes" not in json.loads(out.read_text())
    # --changes alone is said to need --report
    r = sp(state, "exec", "c1", "--changes", "--", "true")
    assert r.returncode == 0 and "--changes goes with --report" in r.stderr


def test_serve_exec_changes_argument(state, tmp_path):
    from test_serve import Conn
    path = str(tmp_path / "s.sock")
    p = start_serve(state, path)
    try:
        c = Conn(path)
        c.call("workspace.create", {"name": "s2"})
        r = c.call("exec", {"workspace": "s2", "command": "echo x > n.txt",
                            "changes": True})
        assert r["report"]["changes"]["created"] == ["/workspace/n.txt"]
        e = c.call("exec", {"workspace": "s2", "command": "true",
                            "changes": "yes"}, raw=True)
        assert e["error"]["code"] == -32602
        assert "changes" in e["error"]["message"]
        c.call("workspace.delete", {"workspace": "s2"})
        c.close()
    finally:
        p.terminate()
        p.wait(timeout=10)


def test_audit_follow_prints_new_entries(state):
    import time
    pd = os.path.dirname(PROBE)
    create(state, "f1", "--ro", pd)
    from conftest import SANDPIT
    p = subprocess.Popen([SANDPIT, "audit", "f1", "--follow", "--json"],
                         stdout=subprocess.PIPE, text=True,
                         env=dict(os.environ, SANDPIT_STATE=state))
    try:
        time.sleep(0.3)  # it is following before the denial
        assert sp(state, "exec", "f1", "--", PROBE, "bpf", "5").returncode == 0
        line = p.stdout.readline()
        e = json.loads(line)
        assert (e["seq"], e["syscall"], e["count"]) == (1, "bpf", 5)
        assert p.poll() is None  # still following
    finally:
        p.terminate()
        p.wait(timeout=10)
