"""Network egress policy (docs/network.md): `--net allow:...` runs the
filtering proxy on the host side (the `sandpit run` parent, a workspace's
supervisor) and the sandbox reaches it on 127.0.0.1:3128 of its own network
namespace. Real sandboxes, real workspaces; every target is on the host's
loopback (127.0.0.0/8), which only the proxy -- running in the host's
network namespace -- can reach, and only with --net-allow-private."""
import http.server
import json
import os
import socketserver
import ssl
import subprocess
import threading

import pytest

from conftest import sandpit, sp

PROXY_PORT = 3128
BODY = "hello-from-the-host\n"
# Inside: curl through the proxy env vars. localhost and 127.0.0.1 are in
# NO_PROXY (a sandbox's own loopback is its own), so drop it for the test.
CURL = ["env", "-u", "NO_PROXY", "-u", "no_proxy", "curl", "-sS", "-m", "20"]


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = (BODY if self.path != "/big" else "x" * 100000).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        data = self.rfile.read(n)
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *a):
        pass


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


def _serve(srv):
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    return srv


@pytest.fixture
def http_port():
    srv = _serve(_Server(("127.0.0.1", 0), _Handler))
    yield srv.server_address[1]
    srv.shutdown()
    srv.server_close()


@pytest.fixture
def tls_port(tmp_path):
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048",
                    "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "1", "-subj", "/CN=localhost"],
                   check=True, capture_output=True)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(cert), str(key))
    srv = _Server(("127.0.0.1", 0), _Handler)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    _serve(srv)
    yield srv.server_address[1]
    srv.shutdown()
    srv.server_close()


def run(*cmd, flags=(), **kw):
    return sandpit("run", "-q", *flags, "--", *cmd, **kw)


def read_log(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


# ---- sandpit run ---------------------------------------------------------


def test_proxy_env_and_only_lo(http_port):
    r = run("sh", "-c", "env; cat /proc/net/dev",
            flags=["--net", f"allow:localhost:{http_port}"])
    assert r.returncode == 0, r.stderr
    env = dict(l.split("=", 1) for l in r.stdout.splitlines() if "=" in l)
    for k in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy",
              "https_proxy", "all_proxy"):
        assert env[k] == f"http://127.0.0.1:{PROXY_PORT}"
    assert env["NO_PROXY"] == "localhost,127.0.0.1,::1"
    ifaces = [l.split(":")[0].strip() for l in r.stdout.splitlines()
              if ":" in l and "|" not in l and "=" not in l]
    assert ifaces == ["lo"]


def test_default_none_has_no_proxy():
    r = run("sh", "-c", "env | grep -ci proxy; true")
    assert r.returncode == 0
    assert r.stdout.strip() == "0"


def test_allowed_request_reaches_host_loopback(tmp_path, http_port):
    log = tmp_path / "net.jsonl"
    r = run(*CURL, f"http://localhost:{http_port}/hello",
            flags=["--net", f"allow:localhost:{http_port}",
                   "--net-allow-private", "--net-log", str(log)])
    assert r.returncode == 0, r.stderr
    assert r.stdout == BODY
    evs = read_log(log)
    assert len(evs) == 1
    ev = evs[0]
    assert ev["decision"] == "allowed" and ev["status"] == 200
    assert ev["host"] == "localhost" and ev["port"] == http_port
    assert ev["method"] == "GET"
    assert ev["rule"] == f"localhost:{http_port}"
    assert ev["upstream"] == f"127.0.0.1:{http_port}"
    assert ev["bytes_down"] > len(BODY)
    assert ev["client"].startswith("127.0.0.1:")


def test_python_urllib_and_post_body(tmp_path, http_port):
    code = (
        "import os, urllib.request\n"
        "os.environ.pop('no_proxy', None); os.environ.pop('NO_PROXY', None)\n"
        f"u = 'http://localhost:{http_port}/'\n"
        "print(urllib.request.urlopen(u, timeout=20).read().decode(), end='')\n"
        "r = urllib.request.urlopen(urllib.request.Request(u, data=b'p' * 5000), timeout=20)\n"
        "print(len(r.read()))\n")
    log = tmp_path / "net.jsonl"
    r = run("/usr/bin/python3", "-c", code,
            flags=["--net", f"allow:localhost:{http_port}",
                   "--net-allow-private", "--net-log", str(log)])
    assert r.returncode == 0, r.stderr
    assert r.stdout == BODY + "5000\n"
    evs = read_log(log)
    assert [e["method"] for e in evs] == ["GET", "POST"]
    assert evs[1]["bytes_up"] == 5000


