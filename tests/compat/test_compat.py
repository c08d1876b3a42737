"""The compatibility suite: real tools run on the host, in `sandpit run` and
in a workspace, and their results compared. Every difference left has a
reason in docs/compatibility.md (KNOWN below is the same list). Runs as
root and as an ordinary user (scripts/test), in a few minutes.

Environment: SANDPIT_BIN (the sandpit binary). Nothing here uses the
network: the pip install is of a local directory, the npm project's tests
start their own HTTP server on the sandbox's loopback.
"""

import json
import os
import shutil
import subprocess
import tarfile
import tempfile
import xml.etree.ElementTree as ET

import pytest

SANDPIT = os.path.abspath(os.environ.get("SANDPIT_BIN", "build/sandpit"))
ROOT = os.geteuid() == 0
TIMEOUT = 300

pytestmark = pytest.mark.skipif(
    not os.access(SANDPIT, os.X_OK), reason="set SANDPIT_BIN to the binary")

# Fixed identities and dates: git's hashes come out the same everywhere.
ENV = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "LANG": "C.UTF-8",
    "GIT_AUTHOR_NAME": "Compat", "GIT_AUTHOR_EMAIL": "compat@example.invalid",
    "GIT_COMMITTER_NAME": "Compat",
    "GIT_COMMITTER_EMAIL": "compat@example.invalid",
    "GIT_AUTHOR_DATE": "2026-01-01T00:00:00Z",
    "GIT_COMMITTER_DATE": "2026-01-01T00:00:00Z",
    "GIT_CONFIG_NOSYSTEM": "1",
    "NO_UPDATE_NOTIFIER": "1", "npm_config_update_notifier": "false",
    "npm_config_audit": "false", "npm_config_fund": "false",
    "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INDEX": "1",
    "PYTHONDONTWRITEBYTECODE": "1",
}

# ---- the three places ---------------------------------------------------


def _home():
    d = tempfile.mkdtemp(prefix="compat-home.")
    os.chmod(d, 0o755)
    return d


def on_host(script, cwd):
    home = _home()
    try:
        env = dict(ENV, HOME=home, TMPDIR=tempfile.gettempdir())
        return subprocess.run(["/bin/sh", "-c", script], cwd=cwd, env=env,
                              capture_output=True, text=True, timeout=TIMEOUT)
    finally:
        shutil.rmtree(home, ignore_errors=True)


def _env_flags():
    out = []
    for k, v in ENV.items():
        out += ["--env", f"{k}={v}"]
    return out


def in_run(script, cwd, flags=()):
    cmd = [SANDPIT, "run", "-q", "--workspace", cwd, *_env_flags(), *flags,
           "--", "/bin/sh", "-c", script]
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True,
                          timeout=TIMEOUT)


class Workspace:
    def __init__(self, state, name):
        self.state, self.name = state, name

    def env(self):
        return dict(os.environ, SANDPIT_STATE=self.state)

    def sandpit(self, *args, **kw):
        return subprocess.run([SANDPIT, *args], env=self.env(),
                              capture_output=True, text=True,
                              timeout=TIMEOUT, **kw)

    def run(self, script, sub):
        ev = []
        for k, v in ENV.items():
            ev += ["-e", f"{k}={v}"]
        return self.sandpit("exec", self.name, *ev, "-w",
                            f"/workspace/{sub}", "--", "/bin/sh", "-c",
                            script)


@pytest.fixture(scope="module")
def seed(tmp_path_factory):
    """Every project, laid out once: copied for the host and for each
    `run`, and the workspace's --from."""
    d = tmp_path_factory.mktemp("seed")
    os.chmod(d.parent, 0o755)
    make_projects(str(d))
    for root, dirs, files in os.walk(d):
        os.chmod(root, 0o755)
        for f in files:
            os.chmod(os.path.join(root, f), 0o644)
    return str(d)


