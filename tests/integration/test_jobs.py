"""Background execs (docs/workspaces.md, "Background execs") on the
command line: `exec --detach` prints a number at once, `jobs` lists,
`logs` reads (and follows) both streams, `wait` gives the exit code or
124 at its --timeout; their output rings are bounded and say what they
dropped; the count is bounded; bad arguments are refused by name. Real
workspaces, each test with its own SANDPIT_STATE."""
import json

from conftest import create, sp


def detach(state, ws, *cmd, flags=()):
    r = sp(state, "exec", ws, "--detach", *flags, "--", *cmd)
    assert r.returncode == 0, r.stderr
    return int(r.stdout.strip())


def test_detach_logs_wait_jobs(state):
    create(state, "bj")
    j = detach(state, "bj", "sh", "-c",
               "echo out; echo err >&2; while [ ! -e go ]; do sleep 0.05; done; "
               "echo more; exit 5")
    r = sp(state, "jobs", "bj")
    assert r.returncode == 0 and f"{j} " in r.stdout and "running" in r.stdout, r.stdout
    # Still running: wait gives up at its --timeout with 124, and says so.
    r = sp(state, "wait", "bj", str(j), "--timeout", "0.3")
    assert r.returncode == 124 and "still running" in r.stderr, r
    assert sp(state, "exec", "bj", "--", "touch", "go").returncode == 0
    r = sp(state, "logs", "bj", str(j), "--follow")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "out\nmore\n" and r.stderr == "err\n", r
    r = sp(state, "wait", "bj", str(j))
    assert r.returncode == 5, r
    assert sp(state, "logs", "bj", str(j), "--stderr").stdout == ""
    assert sp(state, "logs", "bj", str(j), "--stdout").stdout == "out\nmore\n"
    jobs = json.loads(sp(state, "jobs", "bj", "--json").stdout)
    mine = [x for x in jobs if x["job"] == j][0]
    assert mine["state"] == "exited" and mine["exit_code"] == 5, mine
    # A job's timeout kills it; wait reports how it ended.
    j2 = detach(state, "bj", "sleep", "60", flags=("--timeout", "0.5"))
    r = sp(state, "wait", "bj", str(j2))
    assert r.returncode == 128 + 15 and "timeout" in r.stderr, r
    st = [x for x in json.loads(sp(state, "jobs", "bj", "--json").stdout)
          if x["job"] == j2][0]
    assert st["timed_out"] is True, st


def test_bad_arguments_are_refused_by_name(state):
    create(state, "bk")
    for args, want in [
        (["wait", "bk", "x"], "background exec's number"),
        (["wait", "bk", "0"], "background exec's number"),
        (["wait", "bk", "77"], "no background exec 77"),
        (["logs", "bk", "77"], "no background exec 77"),
        (["wait", "bk", "1", "--timeout", "-1"], "--timeout"),
        (["logs", "bk", "1", "--stdout", "--stderr"], "give one or neither"),
        (["logs", "bk", "1", "--nope"], "unknown option"),
        (["jobs", "bk", "--nope"], "unknown option"),
        (["exec", "bk", "-i", "--detach", "--", "true"], "-i and --detach"),
        (["jobs", "nosuchws"], "nosuchws"),
    ]:
        r = sp(state, *args)
        assert r.returncode == 125 and want in r.stderr, (args, r.stderr)
    r = sp(state, "jobs", "bk")
    assert r.stdout.splitlines()[1:] == [], r.stdout


def test_rings_and_count_are_bounded(state):
    create(state, "bb")
    # 3 MiB into a 1 MiB ring: logs gives the newest MiB and says what
    # was dropped.
    j = detach(state, "bb", "sh", "-c", "head -c 3145728 /dev/zero | tr '\\0' a")
    assert sp(state, "wait", "bb", str(j)).returncode == 0
    r = sp(state, "logs", "bb", str(j), "--stdout")
    assert r.returncode == 0 and len(r.stdout) == 1 << 20, len(r.stdout)
    assert set(r.stdout) == {"a"} and "2097152 bytes of stdout were dropped" in r.stderr
    # 64 at once: the 64th start forgets the ended one; a 65th is refused
    # while none has ended.
    first = [detach(state, "bb", "sleep", "600") for _ in range(64)]
    jobs = json.loads(sp(state, "jobs", "bb", "--json").stdout)
    assert len(jobs) == 64 and j not in [x["job"] for x in jobs], len(jobs)
    r = sp(state, "exec", "bb", "--detach", "--", "true")
    assert r.returncode == 125 and "too many background execs" in r.stderr, r
    # Once one ends, the oldest ended one makes room.
    assert sp(state, "exec", "bb", "--", "pkill", "-x", "-o", "sleep").returncode == 0
    r = sp(state, "wait", "bb", str(first[0]), "--timeout", "20")
    assert r.returncode == 128 + 15, r
    j2 = detach(state, "bb", "true")
    jobs = [x["job"] for x in json.loads(sp(state, "jobs", "bb", "--json").stdout)]
    assert first[0] not in jobs and j2 in jobs and len(jobs) == 64


def _on_pty(state, args, rows, cols, timeout=60):
    """Run sandpit ARGS with a terminal of rows x cols as its stdin,
    stdout and stderr; returns (exit code, what it wrote)."""
    import fcntl
    import os
    import pty
    import struct
    import subprocess
    import termios
    from conftest import SANDPIT
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    env = dict(os.environ, SANDPIT_STATE=state, TERM="xterm")
    p = subprocess.Popen([SANDPIT, *args], stdin=slave, stdout=slave,
                         stderr=slave, env=env, start_new_session=True)
    os.close(slave)
    out = b""
    while True:
        try:
            b = os.read(master, 65536)
        except OSError:
            break
        if not b:
            break
        out += b
    rc = p.wait(timeout=timeout)
    os.close(master)
    return rc, out.decode(errors="replace")


def test_exec_tty(state):
    """exec -t: the command runs on a PTY sized as the caller's terminal,
    exits with its own status, and leaves no shell behind."""
    create(state, "bt")
    rc, out = _on_pty(state, ["exec", "bt", "-t", "--", "sh", "-c",
                              "test -t 0 && test -t 1 && echo on-a-tty; "
                              "stty size; echo $TERM; exit 3"], 33, 101)
    assert rc == 3, out
    assert "on-a-tty" in out and "33 101" in out and "xterm" in out, out
    r = sp(state, "shells", "bt")
    assert r.returncode == 0 and r.stdout.splitlines()[1:] == [], r.stdout
    # Without a terminal it still runs on one inside (24 x 80).
    r = sp(state, "exec", "bt", "--tty", "--", "sh", "-c", "test -t 1 && stty size")
    assert r.returncode == 0 and r.stdout.strip() == "24 80", r
    for flags, want in [(["-t", "-d"], "--detach"), (["-t", "--timeout", "5"], "--timeout"),
                        (["-t", "--secret-env", "X"], "--secret-env")]:
        r = sp(state, "exec", "bt", *flags, "--", "true")
        assert r.returncode == 125 and want in r.stderr, (flags, r.stderr)