def test_silent_then_trickling_clients_are_served(http_port):
    # The proxy's listener defers accept until the client speaks, and the
    # proxy reads the head right at accept: a client that is silent for a
    # while, and one whose head comes in pieces, must both be answered
    # (the second piece arrives after the accept, through the event loop).
    code = (
        "import socket, sys, time\n"
        "def ask(pieces, pause):\n"
        "    s = socket.create_connection(('127.0.0.1', 3128), timeout=20)\n"
        "    for p in pieces:\n"
        "        time.sleep(pause)\n"
        "        s.sendall(p)\n"
        "    d = b''\n"
        "    while True:\n"
        "        x = s.recv(65536)\n"
        "        if not x: break\n"
        "        d += x\n"
        "    return d\n"
        f"req = b'GET http://localhost:{http_port}/x HTTP/1.1\\r\\n' \\\n"
        f"      b'Host: localhost:{http_port}\\r\\nConnection: close\\r\\n\\r\\n'\n"
        "a = ask([req], 1.5)\n"
        "b = ask([req[:5], req[5:30], req[30:]], 0.3)\n"
        "for d in (a, b):\n"
        "    sys.stdout.write(d.split(b'\\r\\n')[0].decode() + '|' +\n"
        "                     d.split(b'\\r\\n\\r\\n', 1)[1].decode())\n")
    r = run("/usr/bin/python3", "-c", code,
            flags=["--net", f"allow:localhost:{http_port}",
                   "--net-allow-private"])
    assert r.returncode == 0, r.stderr
    assert r.stdout == ("HTTP/1.0 200 OK|" + BODY) * 2  # http.server: 1.0


def test_name_not_listed_gets_403_naming_the_rule(tmp_path, http_port):
    log = tmp_path / "net.jsonl"
    r = run(*CURL, "-w", "\n%{http_code}", f"http://evil.invalid:{http_port}/",
            flags=["--net", f"allow:localhost:{http_port},*.example.org",
                   "--net-allow-private", "--net-log", str(log)])
    assert r.returncode == 0, r.stderr
    body, code = r.stdout.rsplit("\n", 1)
    assert code == "403"
    assert "evil.invalid" in body and "not in the allow list" in body
    assert f"localhost:{http_port}" in body and "*.example.org" in body
    ev = read_log(log)[0]
    assert ev["decision"] == "denied" and ev["status"] == 403
    assert ev["host"] == "evil.invalid" and ev["upstream"] == ""
    assert "not in the allow list" in ev["reason"]


def test_refused_connect_says_why_in_the_status_line():
    """HTTPS clients show the CONNECT's status line, not its body: the
    reason is in both (Python: "Tunnel connection failed: 403 ...")."""
    code = ("import urllib.request\n"
            "try:\n"
            "    urllib.request.urlopen('https://evil.invalid/', timeout=20)\n"
            "except Exception as e:\n"
            "    print(e)\n")
    r = run("env", "-u", "NO_PROXY", "-u", "no_proxy", "/usr/bin/python3",
            "-c", code, flags=["--net", "allow:*.example.org"])
    assert r.returncode == 0, r.stderr
    assert "Tunnel connection failed: 403 Forbidden: sandpit: egress to " \
           "evil.invalid:443 denied: not in the allow list" in r.stdout, r.stdout
    # the raw status line: one line, ended by CRLF
    code = ("import socket\n"
            "s = socket.create_connection(('127.0.0.1', 3128))\n"
            "s.sendall(b'CONNECT evil.invalid:443 HTTP/1.1\\r\\n\\r\\n')\n"
            "print(s.makefile('rb').readline())\n")
    r = run("/usr/bin/python3", "-c", code, flags=["--net", "allow:*.example.org"])
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("b'HTTP/1.1 403 Forbidden: sandpit: egress to "
                               "evil.invalid:443 denied"), r.stdout
    assert r.stdout.rstrip().endswith("\\r\\n'"), r.stdout


def test_port_not_listed_refused(http_port):
    r = run(*CURL, "-w", "\n%{http_code}", f"http://localhost:{http_port}/",
            flags=["--net", "allow:localhost", "--net-allow-private"])
    body, code = r.stdout.rsplit("\n", 1)
    assert code == "403"
    assert f"port {http_port} is not allowed" in body


@pytest.mark.parametrize("host", ["127.0.0.1", "127.1", "2130706433",
                                  "0x7f.0.0.1", "[::1]"])
def test_literal_ip_refused(http_port, host):
    r = run(*CURL, "-w", "\n%{http_code}", f"http://{host}:{http_port}/",
            flags=["--net", f"allow:localhost:{http_port}",
                   "--net-allow-private"])
    body, code = r.stdout.rsplit("\n", 1)
    assert code == "403", r.stdout + r.stderr
    assert "IP addresses are refused" in body