@pytest.fixture(scope="module")
def ws(tmp_path_factory, seed):
    state = str(tmp_path_factory.mktemp("state"))
    os.chmod(os.path.dirname(state), 0o755)
    w = Workspace(state, "compat")
    r = w.sandpit("create", "compat", "-q", "--from", seed)
    assert r.returncode == 0, r.stderr
    yield w
    w.sandpit("rm", "-f", "compat")


def fresh(seed, sub, tmp_path, tag):
    """A writable copy of project `sub` for one place."""
    d = tmp_path / f"{tag}-{sub}"
    shutil.copytree(os.path.join(seed, sub), d)
    os.chmod(tmp_path, 0o755)
    for root, dirs, files in os.walk(d):
        os.chmod(root, 0o777)
    return str(d)


def three(seed, ws, sub, script, tmp_path, flags=()):
    """The script's results on the host, in run, in the workspace."""
    h = on_host(script, fresh(seed, sub, tmp_path, "host"))
    r = in_run(script, fresh(seed, sub, tmp_path, "run"), flags)
    w = ws.run(script, sub)
    return h, r, w


def same(h, r, w):
    for name, res in (("run", r), ("workspace", w)):
        assert (res.returncode, res.stdout) == (h.returncode, h.stdout), \
            (name, res.returncode, res.stdout[-3000:], res.stderr[-3000:],
             "host:", h.returncode, h.stdout[-3000:], h.stderr[-2000:])


def single_id_inside(ws):
    """True while the sandbox maps one id only (no id range: the other
    ids of a tarball or of chown cannot exist inside)."""
    r = ws.sandpit("exec", ws.name, "--", "cat", "/proc/self/uid_map")
    lines = [ln.split() for ln in r.stdout.splitlines() if ln.strip()]
    return sum(int(ln[2]) for ln in lines) <= 1


# ---- the projects -----------------------------------------------------------

C_MAIN = r"""
#include <stdio.h>
#include "lib.h"
int main(void) { printf("sum=%d fib=%ld\n", add(20, 22), fib(40)); return 0; }
"""
C_LIB = r"""
#include "lib.h"
int add(int a, int b) { return a + b; }
long fib(int n) { long a = 0, b = 1; while (n--) { long t = a + b; a = b; b = t; } return a; }
"""
MAKEFILE = """\
CFLAGS = -O2 -Wall -Werror
prog: main.o lib.o
\t$(CC) -o $@ main.o lib.o
%.o: %.c lib.h
\t$(CC) $(CFLAGS) -c $<
clean:
\trm -f prog *.o
"""
SETUP_PY = """\
from setuptools import setup
setup(name="compatpkg", version="1.0", py_modules=["compatpkg"],
      entry_points={"console_scripts": ["compat-hello=compatpkg:main"]})
"""
PKG_PY = """\
def main():
    import sys
    print("hello from", __name__, sys.version_info[:2] >= (3, 8))
"""
NPM_PACKAGE = {"name": "compat-npm", "version": "1.0.0", "private": True,
               "scripts": {"test": "node test/run.js"}}
NPM_TEST = r"""
const http = require('http');
const assert = require('assert');
const server = http.createServer((req, res) => {
  res.setHeader('content-type', 'application/json');
  res.end(JSON.stringify({path: req.url, method: req.method}));
});
server.listen(0, '127.0.0.1', async () => {
  const port = server.address().port;
  const get = (p) => new Promise((ok, bad) => {
    http.get({host: '127.0.0.1', port, path: p}, (res) => {
      let b = ''; res.on('data', (c) => b += c); res.on('end', () => ok(JSON.parse(b)));
    }).on('error', bad);
  });
  for (const p of ['/a', '/b?x=1', '/c/d']) {
    const got = await get(p);
    assert.deepStrictEqual(got, {path: p, method: 'GET'});
    console.log('ok', p);
  }
  const many = await Promise.all([...Array(20).keys()].map((i) => get('/n' + i)));
  assert.strictEqual(many.length, 20);
  console.log('ok 20 at once');
  server.close();
});
"""
SQL = """\
PRAGMA journal_mode=WAL;
CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT, n REAL);
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 5000)
INSERT INTO t(name, n) SELECT 'row' || x, x * 1.5 FROM c;
CREATE INDEX t_name ON t(name);
SELECT count(*), sum(n), max(name) FROM t;
SELECT name FROM t WHERE name LIKE 'row49%' ORDER BY id LIMIT 3;
PRAGMA integrity_check;
"""


