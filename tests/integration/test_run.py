"""sandpit run: isolation facts checked from inside real sandboxes, exit and
signal codes, timeouts, fd leaks, policy files and flags."""
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time

import pytest

from conftest import IS_ROOT, PROBE, SANDPIT, run, sandpit, sp


def sh(script, ws, flags=(), **kw):
    return run("/bin/sh", "-c", script, flags=flags, cwd=ws, **kw)


# ---- namespaces -----------------------------------------------------------

def test_hostname_and_pid1(ws):
    r = sh("hostname; echo $$; cat /proc/1/comm", ws)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.split()
    assert lines[0] == "sandpit"
    # The command is not PID 1: a minimal init is.
    assert lines[1] == "2"
    assert lines[2] == "sandpit-init"


def test_custom_hostname(ws):
    r = sh("hostname", ws, flags=["--hostname", "box-1"])
    assert r.stdout.strip() == "box-1"


def test_only_loopback(ws):
    r = sh("cat /proc/net/dev | tail -n +3 | cut -d: -f1 | tr -d ' '", ws)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["lo"]
    r = sh("cat /sys/class/net/lo/operstate 2>/dev/null; "
           "grep -c . /proc/net/route", ws)
    # no routes but loopback's own (none in /proc/net/route)
    assert r.stdout.strip().endswith("1")


def test_process_isolation(ws):
    host = subprocess.Popen(["sleep", "30"])
    try:
        r = sh("ls /proc | grep -E '^[0-9]+$' | wc -l; "
               f"kill -0 {host.pid} 2>&1; echo rc=$?", ws)
        nprocs = int(r.stdout.split()[0])
        assert nprocs <= 5, r.stdout
        assert "rc=1" in r.stdout
    finally:
        host.kill()
        host.wait()


def test_ipc_isolation(ws):
    r = sh("cat /proc/sysvipc/shm | wc -l", ws)
    assert r.stdout.strip() == "1"  # header only


# ---- filesystem -----------------------------------------------------------

def test_host_paths_absent(ws):
    r = sh("for p in /root /home/sptest /var /run /var/run /mnt /srv "
           "/etc/shadow /boot /sys/class /sys/kernel /sys/block "
           "/sys/firmware /sys/devices/virtual; do "
           "test -e $p && echo present:$p; done; echo done", ws)
    assert r.returncode == 0
    assert r.stdout.strip() == "done", r.stdout
    # /sys holds the sandbox's cgroup view and the CPU topology only
    r = sh("ls /sys /sys/devices", ws)
    assert r.stdout.split() == ["/sys:", "devices", "fs", "/sys/devices:",
                                "system"], r.stdout


def test_no_host_sockets(ws):
    r = sh("find / -xdev -type s 2>/dev/null | head; "
           "find / -type s 2>/dev/null | grep -v '^/proc' | head", ws)
    assert r.stdout.strip() == ""


def test_system_dirs_read_only(ws):
    r = sh("for p in /usr/x /etc/x /bin/x /lib/x /x; do "
           "(echo hi > $p) 2>/dev/null && echo wrote:$p; done; echo done", ws)
    assert r.stdout.strip() == "done", r.stdout


def test_workspace_rw_and_cwd(ws):
    r = sh("pwd; echo data > out.txt", ws)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == str(ws)
    assert (ws / "out.txt").read_text() == "data\n"