def test_loopback_refused_after_resolution_without_allow_private(http_port):
    r = run(*CURL, "-w", "\n%{http_code}", f"http://localhost:{http_port}/",
            flags=["--net", f"allow:localhost:{http_port}"])
    body, code = r.stdout.rsplit("\n", 1)
    assert code == "403"
    assert "resolves to 127.0.0.1" in body and "loopback" in body


def test_direct_connections_bypassing_the_proxy_fail(http_port):
    """Without the proxy nothing leaves: the host's loopback is not this
    netns's (the host's listener is not there); the sandbox's own loopback
    works (another port binds); the proxy's own port cannot be taken
    over."""
    code = (
        "import errno, socket\n"
        "def t(f):\n"
        "    s = socket.socket()\n"
        "    try:\n"
        "        f(s); return 'ok'\n"
        "    except OSError as e:\n"
        "        return errno.errorcode[e.errno]\n"
        "    finally:\n"
        "        s.close()\n"
        f"print(t(lambda s: s.connect(('127.0.0.1', {http_port}))))\n"
        f"print(t(lambda s: s.connect(('127.0.0.1', {PROXY_PORT}))))\n"
        "print(t(lambda s: s.bind(('127.0.0.1', 5555))))\n"
        f"print(t(lambda s: s.bind(('0.0.0.0', {PROXY_PORT}))))\n"
        f"print(t(lambda s: s.bind(('127.0.0.1', {PROXY_PORT}))))\n")
    r = run("/usr/bin/python3", "-c", code,
            flags=["--net", f"allow:localhost:{http_port}",
                   "--net-allow-private"])
    assert r.returncode == 0, r.stderr
    direct, proxy, other_bind, steal_any, steal_lo = r.stdout.split()
    assert direct == "ECONNREFUSED"
    assert proxy == "ok"
    assert other_bind == "ok"
    assert steal_any == "EADDRINUSE" and steal_lo == "EADDRINUSE"
    # curl told to skip the proxy fails as well
    r = run("curl", "-sS", "-m", "5", "--noproxy", "*",
            f"http://127.0.0.1:{http_port}/",
            flags=["--net", f"allow:localhost:{http_port}",
                   "--net-allow-private"])
    assert r.returncode != 0 and r.stdout == ""


def test_many_connections_and_bounds_from_inside(tmp_path, http_port):
    """40 requests at once through one proxy; an oversized head gets 431;
    a hostile request line gets 400 -- all from inside the sandbox."""
    code = (
        "import os, socket, threading, urllib.request\n"
        "os.environ.pop('no_proxy', None); os.environ.pop('NO_PROXY', None)\n"
        "res = []\n"
        "def get():\n"
        f"    u = 'http://localhost:{http_port}/'\n"
        "    res.append(urllib.request.urlopen(u, timeout=30).status)\n"
        "ts = [threading.Thread(target=get) for _ in range(40)]\n"
        "[t.start() for t in ts]; [t.join() for t in ts]\n"
        "print(res.count(200))\n"
        "def raw(data):\n"
        "    s = socket.create_connection(('127.0.0.1', 3128))\n"
        "    s.sendall(data)\n"
        "    r = s.recv(100).split()[1].decode()\n"
        "    s.close()\n"
        "    return r\n"
        f"print(raw(b'GET http://localhost:{http_port}/ HTTP/1.1\\r\\nX: '"
        " + b'a' * 20000 + b'\\r\\n\\r\\n'))\n"
        "print(raw(b'GET http://localhost/\\0 HTTP/1.1\\r\\n\\r\\n'))\n")
    log = tmp_path / "net.jsonl"
    r = run("/usr/bin/python3", "-c", code,
            flags=["--net", f"allow:localhost:{http_port}",
                   "--net-allow-private", "--net-log", str(log)])
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["40", "431", "400"]
    evs = read_log(log)
    assert sum(e["decision"] == "allowed" for e in evs) == 40
    assert len({e["client"] for e in evs}) >= 40


def test_connect_tunnel_to_local_tls_server(tmp_path, tls_port):
    log = tmp_path / "net.jsonl"
    r = run(*CURL, "-k", f"https://localhost:{tls_port}/",
            flags=["--net", f"allow:localhost:{tls_port}",
                   "--net-allow-private", "--net-log", str(log)])
    assert r.returncode == 0, r.stderr
    assert r.stdout == BODY
    ev = read_log(log)[0]
    assert ev["method"] == "CONNECT" and ev["decision"] == "allowed"
    assert ev["bytes_up"] > 100 and ev["bytes_down"] > 500
    # The same tunnel to a name that is not listed is refused at CONNECT.
    r = run(*CURL, "-k", f"https://localhost:{tls_port}/",
            flags=["--net", "allow:other.invalid", "--net-allow-private"])
    assert r.returncode != 0 and r.stdout == ""
    assert "403" in r.stderr