def make_projects(d):
    def w(rel, text):
        p = os.path.join(d, rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "w") as f:
            f.write(text)
    w("c/main.c", C_MAIN)
    w("c/lib.c", C_LIB)
    w("c/lib.h", "int add(int, int);\nlong fib(int);\n")
    w("c/Makefile", MAKEFILE)
    w("git/README", "compat\n")
    w("pip/pkg/setup.py", SETUP_PY)
    w("pip/pkg/compatpkg.py", PKG_PY)
    w("npm/package.json", json.dumps(NPM_PACKAGE, indent=2) + "\n")
    w("npm/test/run.js", NPM_TEST)
    w("sql/script.sql", SQL)
    w("py/.keep", "")
    w("tar/.keep", "")


# ---- the tools ----------------------------------------------------------------

def test_make_gcc(seed, ws, tmp_path):
    h, r, w = three(seed, ws, "c", "make -s -j2 && ./prog && make -s clean "
                    "&& ls", tmp_path)
    assert h.returncode == 0 and "sum=42 fib=102334155" in h.stdout, h.stderr
    same(h, r, w)


def test_git(seed, ws, tmp_path):
    script = ("git init -q -b main . && git add README && "
              "git commit -qm first && git checkout -qb topic && "
              "echo more >> README && git commit -qam second && "
              "git checkout -q main && git merge -q --no-ff -m merge topic && "
              "git log --format='%H %s' && git status --porcelain && "
              "git gc -q && git fsck --no-progress 2>&1 && git describe "
              "--always && git clone -q . ../clone-$$ && "
              "git -C ../clone-$$ log --oneline | wc -l && "
              "rm -rf ../clone-$$")
    h, r, w = three(seed, ws, "git", script, tmp_path)
    assert h.returncode == 0 and "merge" in h.stdout, h.stderr
    same(h, r, w)


def test_venv_and_local_pip_install(seed, ws, tmp_path):
    script = ("python3 -m venv v && v/bin/pip install -q --no-index "
              "--no-build-isolation ./pkg && v/bin/compat-hello && "
              "v/bin/python -c 'import compatpkg; print(compatpkg.__name__)'"
              " && v/bin/pip list --format=freeze 2>/dev/null | "
              "grep -c compatpkg")
    h, r, w = three(seed, ws, "pip", script, tmp_path)
    if h.returncode != 0 and "setuptools" in h.stderr:
        pytest.skip("this host's venv has no setuptools: " + h.stderr[-200:])
    assert h.returncode == 0, h.stderr
    assert "hello from compatpkg True" in h.stdout
    same(h, r, w)


@pytest.mark.skipif(not shutil.which("npm"), reason="needs node and npm")
def test_npm_project_with_local_http_server(seed, ws, tmp_path):
    h, r, w = three(seed, ws, "npm", "npm test --silent", tmp_path)
    assert h.returncode == 0 and "ok 20 at once" in h.stdout, h.stderr
    same(h, r, w)


def test_sqlite3(seed, ws, tmp_path):
    script = ("sqlite3 db < script.sql && sqlite3 db 'PRAGMA journal_mode' "
              "&& (sqlite3 db 'BEGIN IMMEDIATE; SELECT 1; SELECT "
              "sqlite_version() > \"3\"; COMMIT;')")
    h, r, w = three(seed, ws, "sql", script, tmp_path)
    assert h.returncode == 0 and "5000|" in h.stdout, h.stderr
    same(h, r, w)