def test_workspace_flag_and_ro(ws, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    os.chmod(other, 0o777)
    r = sh("pwd; echo x > f", ws, flags=["--workspace", str(other)])
    assert r.stdout.splitlines()[0] == str(other)
    assert (other / "f").exists()
    r = sh("echo x > g", ws, flags=["--workspace", str(other),
                                     "--workspace-ro"])
    assert r.returncode != 0
    assert "Read-only" in r.stderr
    assert not (other / "g").exists()


def test_tmp_home_xdg(ws):
    r = sh('echo "$HOME $TMPDIR $XDG_CONFIG_HOME $XDG_CACHE_HOME '
           '$XDG_STATE_HOME $XDG_DATA_HOME"; touch $HOME/a $TMPDIR/b '
           '$XDG_CONFIG_HOME/c $XDG_DATA_HOME/d && echo ok; '
           'ls -A $HOME/.config', ws)
    assert r.returncode == 0, r.stderr
    out = r.stdout.splitlines()
    assert out[0] == ("/home/sandpit /tmp /home/sandpit/.config "
                      "/home/sandpit/.cache /home/sandpit/.local/state "
                      "/home/sandpit/.local/share")
    assert out[1] == "ok"


def test_dev_minimal(ws):
    r = sh("ls /dev | sort | tr '\\n' ' '; echo; echo x > /dev/null && "
           "head -c 4 /dev/zero | wc -c; test -c /dev/pts/ptmx && echo pts", ws)
    names = r.stdout.splitlines()[0].split()
    assert set(names) == {"fd", "full", "null", "ptmx", "pts", "random",
                          "shm", "stderr", "stdin", "stdout", "tty",
                          "urandom", "zero"}
    assert r.stdout.splitlines()[1] == "4"
    assert "pts" in r.stdout


def test_ro_rw_tmpfs_hide(ws, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "secret").write_text("s")
    (data / "f").write_text("hello\n")
    os.chmod(data, 0o777)
    os.chmod(data / "f", 0o666)
    r = sh("cat /data/f; (echo x > /data/f) 2>/dev/null || echo ro; "
           "cat /data/secret 2>&1 | head -c 0; test -s /data/secret || "
           "echo hidden; df -k /scratch | tail -1 | awk '{print $2}'",
           ws, flags=["--ro", f"{data}:/data", "--tmpfs", "/scratch:2M",
                      "--hide", "/data/secret"])
    out = r.stdout.split()
    assert out[0] == "hello"
    assert "ro" in out and "hidden" in out
    assert out[-1] == "2048"
    r = sh("echo new > /rwdata/g", ws, flags=["--rw", f"{data}:/rwdata"])
    assert r.returncode == 0, r.stderr
    assert (data / "g").read_text() == "new\n"


def test_user_rule_replaces_default(ws, tmp_path):
    fake = tmp_path / "hosts"
    fake.write_text("127.0.0.1 sandpit-test-host\n")
    os.chmod(fake, 0o644)
    r = sh("cat /etc/hosts", ws, flags=["--ro", f"{fake}:/etc/hosts"])
    assert r.stdout == "127.0.0.1 sandpit-test-host\n"


def test_missing_user_path_is_error(ws):
    r = sh("true", ws, flags=["--ro", "/nonexistent/sp"])
    assert r.returncode == 125
    assert "/nonexistent/sp" in r.stderr
    assert r.stderr.count("\n") == 1


def test_relative_mount_path_is_error(ws):
    r = sh("true", ws, flags=["--ro", "relative/path"])
    assert r.returncode == 125
    assert "absolute" in r.stderr


def test_symlink_in_workspace_cannot_redirect_mount(ws, tmp_path):
    # A symlink planted in the workspace where a later mount goes must not
    # be followed to put the mount elsewhere.
    os.symlink("/etc", ws / "sub")
    data = tmp_path / "d"
    data.mkdir()
    r = sh("true", ws, flags=["--ro", f"{data}:{ws}/sub"])
    assert r.returncode == 125
    assert "sub" in r.stderr


# ---- process --------------------------------------------------------------

# The caps the sandbox's root keeps in its own user namespace when more
# than one id is mapped (launch.c SP_NS_CAPS: chown, dac_override, fowner,
# kill, setgid, setuid); none with one id (docs/security.md).
NS_CAPS = "00000000000000eb"


def mapped_ids(ws):
    r = sh("cat /proc/self/uid_map", ws)
    return sum(int(line.split()[2]) for line in r.stdout.splitlines())


def test_caps_and_nnp(ws):
    want = NS_CAPS if mapped_ids(ws) > 1 else "0000000000000000"
    r = sh("grep -E '^(Cap(Inh|Prm|Eff|Bnd|Amb)|NoNewPrivs|Seccomp):' "
           "/proc/self/status", ws)
    st = dict(line.split(":\t") for line in r.stdout.splitlines())
    for k in ("CapPrm", "CapEff", "CapBnd"):
        assert st[k] == want, (k, st[k])
    for k in ("CapInh", "CapAmb"):
        assert st[k] == "0000000000000000", (k, st[k])
    assert st["NoNewPrivs"] == "1"
    assert st["Seccomp"] == "2"
    # another uid inside has none at all
    r = sh("grep -E '^Cap(Prm|Eff)' /proc/self/status", ws,
           flags=["--uid", "1000", "--gid", "1000"])
    assert r.returncode == 0, r.stderr
    assert r.stdout.split()[1::2] == ["0000000000000000"] * 2


def test_caps_zero_for_root_inside_after_exec(ws):
    # uid 0 inside gains nothing beyond the namespace's set on execve, and
    # a process that drops to another uid keeps none across its exec
    want = NS_CAPS if mapped_ids(ws) > 1 else "0000000000000000"
    r = sh("exec /bin/sh -c 'grep CapEff /proc/self/status'", ws)
    assert r.stdout.strip().endswith(want)
    if want != NS_CAPS:
        return
    r = sh("setpriv --reuid 1000 --regid 1000 --clear-groups "
           "grep CapEff /proc/self/status", ws)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().endswith("0000000000000000")


def test_new_session(ws):
    r = sh("cat /proc/self/stat | cut -d' ' -f6,7", ws)
    sid, tty = r.stdout.split()
    assert sid == "2"       # the command leads its own session
    assert tty == "0"       # and has no controlling terminal


def test_no_fd_leak(ws):
    r = run("fds", flags=[], cwd=ws, probe=True, pass_fds=())
    assert r.returncode == 0, r.stderr
    assert sorted(int(x) for x in r.stdout.split()) == [0, 1, 2]


def test_no_fd_leak_even_if_caller_leaks(ws):
    rd, wr = os.pipe()
    os.set_inheritable(rd, True)
    try:
        r = subprocess.run([SANDPIT, "run", "-q", "--ro",
                            os.path.dirname(PROBE), "--", PROBE, "fds"],
                           cwd=ws, capture_output=True, text=True,
                           pass_fds=(rd,), timeout=30)
        assert sorted(int(x) for x in r.stdout.split()) == [0, 1, 2]
        r = subprocess.run([SANDPIT, "run", "-q", "--pass-fd", str(rd),
                            "--ro", os.path.dirname(PROBE), "--", PROBE,
                            "fds"], cwd=ws, capture_output=True, text=True,
                           pass_fds=(rd,), timeout=30)
        assert sorted(int(x) for x in r.stdout.split()) == [0, 1, 2, rd]
    finally:
        os.close(rd)
        os.close(wr)


def test_pass_fd_must_exist(ws):
    r = sh("true", ws, flags=["--pass-fd", "77"])
    assert r.returncode == 125
    assert "--pass-fd 77" in r.stderr


def test_cwd_and_uid(ws):
    r = sh("pwd; id -u; id -g", ws, flags=["--cwd", "/tmp", "--uid", "1000",
                                           "--gid", "1001"])
    assert r.stdout.split() == ["/tmp", "1000", "1001"]


def test_bad_cwd(ws):
    r = sh("true", ws, flags=["--cwd", "/nonexistent"])
    assert r.returncode == 125
    assert "working directory /nonexistent" in r.stderr


@pytest.mark.skipif(not IS_ROOT, reason="--no-userns needs root")
def test_no_userns_as_root(ws):
    r = sh("cat /proc/self/uid_map", ws, flags=["--no-userns"])
    assert r.stdout.split() == ["0", "0", "4294967295"]
    r = sh("id -u; grep CapEff /proc/self/status", ws,
           flags=["--no-userns", "--uid", "1000"])
    assert r.stdout.split()[0] == "1000"
    assert r.stdout.strip().endswith("0000000000000000")
    # The private HOME belongs to the sandbox's user.
    r = sh("touch $HOME/x $XDG_CONFIG_HOME/y && stat -c %u $HOME", ws,
           flags=["--no-userns", "--uid", "1000", "--gid", "1000"])
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "1000"


@pytest.mark.skipif(IS_ROOT, reason="the unprivileged path")
def test_no_userns_refused_unprivileged(ws):
    r = sh("true", ws, flags=["--no-userns"])
    assert r.returncode == 125
    assert "needs root" in r.stderr


def test_userns_maps_caller(ws):
    r = sh("cat /proc/self/uid_map", ws)
    lines = [line.split() for line in r.stdout.splitlines()]
    if IS_ROOT:
        # a range of its own, never host root (docs/security.md)
        assert len(lines) == 1
        inside, outside, count = lines[0]
        assert (inside, count) == ("0", "65536")
        assert int(outside) >= 65536
    else:
        # the caller is the sandbox's root; subordinate ids, if any, the rest
        inside, outside, count = lines[0]
        assert (inside, outside, count) == ("0", str(os.geteuid()), "1")
        assert all(int(o) != 0 for _, o, _ in lines)


# ---- environment ----------------------------------------------------------

def test_env_allowlist(ws):
    env = {"SECRET_TOKEN": "s3cret", "LANG": "C.UTF-8", "TERM": "dumb"}
    r = run("/usr/bin/env", cwd=ws, env=env)
    names = {line.split("=", 1)[0] for line in r.stdout.splitlines()}
    assert "SECRET_TOKEN" not in names
    assert "s3cret" not in r.stdout
    assert {"PATH", "LANG", "TERM", "HOME", "TMPDIR"} <= names
    assert names <= {"PATH", "LANG", "LANGUAGE", "TERM", "HOME", "TMPDIR",
                     "XDG_CONFIG_HOME", "XDG_CACHE_HOME", "XDG_STATE_HOME",
                     "XDG_DATA_HOME"} | {n for n in names
                                         if n.startswith("LC_")}


def test_env_set_pass_clear(ws):
    r = run("/usr/bin/env", cwd=ws, flags=["--env", "A=1=2", "--env-pass",
                                          "TOKEN", "--clear-env"],
            env={"TOKEN": "t", "LANG": "C"})
    env = dict(line.split("=", 1) for line in r.stdout.splitlines())
    assert env["A"] == "1=2"
    assert env["TOKEN"] == "t"
    assert "LANG" not in env
    r = run("true", cwd=ws, flags=["--env", "novalue"])
    assert r.returncode == 125
    assert "NAME=VALUE" in r.stderr


# ---- exit status ----------------------------------------------------------

@pytest.mark.parametrize("code", [0, 1, 42, 123, 255])
def test_exit_codes(ws, code):
    assert sh(f"exit {code}", ws).returncode == code


def test_signal_exit(ws):
    r = run("signal", "15", cwd=ws, probe=True)
    assert r.returncode == 128 + 15
    r = sh("kill -9 $$", ws)
    assert r.returncode == 137


def test_not_found_and_not_executable(ws, tmp_path):
    r = run("no-such-command-xyz", cwd=ws)
    assert r.returncode == 127
    assert r.stderr.strip() == "sandpit: no-such-command-xyz: command not found"
    (ws / "noexec.sh").write_text("#!/bin/sh\necho hi\n")
    os.chmod(ws / "noexec.sh", 0o644)
    r = run("./noexec.sh", cwd=ws)
    assert r.returncode == 126
    assert "cannot execute ./noexec.sh" in r.stderr
    r = run("/etc", cwd=ws)
    assert r.returncode == 126


def test_usage_errors(ws):
    r = sandpit("run", "--bogus-flag", "--", "true", cwd=ws)
    assert r.returncode == 125
    assert "--bogus-flag" in r.stderr
    r = sandpit("run", cwd=ws)
    assert r.returncode == 125
    assert "no command" in r.stderr
    r = sandpit("frobnicate")
    assert r.returncode == 125
    assert "unknown command" in r.stderr
    r = sandpit("run", "--memory", "lots", "--", "true", cwd=ws)
    assert r.returncode == 125
    assert "limits.memory" in r.stderr and "lots" in r.stderr


def test_timeout_kills_everything(ws):
    marker = ws / "pid"
    t0 = time.monotonic()
    r = run("orphan-sleeper", str(marker), cwd=ws, probe=True,
            flags=["--timeout", "1", "--kill-after", "1"])
    elapsed = time.monotonic() - t0
    assert r.returncode == 124
    assert "timed out" in r.stderr
    assert elapsed < 10
    # The grandchild (in its own session) is gone too: nothing of the
    # sandbox outlives it.
    out = subprocess.run(["pgrep", "-f", f"orphan-sleeper {marker}"],
                         capture_output=True, text=True)
    assert out.stdout.strip() == ""


def test_timeout_sigterm_then_sigkill(ws):
    # A command that ignores SIGTERM is SIGKILLed after --kill-after.
    t0 = time.monotonic()
    r = sh("trap '' TERM; while :; do sleep 0.1; done", ws,
           flags=["--timeout", "0.5", "--kill-after", "0.5"])
    assert r.returncode == 124
    assert time.monotonic() - t0 < 8


def test_signals_forwarded(ws):
    p = subprocess.Popen([SANDPIT, "run", "-q", "--", "/bin/sh", "-c",
                          "trap 'echo got-term; exit 3' TERM; "
                          "echo ready; while :; do sleep 0.05; done"],
                         cwd=ws, stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "ready"
    p.send_signal(signal.SIGTERM)
    out, _ = p.communicate(timeout=20)
    assert "got-term" in out
    assert p.returncode == 3


def test_dies_with_parent(ws):
    marker = ws / "pid"
    p = subprocess.Popen([SANDPIT, "run", "-q", "--ro",
                          os.path.dirname(PROBE), "--", PROBE,
                          "orphan-sleeper", str(marker)], cwd=ws)
    for _ in range(100):
        if marker.exists() and marker.read_text().strip():
            break
        time.sleep(0.05)
    p.kill()
    p.wait()
    time.sleep(0.5)
    out = subprocess.run(["pgrep", "-f", f"orphan-sleeper {marker}"],
                         capture_output=True, text=True)
    assert out.stdout.strip() == ""


def test_stdin_stdout_passthrough(ws):
    r = run("/bin/cat", cwd=ws, input="through the sandbox\n")
    assert r.stdout == "through the sandbox\n"


# ---- policy ---------------------------------------------------------------

def test_policy_file_and_flags_on_top(ws, tmp_path):
    pol = tmp_path / "p.json"
    pol.write_text(json.dumps({"hostname": "fromfile",
                               "env": {"A": "file", "B": "file"}}))
    os.chmod(pol, 0o644)
    r = sh('hostname; echo $A $B', ws,
           flags=["--policy", str(pol), "--env", "A=flag"])
    assert r.stdout.split() == ["fromfile", "flag", "file"]


def test_policy_errors_name_the_key(ws, tmp_path):
    pol = tmp_path / "p.json"
    for body, key in [({"limits": {"memroy": 1}}, "limits.memroy"),
                      ({"net": 5}, "\"net\""),
                      ({"mounts": [{"type": "ro"}]}, "mounts[0]")]:
        pol.write_text(json.dumps(body))
        os.chmod(pol, 0o644)
        r = sh("true", ws, flags=["--policy", str(pol)])
        assert r.returncode == 125
        assert key in r.stderr, r.stderr
        assert str(pol) in r.stderr
    pol.write_text("{broken")
    r = sh("true", ws, flags=["--policy", str(pol)])
    assert r.returncode == 125 and "invalid JSON" in r.stderr


def test_policy_show(ws):
    r = sandpit("policy", "show", "--memory", "64M", "--net", "host",
                cwd=ws)
    assert r.returncode == 0, r.stderr
    p = json.loads(r.stdout)
    assert p["limits"]["memory"] == 64 * 1024 * 1024
    assert p["limits"]["pids"] == 512
    assert p["net"] == "host"
    assert p["workspace"] == str(ws)
    assert p["landlock"] is True and p["seccomp"] is True
    assert "/usr" in p["system_paths_ro"]


def test_profiles(ws):
    r = sandpit("policy", "show", "--profile", "minimal", cwd=ws)
    p = json.loads(r.stdout)
    assert p["workspace_mode"] == "ro"
    r = sandpit("policy", "show", "--profile", "dev", "--pids", "9", cwd=ws)
    p = json.loads(r.stdout)
    assert p["allow_ptrace"] is True and p["limits"]["pids"] == 9
    r = sandpit("policy", "show", "--profile", "nope", cwd=ws)
    assert r.returncode == 125 and "no profile named" in r.stderr


def test_profiles_found_next_to_the_binary(ws):
    # Without SANDPIT_PROFILE_DIR and without an install, the profiles of
    # the source tree next to the build directory are used.
    r = sandpit("policy", "show", "--profile", "minimal", cwd=ws,
                env={"SANDPIT_PROFILE_DIR": ""})
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["workspace_mode"] == "ro"


def test_require_conflicts(ws):
    r = sh("true", ws, flags=["--no-seccomp", "--require", "seccomp"])
    assert r.returncode == 125 and "--require seccomp" in r.stderr
    r = sh("true", ws, flags=["--net", "host", "--require", "netns"])
    assert r.returncode == 125 and "--require netns" in r.stderr
    r = sh("true", ws, flags=["--require", "bogus"])
    assert r.returncode == 125 and "not a layer" in r.stderr


def test_net_host_warns(ws):
    r = sandpit("run", "--net", "host", "--", "true", cwd=ws)
    assert r.returncode == 0
    assert "warning" in r.stderr and "--net host" in r.stderr


def test_stats(ws, tmp_path):
    out = tmp_path / "stats.json"
    r = sh("head -c 1000000 /dev/zero > /dev/null", ws,
           flags=["--stats", "--stats-json", str(out)])
    assert r.returncode == 0
    assert "sandpit: stats: wall" in r.stderr
    st = json.loads(out.read_text())
    assert st["exit_status"] == 0
    assert st["wall_us"] > 0
    assert st["oom_killed"] is False


@pytest.mark.skipif(not IS_ROOT, reason="cgroup limits need root here")
def test_memory_limit_kill_reported(ws):
    r = sandpit("run", "--memory", "64M", "--", "/bin/sh", "-c",
                "head -c 512M /dev/zero | tail > /dev/null", cwd=ws)
    assert r.returncode == 137, r.stderr
    assert "sandpit: killed: out of memory (limit 64 MiB)" in r.stderr


@pytest.mark.skipif(IS_ROOT, reason="the unprivileged path")
def test_limits_unenforced_is_loud(ws):
    r = sandpit("run", "--", "true", cwd=ws)
    assert r.returncode == 0
    assert "not writable" in r.stderr or "NOT enforced" in r.stderr or \
        "not enforced" in r.stderr
    r = sandpit("run", "--require", "limits", "--", "true", cwd=ws)
    assert r.returncode == 125
    assert "--require limits" in r.stderr


def test_pid1_cmdline_hides_the_host_command(ws):
    """PID 1 is a fork of sandpit, not an exec: its /proc/1/cmdline (world
    readable) must not show the host's command line (paths, -e values)."""
    r = run("cat", "/proc/1/cmdline",
            flags=["--env", "SP_HIDDEN_TOKEN=hunter2", "--ro", str(ws)])
    assert r.returncode == 0, r.stderr
    assert r.stdout.rstrip("\0").split("\0")[0] == "sandpit-init", r.stdout
    assert "hunter2" not in r.stdout and str(ws) not in r.stdout
    assert "run" not in r.stdout


def test_host_path_pruned_to_what_exists_inside(tmp_path):
    # The caller's PATH is passed on, minus the entries that are not
    # directories inside (they name host paths, and each costs a failed
    # lookup per command) and repeats; a dir bound in stays; a PATH the
    # user sets is left as given (its dirs may appear later).
    tool = tmp_path / "toolbin-4d1c"
    tool.mkdir()
    (tool / "sp-tool").write_text("#!/bin/sh\necho tool-ran\n")
    (tool / "sp-tool").chmod(0o755)
    host_only = str(tmp_path / "host-only-bin-81aa")
    os.mkdir(host_only)
    path = ":".join([host_only, "/usr/bin", str(tool), "/nonexistent-9f",
                     "/usr/bin", "relative/bin", "/bin"])
    env = {"PATH": path}
    cwd = tmp_path / "cwd"  # run binds its cwd: keep host_only outside it
    cwd.mkdir()
    r = sandpit("run", "-q", "--ro", str(tool), "--", "/bin/sh", "-c",
                'echo "$PATH"; sp-tool', env=env, cwd=str(cwd))
    assert r.returncode == 0, r.stderr
    assert r.stdout == f"/usr/bin:{tool}:/bin\ntool-ran\n"
    r = sandpit("run", "-q", "--env", f"PATH={host_only}:/usr/bin", "--",
                "/bin/sh", "-c", 'echo "$PATH"', env=env, cwd=str(cwd))
    assert r.returncode == 0, r.stderr
    assert r.stdout == f"{host_only}:/usr/bin\n"


def test_workspace_host_path_pruned_but_exec_path_kept(state):
    env = {"PATH": "/opt/host-only-3b:/usr/bin:/bin:/usr/bin"}
    r = sp(state, "create", "pp", "-q", env=env)
    assert r.returncode == 0, r.stderr
    r = sp(state, "exec", "pp", "--", "/bin/sh", "-c", 'echo "$PATH"', env=env)
    assert r.stdout == "/usr/bin:/bin\n", r.stderr
    r = sp(state, "exec", "pp", "-e", "PATH=/workspace/later/bin:/bin", "--",
           "/bin/sh", "-c", 'echo "$PATH"')
    assert r.stdout == "/workspace/later/bin:/bin\n", r.stderr


@pytest.mark.skipif(not IS_ROOT, reason="makes cgroups beside sandpit's own: "
                    "needs write access to the caller's cgroup (root here)")
def test_cgroups_of_killed_sandpits_are_swept(tmp_path):
    # A `sandpit run` killed by SIGKILL cannot remove its cgroup; the next
    # sandpit that makes one removes such leftovers beside it: empty,
    # named sandpit-PID-N with PID gone, over a minute old. Others stay.
    line = [l for l in open("/proc/self/cgroup").read().splitlines()
            if l.split(":")[1] == "pids"]
    if not line:
        pytest.skip("no cgroup v1 pids hierarchy here")
    parent = "/sys/fs/cgroup/pids" + line[0].split(":", 2)[2]
    if not os.access(parent, os.W_OK):
        pytest.skip(f"{parent} is not writable")
    dead = subprocess.Popen(["true"])
    dead.wait()  # a pid that is gone
    old = time.time() - 120
    made = {}
    for key, name, age in (("stale", f"sandpit-{dead.pid}-7", old),
                           ("fresh", f"sandpit-{dead.pid}-8", None),
                           ("alive", f"sandpit-{os.getpid()}-9", old),
                           ("other", f"sandpit-{dead.pid}-x", old)):
        d = os.path.join(parent, name)
        os.mkdir(d)
        if age:
            os.utime(d, (age, age))
        made[key] = d
    try:
        r = sandpit("run", "-q", "--pids", "50", "--", "true", cwd=tmp_path)
        assert r.returncode == 0, r.stderr
        assert not os.path.exists(made["stale"])
        for k in ("fresh", "alive", "other"):
            assert os.path.isdir(made[k]), k
    finally:
        for d in made.values():
            if os.path.isdir(d):
                os.rmdir(d)


# ---- sources that would hand over the host (docs/policy.md) -----------------

@pytest.mark.parametrize("path,rule", [
    ("/", "root directory"), ("/proc", "is /proc"), ("/sys", "is /sys"),
    ("/dev", "is /dev"), ("/run", "is /run"), ("/etc", "is /etc"),
    ("/usr", "is /usr"), ("/boot", "is /boot"), ("/usr/share", "lies inside /usr"),
    ("/sys/fs/cgroup", "lies inside /sys"), ("/var/run", "/run")])
def test_system_dir_refused_as_workspace(path, rule):
    if not os.path.isdir(path):
        pytest.skip(path + " is not on this host")
    r = run("true", cwd=path)
    assert r.returncode == 125, r
    assert rule in r.stderr, r.stderr
    r = run("true", flags=["--workspace", path])
    assert r.returncode == 125, r


@pytest.mark.parametrize("path", ["/", "/proc", "/etc", "/usr/lib", "/dev"])
def test_system_dir_refused_as_rw(ws, path):
    r = run("true", flags=["--rw", path + ":/mnt/x"], cwd=ws)
    assert r.returncode == 125, r
    assert "--rw source" in r.stderr, r.stderr
    # Not even with the read-only opt-in.
    r = run("true", flags=["--allow-system-ro", "--rw", path + ":/mnt/x"],
            cwd=ws)
    assert r.returncode == 125, r


def test_symlink_to_system_dir_refused(ws, tmp_path):
    link = tmp_path / "innocent"
    link.symlink_to("/etc")
    r = run("true", cwd=ws, flags=["--rw", str(link) + ":/mnt/x"])
    assert r.returncode == 125
    assert "resolves to /etc" in r.stderr, r.stderr


def test_system_dir_ro_needs_opt_in(ws):
    r = run("true", flags=["--ro", "/etc:/mnt/hostetc"], cwd=ws)
    assert r.returncode == 125, r
    assert "--allow-system-ro" in r.stderr, r.stderr
    r = run("test", "-e", "/mnt/hostetc/passwd", cwd=ws,
            flags=["--allow-system-ro", "--ro", "/etc:/mnt/hostetc"])
    assert r.returncode == 0, r.stderr
    # A directory inside /etc is fine read-only, without the opt-in.
    r = run("true", flags=["--ro", "/etc/ssl:/mnt/ssl"], cwd=ws)
    assert r.returncode == 0, r.stderr


def test_kernel_fs_refused_by_type(ws):
    # /proc/self lies inside /proc, which a read-only bind may; the file
    # system type (procfs) is refused at launch without the opt-in.
    r = run("true", flags=["--ro", "/proc/self:/mnt/p"], cwd=ws)
    assert r.returncode == 125, r
    assert "proc file system" in r.stderr, r.stderr
    r = run("true", flags=["--allow-system-ro", "--ro", "/proc/self:/mnt/p"],
            cwd=ws)
    assert r.returncode == 0, r.stderr


def test_state_dir_refused(tmp_path, ws):
    state = tmp_path / "st"
    state.mkdir()
    env = {"SANDPIT_STATE": str(state)}
    for flags, cwd in [([], tmp_path), (["--rw", str(state)], ws),
                       (["--ro", str(state) + ":/mnt/s"], ws),
                       (["--allow-system-ro", "--ro",
                         str(state) + ":/mnt/s"], ws)]:
        r = run("true", flags=flags, cwd=cwd, env=env)
        assert r.returncode == 125, (flags, r)
        assert "state directory" in r.stderr, r.stderr
    # Control: the same workspace with the state elsewhere runs.
    elsewhere = tempfile.mkdtemp(prefix="sandpit-st-")
    try:
        r = run("true", cwd=tmp_path, env={"SANDPIT_STATE": elsewhere})
    finally:
        shutil.rmtree(elsewhere)
    assert r.returncode == 0, r.stderr