def test_net_policy_file(tmp_path, http_port):
    pol = tmp_path / "net.json"
    pol.write_text(json.dumps({
        "allow": [{"host": "localhost", "port": http_port}],
        "allow_private": True, "max_connections": 8, "idle_timeout_ms": 5000}))
    r = run(*CURL, f"http://localhost:{http_port}/",
            flags=["--net-policy", str(pol)])
    assert r.returncode == 0, r.stderr
    assert r.stdout == BODY
    r = sandpit("policy", "show", "--net-policy", str(pol))
    assert r.returncode == 0, r.stderr
    shown = json.loads(r.stdout)
    assert shown["net"] == "allow"
    assert shown["net_policy"]["allow"] == [{"host": "localhost",
                                             "port": http_port}]
    assert shown["net_policy"]["max_connections"] == 8


@pytest.mark.parametrize("flags,words", [
    (["--net", "allow:http://x.org/"], "net"),
    (["--net", "allow:*"], "net"),
    (["--net", "allow:a.org,user@b.org"], "net"),
    (["--net", "everything"], "none, host, allow"),
    (["--net-policy", "/nonexistent/x.json"], "cannot open"),
])
def test_bad_net_flags_refused(flags, words):
    r = run("true", flags=flags)
    assert r.returncode == 125
    assert r.stderr.startswith("sandpit: ") and words in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_net_policy_file_hostile(tmp_path):
    pol = tmp_path / "net.json"
    for bad in ['{"allow": ["ok.org"], "evil": 1}', '[1, 2]', '{"allow": 5}',
                '{"allow": ["a.org"], "header_max": 1}', "not json"]:
        pol.write_text(bad)
        r = run("true", flags=["--net-policy", str(pol)])
        assert r.returncode == 125, bad
        assert r.stderr.startswith("sandpit: ")


def test_policy_keys_round_trip(tmp_path):
    pol = {"net_allow": ["pypi.org", "*.pythonhosted.org", "x.org:8443"],
           "net_allow_private": True}
    f = tmp_path / "p.json"
    f.write_text(json.dumps(pol))
    r = sandpit("policy", "show", "--policy", str(f))
    assert r.returncode == 0, r.stderr
    shown = json.loads(r.stdout)
    assert shown["net"] == "allow" and shown["net_allow_private"] is True
    assert shown["net_policy"]["allow"] == ["pypi.org", "*.pythonhosted.org",
                                            {"host": "x.org", "port": 8443}]


def test_net_host_is_warned(http_port):
    r = sandpit("run", "--net", "host", "--", *CURL[5:],
                f"http://127.0.0.1:{http_port}/")
    assert r.returncode == 0, r.stderr
    assert r.stdout == BODY
    assert "--net host" in r.stderr and "warning" in r.stderr


# ---- workspaces ------------------------------------------------------------