def _tarball(path):
    """Files owned by three users and two groups, as any source tarball."""
    with tarfile.open(path, "w:gz") as t:
        for name, uid, gid in (("pkg/a", 1000, 1000), ("pkg/b", 1001, 100),
                               ("pkg/c", 0, 0)):
            data = name.encode()
            ti = tarfile.TarInfo(name)
            ti.size, ti.uid, ti.gid, ti.mode = len(data), uid, gid, 0o644
            import io
            t.addfile(ti, io.BytesIO(data))


def test_tar_of_files_owned_by_several_users(seed, ws, tmp_path):
    """As root, tar restores the owners; inside, the sandbox is root: it
    must be able to (once a range of ids is mapped, the other engineer's
    work: until then the single-id mapping makes it fail, xfail)."""
    src = tmp_path / "src.tgz"
    _tarball(str(src))
    os.chmod(src, 0o644)
    script = ("tar xzf ../src.tgz && stat -c '%n %u %g' pkg/a pkg/b pkg/c")
    h = on_host(script, fresh(seed, "tar", tmp_path, "host"))  # ../src.tgz
    rdir = fresh(seed, "tar", tmp_path, "run")
    # run's workspace is the project dir: the archive goes inside it
    shutil.copy(src, os.path.join(rdir, "src.tgz"))
    r = in_run(script.replace("../src.tgz", "src.tgz"), rdir)
    cp = ws.sandpit("cp", str(src), f"{ws.name}:tar/src.tgz")
    assert cp.returncode == 0, cp.stderr
    w = ws.run(script.replace("../src.tgz", "src.tgz"), "tar")
    assert h.returncode == 0, h.stderr
    want = "pkg/a 1000 1000\npkg/b 1001 100\npkg/c 0 0\n"
    if ROOT:
        assert h.stdout == want
    if single_id_inside(ws):
        # Documented: "Cannot change ownership to uid 1000" while only one
        # id is mapped (docs/compatibility.md).
        assert r.returncode != 0 and "Cannot change ownership" in r.stderr
        pytest.xfail("one id mapped inside: tar cannot give files to other "
                     "users (docs/compatibility.md)")
    for res in (r, w):
        assert (res.returncode, res.stdout) == (0, want), res