def test_workspace_allow_exec_and_net_log(state, http_port, tls_port):
    r = sp(state, "create", "netws", "-q", "--net",
           f"allow:localhost:{http_port},localhost:{tls_port}",
           "--net-allow-private")
    assert r.returncode == 0, r.stderr
    r = sp(state, "exec", "netws", "--", *CURL,
           f"http://localhost:{http_port}/big")
    assert r.returncode == 0, r.stderr
    assert len(r.stdout) == 100000
    r = sp(state, "exec", "netws", "--", *CURL, "-k",
           f"https://localhost:{tls_port}/")
    assert r.returncode == 0, r.stderr
    assert r.stdout == BODY
    r = sp(state, "exec", "netws", "--", *CURL, "-w", "\n%{http_code}",
           "http://denied.invalid/")
    assert r.stdout.endswith("\n403") and "not in the allow list" in r.stdout
    r = sp(state, "exec", "netws", "--", "env")
    assert f"HTTPS_PROXY=http://127.0.0.1:{PROXY_PORT}" in r.stdout

    r = sp(state, "net", "log", "netws", "--json")
    assert r.returncode == 0, r.stderr
    evs = [json.loads(l) for l in r.stdout.splitlines()]
    assert [(e["method"], e["decision"]) for e in evs] == [
        ("GET", "allowed"), ("CONNECT", "allowed"), ("GET", "denied")]
    assert evs[0]["bytes_down"] > 100000
    assert evs[1]["bytes_up"] > 0 and evs[1]["bytes_down"] > 0
    assert evs[2]["host"] == "denied.invalid" and evs[2]["status"] == 403
    assert [e["seq"] for e in evs] == [1, 2, 3]
    # the second request to localhost takes the first one's lookup (kept
    # for a few seconds, still checked); a denied name is never looked up
    assert [e["dns_cached"] for e in evs] == [False, True, False]

    r = sp(state, "net", "log", "netws")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == 3
    assert "allowed" in lines[0] and f"localhost:{http_port}" in lines[0]
    assert "down=" in lines[0] and "denied" in lines[2]

    # --follow prints new requests as they happen, ends when it stops.
    f = subprocess.Popen(
        [os.environ.get("SANDPIT_BIN", "build/sandpit"), "net", "log",
         "netws", "--follow", "--json"],
        env={**os.environ, "SANDPIT_STATE": state},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = [f.stdout.readline() for _ in range(3)]
        assert all(json.loads(l)["seq"] for l in first)
        r = sp(state, "exec", "netws", "--", *CURL,
               f"http://localhost:{http_port}/")
        assert r.stdout == BODY
        ev = json.loads(f.stdout.readline())
        assert ev["seq"] == 4 and ev["decision"] == "allowed"
        assert sp(state, "stop", "netws").returncode == 0
        assert f.wait(timeout=10) == 0
    finally:
        if f.poll() is None:
            f.kill()
            f.wait()

    # The net policy survives stop/start; the log starts afresh.
    assert sp(state, "start", "netws").returncode == 0
    r = sp(state, "exec", "netws", "--", *CURL,
           f"http://localhost:{http_port}/")
    assert r.returncode == 0, r.stderr
    assert r.stdout == BODY
    r = sp(state, "net", "log", "netws", "--json")
    assert len(r.stdout.splitlines()) == 1
    assert sp(state, "rm", "-f", "netws").returncode == 0


def test_workspace_without_proxy_and_bypass(state, http_port):
    assert sp(state, "create", "plain", "-q").returncode == 0
    r = sp(state, "net", "log", "plain")
    assert r.returncode == 125
    assert "no egress proxy" in r.stderr
    r = sp(state, "exec", "plain", "--", "sh", "-c", "env | grep -ci proxy; true")
    assert r.stdout.strip() == "0"
    r = sp(state, "net", "log", "nosuch")
    assert r.returncode == 125
    r = sp(state, "net", "log", "../etc")
    assert r.returncode == 125

    assert sp(state, "create", "allowws", "-q", "--net",
              f"allow:localhost:{http_port}").returncode == 0
    # No --net-allow-private: the host's loopback is refused after lookup.
    r = sp(state, "exec", "allowws", "--", *CURL, "-w", "\n%{http_code}",
           f"http://localhost:{http_port}/")
    assert r.stdout.endswith("\n403") and "loopback" in r.stdout
    r = sp(state, "exec", "allowws", "--", "curl", "-sS", "-m", "5",
           "--noproxy", "*", f"http://127.0.0.1:{http_port}/")
    assert r.returncode != 0 and r.stdout == ""


def test_workspace_net_host(state, http_port):
    r = sp(state, "create", "hostws", "--net", "host")
    assert r.returncode == 0, r.stderr
    assert "warning: --net host" in r.stderr
    r = sp(state, "exec", "hostws", "--", "curl", "-sS", "-m", "10",
           f"http://127.0.0.1:{http_port}/")
    assert r.returncode == 0, r.stderr
    assert r.stdout == BODY
    r = sp(state, "exec", "hostws", "--", "sh", "-c", "env | grep -ci proxy; true")
    assert r.stdout.strip() == "0"


def test_net_log_method_hostile_params(state, http_port):
    """The control-socket method with bad params answers an error and
    keeps serving; a huge "max" is bounded."""
    import socket
    assert sp(state, "create", "raw", "-q", "--net",
              f"allow:localhost:{http_port}").returncode == 0
    for _ in range(3):
        sp(state, "exec", "raw", "--", *CURL, "http://no.invalid/")
    dfd = os.open(os.path.join(state, "workspaces", "raw"), os.O_RDONLY)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(f"/proc/self/fd/{dfd}/control.sock")
    s.settimeout(10)
    f = s.makefile("rb")

    def call(params, id_=1):
        s.sendall(json.dumps({"id": id_, "method": "net_log",
                              "params": params}).encode() + b"\n")
        return json.loads(f.readline())

    try:
        for bad in ({"after": -1}, {"after": "x"}, {"max": 0},
                    {"max": 100000}, {"after": 1e300}):
            rep = call(bad)
            assert rep["error"]["code"] == -32602, (bad, rep)
        rep = call({"after": 1, "max": 1})
        assert [e["seq"] for e in rep["result"]["events"]] == [2]
        rep = call({})
        assert len(rep["result"]["events"]) == 3
        assert rep["result"]["last"] == 3 and rep["result"]["first_kept"] == 1
        rep = call({"after": 3})
        assert rep["result"]["events"] == [] and rep["result"]["last"] == 3
    finally:
        f.close()
        s.close()
        os.close(dfd)


# ---- --net-resolver: test names from a hosts file, never from DNS ----------


HOSTS = """# test names (hosts format); a comment, then blank lines

127.0.0.1   api.test a.b.test test   # trailing comment
169.254.169.254 meta.test
127.0.0.1\tlo.test
::1 six.test
"""


@pytest.fixture
def hosts(tmp_path):
    f = tmp_path / "hosts"
    f.write_text(HOSTS)
    return str(f)


def _code(r):
    body, code = r.stdout.rsplit("\n", 1)
    return body, code


def test_resolver_file_http_and_connect(tmp_path, hosts, http_port,
                                        tls_port):
    log = tmp_path / "net.jsonl"
    flags = ["--net", f"allow:api.test:{http_port},api.test:{tls_port}",
             "--net-allow-private", "--net-resolver", hosts,
             "--net-log", str(log)]
    r = run("sh", "-c",
            " ".join(CURL) + f" http://api.test:{http_port}/ && " +
            " ".join(CURL) + f" -k https://api.test:{tls_port}/",
            flags=flags)
    assert r.returncode == 0, r.stderr
    assert r.stdout == BODY + BODY
    evs = read_log(log)
    assert [e["method"] for e in evs] == ["GET", "CONNECT"]
    assert all(e["decision"] == "allowed" for e in evs)
    assert evs[0]["upstream"] == f"127.0.0.1:{http_port}"
    assert evs[1]["upstream"] == f"127.0.0.1:{tls_port}"
    # the policy shows the file; a relative flag is made absolute
    r = sandpit("policy", "show", "--net", "allow:api.test",
                "--net-resolver", "hosts", cwd=str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["net_resolver"] == hosts


def test_resolver_file_wildcard(hosts, http_port):
    flags = ["--net", f"allow:*.test:{http_port}", "--net-allow-private",
             "--net-resolver", hosts]
    r = run(*CURL, "-w", "\n%{http_code}", f"http://a.b.test:{http_port}/",
            flags=flags)
    assert _code(r) == (BODY, "200"), r.stderr
    r = run(*CURL, "-w", "\n%{http_code}", f"http://test:{http_port}/",
            flags=flags)
    body, code = _code(r)
    assert code == "403" and "not in the allow list" in body


def test_resolver_file_is_the_only_resolver(hosts, http_port):
    """A name the file lacks is not looked up elsewhere: "localhost" would
    resolve through /etc/hosts, but with a resolver file it fails."""
    r = run(*CURL, "-w", "\n%{http_code}", f"http://localhost:{http_port}/",
            flags=["--net", f"allow:localhost:{http_port}",
                   "--net-allow-private", "--net-resolver", hosts])
    body, code = _code(r)
    assert code == "502" and "not in the resolver file" in body


def test_literal_ip_rule_allowed(hosts, http_port):
    r = run(*CURL, "-w", "\n%{http_code}", f"http://127.0.0.1:{http_port}/",
            flags=["--net", f"allow:127.0.0.1:{http_port}",
                   "--net-resolver", hosts])
    assert _code(r) == (BODY, "200"), r.stderr


@pytest.mark.parametrize("name,addr,cls", [
    ("lo.test", "127.0.0.1", "loopback"),
    ("meta.test", "169.254.169.254", "link-local"),
    ("six.test", "::1", "loopback"),
])
def test_resolver_private_targets_refused_before_connecting(
        tmp_path, hosts, http_port, name, addr, cls):
    log = tmp_path / "net.jsonl"
    evs = []
    for how in (["-w", "\n%{http_code}", f"http://{name}:{http_port}/"],
                ["-p", f"http://{name}:{http_port}/"]):  # CONNECT
        r = run(*CURL, *how,
                flags=["--net", f"allow:{name}:{http_port}",
                       "--net-resolver", hosts, "--net-log", str(log)])
        assert r.stdout.endswith("403") or "response 403" in r.stderr, \
            r.stdout + r.stderr
        evs += read_log(log)
    assert [e["method"] for e in evs] == ["GET", "CONNECT"]
    for ev in evs:
        assert ev["decision"] == "denied" and ev["status"] == 403
        assert f"resolves to {addr}" in ev["reason"] and cls in ev["reason"]
        assert ev["upstream"] == "" and ev["bytes_down"] == 0


def test_udp_does_not_leave(hosts, http_port):
    import socket
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.bind(("127.0.0.1", 0))
    u.settimeout(1.5)
    port = u.getsockname()[1]
    code = (
        "import errno, socket\n"
        "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
        "try:\n"
        f"    s.sendto(b'leak', ('127.0.0.1', {port})); print('sent')\n"
        "except OSError as e:\n"
        "    print(errno.errorcode[e.errno])\n")
    try:
        r = run("/usr/bin/python3", "-c", code,
                flags=["--net", f"allow:api.test:{http_port}",
                       "--net-allow-private", "--net-resolver", hosts])
        assert r.returncode == 0, r.stderr
        assert r.stdout.strip() in ("sent", "ENETUNREACH", "EACCES", "EPERM")
        with pytest.raises(socket.timeout):
            u.recvfrom(100)
    finally:
        u.close()


def test_oversized_connect_head(hosts, http_port):
    code = (
        "import socket\n"
        "s = socket.create_connection(('127.0.0.1', 3128))\n"
        f"s.sendall(b'CONNECT api.test:{http_port} HTTP/1.1\\r\\nX: '"
        " + b'a' * 40000 + b'\\r\\n\\r\\n')\n"
        "print(s.recv(100).split()[1].decode())\n")
    r = run("/usr/bin/python3", "-c", code,
            flags=["--net", f"allow:api.test:{http_port}",
                   "--net-allow-private", "--net-resolver", hosts])
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "431"


class _Echo(socketserver.BaseRequestHandler):
    def handle(self):
        while True:
            d = self.request.recv(65536)
            if not d:
                return
            self.request.sendall(d)


class _EchoServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256


def test_200_concurrent_connect_tunnels(tmp_path, hosts):
    srv = _serve(_EchoServer(("127.0.0.1", 0), _Echo))
    port = srv.server_address[1]
    code = (
        "import socket\n"
        "ss = []\n"
        "for i in range(200):\n"
        "    s = socket.create_connection(('127.0.0.1', 3128), timeout=30)\n"
        f"    s.sendall(b'CONNECT api.test:{port} HTTP/1.1\\r\\n\\r\\n')\n"
        "    h = b''\n"
        "    while not h.endswith(b'\\r\\n\\r\\n'):\n"
        "        c = s.recv(1)\n"
        "        assert c, i\n"
        "        h += c\n"
        "    assert h.split()[1] == b'200', h\n"
        "    ss.append(s)\n"
        "for i, s in enumerate(ss):\n"
        "    s.sendall(b'tunnel-%d;' % i * 50)\n"
        "ok = 0\n"
        "for i, s in enumerate(ss):\n"
        "    want = b'tunnel-%d;' % i * 50\n"
        "    got = b''\n"
        "    while len(got) < len(want):\n"
        "        c = s.recv(65536)\n"
        "        if not c: break\n"
        "        got += c\n"
        "    ok += got == want\n"
        "print(ok)\n"
        "for s in ss: s.close()\n")
    log = tmp_path / "net.jsonl"
    try:
        r = run("/usr/bin/python3", "-c", code, timeout=120,
                flags=["--net", f"allow:api.test:{port}",
                       "--net-allow-private", "--net-resolver", hosts,
                       "--net-log", str(log)])
        assert r.returncode == 0, r.stderr
        assert r.stdout.strip() == "200"
        evs = read_log(log)
        assert len(evs) == 200
        assert all(e["decision"] == "allowed" for e in evs)
    finally:
        srv.shutdown()
        srv.server_close()


@pytest.mark.parametrize("content,words", [
    ("1.2.3 x.test\n", "not an IPv4 or IPv6 address"),
    ("999.1.1.1 x.test\n", "not an IPv4 or IPv6 address"),
    ("fe80::1%eth0 x.test\n", "not an IPv4 or IPv6 address"),
    ("127.0.0.1\n", "without a name"),
    ("127.0.0.1 10.0.0.1\n", "not a host name"),
    ("127.0.0.1 bad..name\n", "not a host name"),
    ("127.0.0.1 " + "a" * 5000 + "\n", "longer than 4096"),
    ("127.0.0.1 ok.test\n\0\n", "NUL"),
    ("x" * (1024 * 1024 + 1), "at most"),
], ids=["short-v4", "v4-range", "v6-zone", "no-name", "ip-as-name",
        "bad-name", "long-line", "nul", "too-big"])
def test_resolver_file_hostile(tmp_path, content, words):
    f = tmp_path / "hosts"
    f.write_bytes(content.encode())
    r = run("true", flags=["--net", "allow:x.test", "--net-resolver", str(f)])
    assert r.returncode == 125, r.stderr
    assert r.stderr.startswith("sandpit: ") and words in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_resolver_file_not_regular(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for path in (str(fifo), str(tmp_path), "/nonexistent/hosts"):
        r = run("true", flags=["--net", "allow:x.test",
                               "--net-resolver", path], timeout=20)
        assert r.returncode == 125, path
        assert r.stderr.startswith("sandpit: ")


class _Blob(http.server.BaseHTTPRequestHandler):
    """GET /blob/N: N bytes of a fixed pseudo-random pattern."""
    def do_GET(self):
        import hashlib
        n = int(self.path.rsplit("/", 1)[1])
        self.send_response(200)
        self.send_header("Content-Length", str(n))
        self.end_headers()
        block = hashlib.sha256(b"blob").digest() * 4096  # 128 KiB
        while n > 0:
            k = min(n, len(block))
            self.wfile.write(block[:k])
            n -= k

    def log_message(self, *a):
        pass


def test_large_transfers_keep_every_byte_and_half_close(tmp_path, hosts):
    """Past 64 KiB a direction is relayed with splice(2): a 24 MiB
    response by plain HTTP and 16 MiB each way through a tunnel arrive
    intact, and a half-close (client shuts its write side) still gets the
    whole echo back, then EOF."""
    srv = _serve(_Server(("127.0.0.1", 0), _Blob))
    echo = _serve(_EchoServer(("127.0.0.1", 0), _Echo))
    bport, eport = srv.server_address[1], echo.server_address[1]
    n = 24 << 20
    code = (
        "import hashlib, os, socket, threading, urllib.request\n"
        "os.environ.pop('no_proxy', None); os.environ.pop('NO_PROXY', None)\n"
        f"d = urllib.request.urlopen('http://api.test:{bport}/blob/{n}',"
        " timeout=60).read()\n"
        "block = hashlib.sha256(b'blob').digest() * 4096\n"
        f"want = (block * ({n} // len(block) + 1))[:{n}]\n"
        "print(d == want)\n"
        "s = socket.create_connection(('127.0.0.1', 3128), timeout=60)\n"
        f"s.sendall(b'CONNECT api.test:{eport} HTTP/1.1\\r\\n\\r\\n')\n"
        "h = b''\n"
        "while not h.endswith(b'\\r\\n\\r\\n'): h += s.recv(1)\n"
        "data = os.urandom(16 << 20)\n"
        "def send():\n"
        "    s.sendall(data); s.shutdown(socket.SHUT_WR)\n"
        "t = threading.Thread(target=send); t.start()\n"
        "got = bytearray()\n"
        "while True:\n"
        "    c = s.recv(1 << 20)\n"
        "    if not c: break\n"
        "    got += c\n"
        "t.join()\n"
        "print(bytes(got) == data)\n")
    log = tmp_path / "net.jsonl"
    try:
        r = run("/usr/bin/python3", "-c", code, timeout=120,
                flags=["--net", f"allow:api.test:{bport},api.test:{eport}",
                       "--net-allow-private", "--net-resolver", hosts,
                       "--net-log", str(log)])
        assert r.returncode == 0, r.stderr
        assert r.stdout.split() == ["True", "True"]
        evs = read_log(log)
        assert evs[0]["bytes_down"] > n
        assert evs[1]["bytes_up"] == 16 << 20 and evs[1]["bytes_down"] == 16 << 20
    finally:
        for s in (srv, echo):
            s.shutdown()
            s.server_close()


def test_workspace_resolver_file(state, tmp_path, http_port):
    """A workspace's proxy resolves from the file too (and only from it:
    "localhost" is allowed but not in the file)."""
    hosts = tmp_path / "ws-hosts"
    hosts.write_text(HOSTS)
    r = sp(state, "create", "resws", "-q", "--net",
           f"allow:api.test:{http_port},localhost:{http_port}",
           "--net-allow-private", "--net-resolver", str(hosts))
    assert r.returncode == 0, r.stderr
    r = sp(state, "exec", "resws", "--", *CURL, f"http://api.test:{http_port}/")
    assert r.returncode == 0, r.stderr
    assert r.stdout == BODY
    r = sp(state, "exec", "resws", "--", *CURL, "-w", "\n%{http_code}",
           f"http://localhost:{http_port}/")
    body, code = _code(r)
    assert code == "502" and "not in the resolver file" in body
    r = sp(state, "net", "log", "resws")
    assert r.returncode == 0, r.stderr
    assert "api.test" in r.stdout