@pytest.mark.skipif(not shutil.which("tmux"), reason="needs tmux")
def test_tmux_in_sandpit_shell(ws, tmp_path):
    """tmux inside a `sandpit shell`: a server, a session on the shell's
    pty, keys sent, the pane read back; the same under `script` on the
    host."""
    script = ("tmux -S /tmp/compat-tmux new-session -d -x 100 -y 30 "
              "'sh -c \"printf in-tmux-%s\\\\\\\\n $((6*7)); exec sh\"' && "
              "sleep 0.5 && tmux -S /tmp/compat-tmux send-keys "
              "'echo keys-$((2*3))' Enter && sleep 0.5 && "
              "tmux -S /tmp/compat-tmux capture-pane -p | grep -E "
              "'^(in-tmux|keys)-[0-9]+$'; "
              "tmux -S /tmp/compat-tmux kill-server; exit\n")
    env = dict(os.environ, SANDPIT_STATE=ws.state, TERM="xterm-256color")
    res = subprocess.run([SANDPIT, "shell", ws.name], input=script, env=env,
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, (res.stdout, res.stderr)
    inside = [ln.strip() for ln in res.stdout.replace("\r", "").split("\n")
              if ln.strip() in ("in-tmux-42", "keys-6")]
    host = subprocess.run(["script", "-qfec", script.replace(
        "/tmp/compat-tmux", str(tmp_path / "tm")).strip(), "/dev/null"],
        env=dict(os.environ, TERM="xterm-256color"), capture_output=True,
        text=True, timeout=60)
    want = [ln.strip() for ln in host.stdout.replace("\r", "").split("\n")
            if ln.strip() in ("in-tmux-42", "keys-6")]
    assert want == ["in-tmux-42", "keys-6"], host
    assert inside[-2:] == want, res.stdout


# ---- CPython's own regression tests ---------------------------------------

# Modules that finish in seconds here and cover what programs lean on: the
# os and posix layers, files, terminals, polling, mmap, time, users and
# groups, locales, asyncio servers and streams over loopback TCP. Not
# test_socket (hangs on the CI host's own kernel), test_signal (48 s),
# test_subprocess (26 s): docs/compatibility.md.
PY_MODULES = [
    "test_os", "test_posix", "test_select", "test_selectors",
    "test_tempfile", "test_shutil", "test_pty", "test_fcntl",
    "test_resource", "test_pathlib", "test_mmap", "test_pwd", "test_grp",
    "test_time", "test_unicode_file", "test_getpass", "test_locale",
    "test_asyncio.test_server", "test_asyncio.test_sock_lowlevel",
    "test_asyncio.test_streams",
]

# Test cases that fail inside and pass on the host, each with its reason
# (docs/compatibility.md). "ids": only while one id is mapped inside (the
# sandbox's root cannot chown to ids that do not exist in its namespace,
# nor call setgroups); as an ordinary user the host run skips them too.
# "range": 65,536 ids are mapped (docs/security.md), and as root these
# tests chown to uid 2**31, which no range of that size holds (EINVAL).
KNOWN = {
    "test.test_posix.PosixGroupsTester.test_initgroups": "ids",
    "test.test_posix.PosixGroupsTester.test_setgroups": "ids",
    "test.test_posix.PosixTester.test_chown": "range",
    "test.test_posix.PosixTester.test_fchown": "range",
    "test.test_posix.PosixTester.test_lchown": "range",
    "test.test_os.ChownFileTests.test_chown_with_root": "ids",
    "test.test_os.ChownFileTests.test_chown_without_permission": "ids",
}


def py_results(xml_text):
    """{test id: 'ok'|'skip'|'fail'} from regrtest's JUnit XML."""
    out = {}
    root = ET.fromstring(xml_text)
    for tc in root.iter("testcase"):
        tid = tc.get("name")
        kind = "ok"
        for ch in tc:
            if ch.tag in ("failure", "error"):
                kind = "fail"
            elif ch.tag == "skipped" and kind == "ok":
                kind = "skip"
        out[tid] = kind
    return out


def test_cpython_regression_subset(seed, ws, tmp_path):
    cmd = ("/usr/bin/python3 -m test -j2 --timeout 240 --junit-xml "
           "result.xml " + " ".join(PY_MODULES) + " >log.txt 2>&1; "
           "cat result.xml")
    h, r, w = three(seed, ws, "py", cmd, tmp_path)
    if "No module named test.libregrtest" in h.stdout + h.stderr or \
            not h.stdout.startswith("<"):
        pytest.skip("needs libpython3.11-testsuite (scripts/deps.sh --test)")
    host = py_results(h.stdout)
    assert host and list(host.values()).count("fail") == 0, \
        [k for k, v in host.items() if v == "fail"]
    single = single_id_inside(ws)
    for name, res in (("run", r), ("workspace", w)):
        assert res.stdout.startswith("<"), (name, res.stdout[-2000:],
                                            res.stderr[-2000:])
        got = py_results(res.stdout)
        # every module ran to its end: as many cases as on the host
        assert len(got) >= len(host), (name, len(got), len(host))
        bad = sorted(k for k, v in got.items()
                     if v == "fail" and host.get(k) != "fail")
        allowed = {k for k, why in KNOWN.items() if why != "ids" or single}
        assert set(bad) <= allowed, (name, sorted(set(bad) - allowed))
