"""Nobody in who does not belong (SPEC 12, issue 20): hostile callers of the
service.

* SSRF through inline assets: a local server plays an internal endpoint
  (a cloud metadata service) and echoes a canary; no spelling of its
  address, no name resolving to it, no DNS answer that changes between the
  check and the connection, no redirect, gets its body back.
* ``Content-Type: application/json`` for a body (415), and under
  ``--no-auth`` the browser-made attacks: a cross-site form post (CSRF, a
  ``text/plain`` POST needs no CORS preflight: https://fetch.spec.whatwg.org/#cors-safelisted-request-header)
  and DNS rebinding (a foreign ``Host``), both 403. ``Sec-Fetch-Site`` is
  the Fetch Metadata header (https://www.w3.org/TR/fetch-metadata/#sec-fetch-site-header).
"""
import io
import json
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from line_connector.config import InlineAssetPolicy, load_config, parse_host_entry
from line_connector.http import Request, client_for, peer_policy

INTERNAL = "internal-metadata-canary-3f9a1c"


class Internal:
    """An 'internal' HTTP server on 127.0.0.1: every answer holds INTERNAL;
    ``redirect_to`` makes it answer 302 to that URL instead. Counts hits."""

    def __init__(self, redirect_to=None):
        outer = self
        self.hits = 0

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                outer.hits += 1
                if redirect_to:
                    self.send_response(302)
                    self.send_header("Location", redirect_to)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body = json.dumps({"AccessKeyId": INTERNAL, "path": self.path}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_POST = do_GET

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def internal():
    servers = []

    def make(**kw):
        s = Internal(**kw)
        servers.append(s)
        return s
    yield make
    for s in servers:
        s.stop()


def _json(body):
    return json.loads(body.decode("utf-8"))


# ------------------------------------------------------------ the policy

def test_host_entries_parse_as_documented():
    assert parse_host_entry("api.example.com") == ("api.example.com", None)
    assert parse_host_entry("API.Example.com.:8443") == ("api.example.com", 8443)
    assert parse_host_entry("[::1]:8090") == ("::1", 8090)
    assert parse_host_entry("127.1:80") == ("127.0.0.1", 80)
    for bad in ("", "a b", "http://x", "x:0", "x:99999", "x:y", "[nope]:1", "u@x", 5):
        assert parse_host_entry(bad) is None, bad


def test_every_spelling_of_a_private_address_is_refused_by_the_policy():
    policy = InlineAssetPolicy([])
    for ip in ("127.0.0.1", "127.1", "0x7f.1", "2130706433", "0177.0.0.1", "::1", "::ffff:127.0.0.1",
               "169.254.169.254", "10.0.0.1", "192.168.1.1", "172.16.0.1", "100.64.0.1", "0.0.0.0",
               "fd00:ec2::254", "fe80::1", "224.0.0.1"):
        assert not policy.allows_address(ip, 80), ip
    assert policy.allows_address("93.184.216.34", 443)
    # IPv6 forms that carry an IPv4 address a gateway delivers to: NAT64 (RFC 6052),
    # IPv4-compatible, 6to4 (RFC 3056), Teredo (RFC 4380) are judged by that address
    for ip in ("64:ff9b::7f00:1", "64:ff9b::a9fe:a9fe", "::7f00:1", "::a00:1", "2002:7f00:1::1",
               "2002:c0a8:101::1", "2001:0:7f00:1::1"):
        assert not policy.allows_address(ip, 443), ip
    assert policy.allows_address("64:ff9b::808:808", 443) and policy.allows_address("2002:808:808::1", 443)
    # the vendors' hosts (asset defaults), default ports only
    assert policy.allows_host("api.line.me", 443) and policy.allows_host("API.LINE.ME.", 443)
    assert policy.allows_host("api-data.line.me", 443) and policy.allows_host("api-hk.nxlink.ai", 443)
    assert not policy.allows_host("api.line.me", 6379)
    assert not policy.allows_host("localhost", 80) and not policy.allows_host("evil.example", 443)
    listed = InlineAssetPolicy(["127.0.0.1:8090", "partner.example"])
    assert listed.allows_address("127.0.0.1", 8090) and listed.allows_address("127.1", 8090)
    assert not listed.allows_address("127.0.0.1", 8091)
    assert listed.allows_host("partner.example", 443) and not listed.allows_host("partner.example", 8443)


# ------------------------------------------------------------ the transport

def _get(url):
    return client_for(timeout=(3.0, 5.0)).send(Request("GET", url))


def test_the_transport_refuses_a_listed_name_that_resolves_to_loopback(internal, monkeypatch):
    """A name the operator listed is no promise about its address: mapped
    to 127.0.0.1 by the resolver, nothing is sent to it."""
    server = internal()
    real = socket.getaddrinfo

    def resolver(host, *args, **kwargs):
        if host == "partner.example":
            return real("127.0.0.1", *args, **kwargs)
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    policy = InlineAssetPolicy(["partner.example:%d" % server.port])
    with peer_policy(policy):
        result = _get("http://partner.example:%d/latest/meta-data/" % server.port)
    assert result["status_code"] == 0 and result["delivery"] == "not sent"
    assert INTERNAL not in json.dumps(result) and server.hits == 0
    # the same name with no policy (a configured asset) is trusted as before
    assert _get("http://partner.example:%d/x" % server.port)["status_code"] == 200


def test_dns_rebinding_between_the_check_and_the_connection_is_refused(internal, monkeypatch):
    """The service's early check sees a public address; the connection
    would go to loopback: the transport checks the address it connects to."""
    server = internal()
    real = socket.getaddrinfo
    answers = {"n": 0}

    def rebinding(host, port, *args, **kwargs):
        if host == "rebind.example":
            answers["n"] += 1
            if answers["n"] == 1:  # the first answer: public
                return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", port))]
            return real("127.0.0.1", port, *args, **kwargs)
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    policy = InlineAssetPolicy(["rebind.example:%d" % server.port])
    assert policy.problems({"url": "http://rebind.example:%d/" % server.port}) == []
    with peer_policy(policy):
        result = _get("http://rebind.example:%d/latest/meta-data/iam" % server.port)
    assert result["status_code"] == 0 and server.hits == 0
    assert INTERNAL not in json.dumps(result)


def test_a_redirect_to_an_internal_address_is_not_followed(internal):
    target = internal()
    hop = internal(redirect_to="http://127.0.0.1:%d/latest/meta-data/iam" % target.port)
    policy = InlineAssetPolicy(["127.0.0.1:%d" % hop.port])
    with peer_policy(policy):
        result = _get("http://127.0.0.1:%d/" % hop.port)
    assert result["status_code"] == 302 and target.hits == 0
    assert INTERNAL not in json.dumps(result)
    # and a URL that names it directly never connects
    with peer_policy(policy):
        result = _get("http://127.0.0.1:%d/latest/meta-data/iam" % target.port)
    assert result["status_code"] == 0 and target.hits == 0


def test_runs_under_a_policy_never_reuse_a_trusted_connection():
    trusted = client_for(timeout=(3.0, 5.0))
    with peer_policy(InlineAssetPolicy([])):
        checked = client_for(timeout=(3.0, 5.0))
    assert checked is not trusted


# ------------------------------------------------------------ the service

def _config(tmp_path, sandbox, **extra):
    from conftest import CANARY_API_KEY

    demo = sandbox.demo_assets()
    doc = {"assets": {"ops_line": demo["line_channel_access_token"], "ops_secret": demo["line_channel_secret"]},
           "api_keys": [CANARY_API_KEY]}
    doc.update(extra)
    path = tmp_path / "svc.yaml"
    path.write_text(json.dumps(doc), encoding="utf-8")
    return load_config(str(path), environ={})


def wsgi(app, method="POST", path="/v1/actions/line_get_quota", body=b"", headers=None,
         content_type="application/json"):
    """One request through the WSGI app in this process: (status, headers, body)."""
    from conftest import CANARY_API_KEY

    if not isinstance(body, bytes):
        body = json.dumps(body).encode("utf-8")
    environ = {"REQUEST_METHOD": method, "PATH_INFO": path, "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8080",
               "HTTP_HOST": "127.0.0.1:8080", "wsgi.input": io.BytesIO(body), "wsgi.url_scheme": "http",
               "HTTP_AUTHORIZATION": "Bearer " + CANARY_API_KEY}
    if body or method == "POST":
        environ["CONTENT_LENGTH"] = str(len(body))
    if content_type is not None:
        environ["CONTENT_TYPE"] = content_type
    for name, value in (headers or {}).items():
        key = name.upper().replace("-", "_")
        if key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            if value is None:
                environ.pop(key, None)
            else:
                environ[key] = value
        elif value is None:
            environ.pop("HTTP_" + key, None)
        else:
            environ["HTTP_" + key] = value
    got = {}

    def start_response(status, hdrs):
        got["status"], got["headers"] = int(status.split()[0]), {k.lower(): v for k, v in hdrs}
    out = b"".join(app(environ, start_response))
    return got["status"], got["headers"], out


@pytest.fixture
def sandbox(make_sandbox):
    return make_sandbox()


HOSTILE = ("http://127.0.0.1:{p}/latest/meta-data/iam?", "http://127.0.0.1:{p}/latest/meta-data/iam#",
           "http://127.1:{p}/", "http://0x7f.1:{p}/", "http://2130706433:{p}/", "http://0177.0.0.1:{p}/",
           "http://[::1]:{p}/", "http://[::ffff:127.0.0.1]:{p}/", "http://localhost:{p}/",
           "http://LOCALHOST.:{p}/", "http://169.254.169.254/latest/meta-data/", "http://10.0.0.1/",
           "http://127.0.0.1:{p}#@api.line.me/", "http://127.0.0.1:{p}?@api.line.me/",
           "https://api.line.me:{p}/")


def test_inline_assets_reach_only_allowed_hosts(tmp_path, sandbox, internal, monkeypatch):
    """The issue's finding, as filed: an inline asset aimed at an internal
    server. Every spelling is 422 naming the URL field, and nothing reaches
    the internal server; the sandbox, listed by address, still works."""
    from line_connector.service.app import create_app

    server = internal()
    sandbox_port = int(sandbox.url.rsplit(":", 1)[1])
    app = create_app(_config(tmp_path, sandbox, allow_inline_assets=True,
                             inline_asset_hosts=["127.0.0.1:%d" % sandbox_port]))
    token = sandbox.demo_assets()["line_channel_access_token"]["token"]
    for template in HOSTILE:
        url = template.format(p=server.port)
        status, _, body = wsgi(app, body={"asset": {"url": url, "token": token}})
        assert status == 422, (url, body)
        assert _json(body)["details"][0]["path"] == "asset.url", url
        assert INTERNAL not in body.decode()
    for field in ("data_url", "http_proxy"):
        status, _, body = wsgi(app, body={"asset": {"url": sandbox.url, field: "http://127.0.0.1:%d" % server.port,
                                                    "token": token}})
        assert status == 422 and _json(body)["details"][0]["path"] == "asset." + field
    assert server.hits == 0
    # a listed name that resolves to loopback: 422 too, at the early check
    real = socket.getaddrinfo
    monkeypatch.setattr(socket, "getaddrinfo", lambda host, *a, **k: real(
        "127.0.0.1" if host == "partner.example" else host, *a, **k))
    app2 = create_app(_config(tmp_path, sandbox, allow_inline_assets=True,
                              inline_asset_hosts=["partner.example:%d" % server.port]))
    status, _, body = wsgi(app2, body={"asset": {"url": "http://partner.example:%d/" % server.port,
                                                 "token": token}})
    assert status == 422 and _json(body)["details"][0]["path"] == "asset.url"
    assert server.hits == 0
    # the control: the listed sandbox answers, and a configured asset is trusted as before
    status, _, body = wsgi(app, body={"asset": {"url": sandbox.url, "token": token}})
    assert status == 200, body
    status, _, body = wsgi(app, body={"asset": "ops_line"})
    assert status == 200, body


def test_a_config_entry_that_is_no_host_is_a_start_up_error(tmp_path, sandbox):
    from line_connector.errors import InputError

    with pytest.raises(InputError) as info:
        _config(tmp_path, sandbox, inline_asset_hosts=["ok.example", "http://x/"])
    assert info.value.details[0]["path"] == "config.inline_asset_hosts[1]"


def test_inline_policy_through_the_running_service(start_service, service_sandbox, service_config, api, keys,
                                                   internal):
    """The issue's reproduction, end to end on waitress."""
    server = internal()
    url = start_service(service_config(service_sandbox, allow_inline_assets=True))
    status, _, body = api(url + "/v1/actions/line_get_quota", "POST",
                          {"asset": {"url": "http://127.0.0.1:%d/latest/meta-data/iam?" % server.port,
                                     "token": "x"}}, key=keys.api)
    assert status == 422 and _json(body)["details"][0]["path"] == "asset.url"
    assert INTERNAL not in body.decode() and server.hits == 0


# ------------------------------------------------------------ 415 and 403

def test_a_body_must_be_application_json(tmp_path, sandbox):
    from line_connector.service.app import create_app

    app = create_app(_config(tmp_path, sandbox))
    body = {"asset": "ops_line"}
    for ctype in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
                  "application/jsonp", "application/json-seq", None, ""):
        status, _, got = wsgi(app, body=body, content_type=ctype)
        assert status == 415, ctype
        assert _json(got)["details"][0]["path"] == "headers.content-type"
    for ctype in ("application/json", "application/json; charset=utf-8", "Application/JSON ;charset=UTF-8"):
        assert wsgi(app, body=body, content_type=ctype)[0] == 200, ctype
    assert sandbox.stats()["requests"] == 3  # only the three JSON calls reached the vendor
    # webhooks too (LINE sends application/json; charset=utf-8)
    app = create_app(_config(tmp_path, sandbox, webhooks={"ops": {"asset": "ops_secret", "forward": [
        {"jsonl": str(tmp_path / "ev.jsonl")}]}}))
    status, _, got = wsgi(app, path="/v1/webhooks/ops", body=b'{"events": []}', content_type="text/plain")
    assert status == 415 and not (tmp_path / "ev.jsonl").exists()


def test_a_post_without_a_body_is_an_empty_object(tmp_path, sandbox):
    """README: "asset may be left out when exactly one configured asset
    fits the action, inputs when the action takes none": a bare POST (no
    Content-Length, no Transfer-Encoding: no body, RFC 9112 section 6.3)
    or ``Content-Length: 0`` is ``{}``, whatever its Content-Type."""
    from line_connector.service.app import create_app

    app = create_app(_config(tmp_path, sandbox))
    status, _, got = wsgi(app, body=b"", content_type=None)
    assert status == 200, got
    status, _, got = wsgi(app, body=b"", content_type=None, headers={"Content-Length": None})
    assert status == 200, got
    status, _, got = wsgi(app, body=b"", content_type="text/plain")
    assert status == 200, got
    # an action whose inputs are required still says which field is missing
    status, _, got = wsgi(app, path="/v1/actions/line_send_push", body=b"", content_type=None)
    assert status == 422 and "inputs" in json.dumps(_json(got)["details"])


def test_no_auth_refuses_cross_site_and_foreign_host_requests(tmp_path, sandbox):
    from line_connector.service.app import create_app

    cfg = _config(tmp_path, sandbox)
    cfg.api_keys = []
    app = create_app(cfg, no_auth=True)
    body = {"asset": "ops_line"}
    for headers, path in (({"Host": "evil.example"}, "headers.host"),
                          ({"Host": "evil.example:8080"}, "headers.host"),
                          ({"Host": "127.0.0.1.nip.io"}, "headers.host"),
                          ({"Origin": "https://evil.example"}, "headers.origin"),
                          ({"Origin": "null"}, "headers.origin"),
                          ({"Origin": "http://127.0.0.1.evil.example"}, "headers.origin"),
                          ({"Sec-Fetch-Site": "cross-site"}, "headers.sec-fetch-site")):
        status, _, got = wsgi(app, body=body, headers=headers)
        assert status == 403, headers
        assert _json(got)["details"][0]["path"] == path
        assert wsgi(app, method="GET", path="/v1/actions", headers=headers)[0] == 403
    assert sandbox.stats()["requests"] == 0
    for headers in ({}, {"Host": "localhost:8080"}, {"Host": "127.0.0.2"}, {"Host": "[::1]:8080"},
                    {"Host": None}, {"Origin": "http://localhost:3000", "Sec-Fetch-Site": "same-site"},
                    {"Origin": "http://[::1]:8080", "Sec-Fetch-Site": "same-origin"}, {"Sec-Fetch-Site": "none"},
                    # a page of the operator's own on another loopback port: its Origin says where it is from
                    {"Origin": "http://localhost:3000", "Sec-Fetch-Site": "cross-site"}):
        status, _, got = wsgi(app, body=body, headers=headers)
        assert status == 200, (headers, got)
    # webhook routes are signed by LINE: a tunnel's public Host is no attack there
    hooked = _config(tmp_path, sandbox, webhooks={"ops": {"asset": "ops_secret", "forward": [
        {"jsonl": str(tmp_path / "ev.jsonl")}]}})
    hooked.api_keys = []
    status, _, got = wsgi(create_app(hooked, no_auth=True), path="/v1/webhooks/ops", body=b'{"events": []}',
                          headers={"Host": "abc.tunnel.example"})
    assert status == 400 and "signature" in _json(got)["error"]
    # with API keys the key decides: a browser cannot add one without a preflight
    app = create_app(_config(tmp_path, sandbox))
    assert wsgi(app, body=body, headers={"Host": "service.example", "Origin": "https://platform.example"})[0] == 200


def test_the_csrf_finding_as_filed(start_service, service_sandbox, service_config, api):
    """A text/plain POST with Origin https://evil.example and Host
    evil.example to a --no-auth service sent a message: now 403, nothing
    sent; and as text/plain from loopback it is 415."""
    from helpers import USER

    config = service_config(service_sandbox)
    config.pop("api_keys")
    url = start_service(config, args=["--no-auth"])
    body = json.dumps({"asset": "ops_line", "inputs": {"to": USER, "messages": [{"type": "text", "text": "x"}]}})
    status, _, got = api(url + "/v1/actions/line_send_push", "POST", body.encode(),
                         headers={"Content-Type": "text/plain", "Origin": "https://evil.example",
                                  "Host": "evil.example"})
    assert status == 403
    status, _, got = api(url + "/v1/actions/line_send_push", "POST", body.encode(),
                         headers={"Content-Type": "text/plain"})
    assert status == 415
    assert service_sandbox.stats()["line"]["deliveries"] == 0


# ------------------------------------------------------------ webhooks: whole or nothing, bounded

def _signed(events, secret):
    from line_connector.actions.line.webhook import signature

    body = json.dumps({"destination": "U" + "d" * 32, "events": events}).encode("ascii")
    return body, signature(body, secret)


def _event(event_id, text="hello"):
    return {"type": "message", "mode": "active", "timestamp": 1700000000000, "webhookEventId": event_id,
            "source": {"type": "user", "userId": "U" + "a" * 32}, "replyToken": "r" * 32,
            "deliveryContext": {"isRedelivery": False},
            "message": {"type": "text", "id": "1", "quoteToken": "q", "text": text}}


class Receiver:
    """An http sink target that counts the POSTs it takes (200 each)."""

    def __init__(self):
        outer = self
        self.posts = 0

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                outer.posts += 1
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d/hook" % self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def test_a_poison_event_reaches_no_sink_and_stays_out_on_every_redelivery(tmp_path, sandbox):
    """The finding: a lone surrogate (valid JSON escape syntax, no valid
    text) in one event of a batch was written by the jsonl sink, refused by
    the http sink, answered 500, and written again on each redelivery."""
    from line_connector.actions.line.webhook import signature
    from line_connector.service.app import create_app

    receiver = Receiver()
    try:
        sink = tmp_path / "events.jsonl"
        app = create_app(_config(tmp_path, sandbox, webhooks={"ops": {"asset": "ops_secret", "forward": [
            {"jsonl": str(sink)}, {"http": receiver.url}]}}))
        secret = sandbox.demo_assets()["line_channel_secret"]["channel_secret"]
        good = [_event("01HPOISON0000000000000000%d" % i) for i in range(3)]
        poison = _event("01HPOISON00000000000000009", text="x")
        body, sig = _signed(good + [poison], secret)
        body = body.replace(b'"text": "x"', b'"text": "\\ud800"')
        body_sig = signature(body, secret)
        for _ in range(3):  # LINE redelivers
            status, _, got = wsgi(app, path="/v1/webhooks/ops", body=body,
                                  headers={"X-Line-Signature": body_sig})
            assert status == 400, got
            assert "surrogate" in _json(got)["error"]
        assert not sink.exists() and receiver.posts == 0
        bad_shapes = ([{"type": 5}], [{"type": "message", "webhookEventId": 7}], ["text"],
                      [{"type": "message", "timestamp": "soon"}])
        for events in bad_shapes:
            body, sig = _signed(events, secret)
            assert wsgi(app, path="/v1/webhooks/ops", body=body, headers={"X-Line-Signature": sig})[0] == 400
        body = b'{"destination": "U1", "events": [{"type": "message", "n": NaN}]}'
        sig = signature(body, secret)
        assert wsgi(app, path="/v1/webhooks/ops", body=body, headers={"X-Line-Signature": sig})[0] == 400
        assert not sink.exists() and receiver.posts == 0
        # the good events alone go to both sinks
        body, sig = _signed(good, secret)
        assert wsgi(app, path="/v1/webhooks/ops", body=body, headers={"X-Line-Signature": sig})[0] == 200
        assert len(sink.read_text().splitlines()) == 3 and receiver.posts == 1
    finally:
        receiver.stop()


class Hung:
    """A TCP server that accepts connections and never answers."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(200)
        self.url = "http://127.0.0.1:%d/never" % self.sock.getsockname()[1]
        self.held = []
        self.stopped = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        self.sock.settimeout(0.2)
        while not self.stopped.is_set():
            try:
                self.held.append(self.sock.accept()[0])
            except OSError:
                continue

    def stop(self):
        self.stopped.set()
        for conn in self.held:
            conn.close()
        self.sock.close()


def _timed(fn):
    import time

    started = time.monotonic()
    out = fn()
    return out, time.monotonic() - started


def test_a_hung_sink_holds_only_its_route(start_service, service_sandbox, service_config, api, keys, tmp_path):
    """The finding: 40 concurrent signed deliveries to a route whose http
    sink never answers made /healthz take 49 s. Now the route takes
    ``concurrency`` deliveries (503 at once past that), and /healthz, an
    action and another route answer within 2 s meanwhile. (About 12 s: the
    held deliveries end at the http sink's own 10 s deadline.)"""
    from concurrent.futures import ThreadPoolExecutor

    hung = Hung()
    try:
        config = service_config(service_sandbox, webhooks={
            "slow": {"asset": "ops_secret", "forward": [{"http": hung.url}]},
            "fast": {"asset": "ops_secret", "forward": [{"jsonl": str(tmp_path / "fast.jsonl")}]}})
        url = start_service(config)
        secret = service_sandbox.demo_assets()["line_channel_secret"]["channel_secret"]

        def deliver(route, i):
            body, sig = _signed([_event("01HHUNG%s%019d" % (route[:1].upper(), i))], secret)
            (status, headers, got), took = _timed(lambda: api(url + "/v1/webhooks/" + route, "POST", body,
                                                              headers={"x-line-signature": sig}, timeout=60))
            headers["took"] = took
            return status, headers, got

        with ThreadPoolExecutor(48) as pool:
            flood = [pool.submit(deliver, "slow", i) for i in range(40)]
            import time
            time.sleep(1.0)  # the flood is in
            (status, _, _), took = _timed(lambda: api(url + "/healthz"))
            assert status == 200 and took < 2.0, took
            (status, _, got), took = _timed(lambda: api(url + "/v1/actions/line_get_quota", "POST",
                                                        {"asset": "ops_line"}, key=keys.api))
            assert status == 200 and took < 2.0, (took, got)
            (status, _, got), took = _timed(lambda: deliver("fast", 1))
            assert status == 200 and took < 2.0, (took, got)
            answers = [f.result() for f in flood]
        statuses = sorted(a[0] for a in answers)
        busy = [a for a in answers if a[0] == 503]
        assert len(busy) == 40 - 4, statuses  # the route's default concurrency: 4
        assert all(a[1].get("retry-after") == "1" for a in busy)
        assert max(a[1]["took"] for a in busy) < 2.0  # at once, not queued behind the hung ones
        assert statuses.count(500) == 4  # the held ones: the sink never answered, LINE redelivers
        assert "Traceback" not in url.log_text()
    finally:
        hung.stop()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="gunicorn runs on POSIX; tested on Linux")
def test_a_hung_sink_under_gunicorn_keeps_threads_for_everyone_else(tmp_path, service_sandbox, service_config, api,
                                                                    keys):
    """The README's gunicorn line (``-k gthread --threads 4`` and
    ``app_from_env(threads=4)``): a hung http sink holds at most threads - 2
    of the worker's threads; further deliveries get 503 at once and
    /healthz and an action answer within 2 s. (About 12 s: the held
    deliveries end at the http sink's own 10 s deadline.)"""
    import os
    import shutil
    import subprocess
    import time
    from concurrent.futures import ThreadPoolExecutor

    from redis_server import free_port

    gunicorn = shutil.which("gunicorn", path=os.path.dirname(sys.executable)) or shutil.which("gunicorn")
    assert gunicorn is not None, "gunicorn is in the [test] extra"
    hung = Hung()
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(json.dumps(service_config(service_sandbox, webhooks={
        "slow": {"asset": "ops_secret", "forward": [{"http": hung.url}]}})), encoding="utf-8")
    port = free_port()
    err_path = tmp_path / "gunicorn.stderr"
    with open(err_path, "wb") as err:
        proc = subprocess.Popen([gunicorn, "-w", "1", "-k", "gthread", "--threads", "4", "-b", "127.0.0.1:%d" % port,
                                 "line_connector.service:app_from_env(threads=4)"],
                                env=dict(os.environ, LINE_CONNECTOR_CONFIG=str(cfg)), cwd=str(tmp_path),
                                stdout=subprocess.DEVNULL, stderr=err, stdin=subprocess.DEVNULL)
    url = "http://127.0.0.1:%d" % port
    secret = service_sandbox.demo_assets()["line_channel_secret"]["channel_secret"]
    try:
        end = time.monotonic() + 30
        while True:
            try:
                if api(url + "/healthz", timeout=2)[0] == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < end and proc.poll() is None, err_path.read_text()[-2000:]
            time.sleep(0.1)

        def deliver(i):
            body, sig = _signed([_event("01HGUNI%019d" % i)], secret)
            (status, headers, _), took = _timed(lambda: api(url + "/v1/webhooks/slow", "POST", body,
                                                            headers={"x-line-signature": sig}, timeout=60))
            return status, took

        with ThreadPoolExecutor(8) as pool:
            flood = [pool.submit(deliver, i) for i in range(6)]
            time.sleep(1.0)
            (status, _, _), took = _timed(lambda: api(url + "/healthz"))
            assert status == 200 and took < 2.0, took
            (status, _, got), took = _timed(lambda: api(url + "/v1/actions/line_get_quota", "POST",
                                                        {"asset": "ops_line"}, key=keys.api))
            assert status == 200 and took < 2.0, (took, got)
            answers = [f.result() for f in flood]
        busy = [a for a in answers if a[0] == 503]
        assert len(busy) == 6 - 2, answers  # 4 threads, 2 kept for everyone else
        assert max(took for _, took in busy) < 2.0
    finally:
        proc.terminate()
        proc.wait(20)
        hung.stop()
    assert "Traceback" not in err_path.read_text()


# ------------------------------------------------------------ slow clients and the connection limit

def _healthz_time(url):
    from conftest import http_call

    (status, _, _), took = _timed(lambda: http_call(url + "/healthz", timeout=30))
    return status, took


def test_past_the_connection_limit_503_at_once_not_queued(sandbox, tmp_path):
    """Every slot holds a request the app is running: the next connection
    is answered 503 at once (waitress alone stops accepting and lets it
    wait in the backlog). A slot that only holds a slow client is given to
    the new connection instead."""
    import time

    from line_connector.service.app import FRESH, FULL_ANSWER, make_server

    release = threading.Event()

    class SlowApp:
        redactor = None

        def __call__(self, environ, start_response):
            if environ["PATH_INFO"] == "/slow":
                release.wait(20)
            start_response("200 OK", [("Content-Length", "2")])
            return [b"ok"]

    app = SlowApp()
    from line_connector.redaction import Redactor
    app.redactor = Redactor()
    server = make_server(app, port=0, threads=2, connection_limit=6)
    runner = threading.Thread(target=server.run, daemon=True)
    runner.start()
    port = int(server.effective_port)
    url = "http://127.0.0.1:%d" % port
    busy = []
    try:
        for _ in range(6):  # two run, four wait for a thread: none may be dropped
            sock = socket.create_connection(("127.0.0.1", port))
            sock.sendall(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
            busy.append(sock)
        time.sleep(0.5)
        started = time.monotonic()
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            got = b""
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                got += chunk
        assert got == FULL_ANSWER and time.monotonic() - started < 2.0
        release.set()
        for sock in busy:  # the held requests all complete
            sock.settimeout(10)
            assert sock.recv(65536).startswith(b"HTTP/1.1 200")
            sock.close()
        busy = []
        # now fill the slots with slow clients: a new caller takes the oldest one's place
        release.clear()
        slow = []
        for _ in range(6):
            sock = socket.create_connection(("127.0.0.1", port))
            sock.sendall(b"GET /slow HTTP/1.1\r\nHost: x\r\n")  # never finished
            slow.append(sock)
        time.sleep(FRESH + 0.5)  # a request begun within FRESH seconds is never cut
        status, took = _healthz_time(url)
        assert status == 200 and took < 2.0
        for sock in slow:
            sock.close()
    finally:
        release.set()
        for sock in busy:
            sock.close()
        server.task_dispatcher.shutdown()
        from waitress import wasyncore
        wasyncore.close_all(server.map)


def test_a_flood_of_empty_connections_never_cuts_a_request_being_sent(sandbox):
    """From a hostile review: connections that never sent a byte are given
    up before a request still arriving, so a flood of empty sockets past the
    limit cannot cut a legitimate upload (its client could not tell whether
    the POST ran)."""
    import time

    from line_connector.service.app import make_server

    class App:
        def __call__(self, environ, start_response):
            body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
            start_response("200 OK", [("Content-Length", str(len(body)))])
            return [body]

    app = App()
    from line_connector.redaction import Redactor
    app.redactor = Redactor()
    server = make_server(app, port=0, threads=2, connection_limit=6)
    threading.Thread(target=server.run, daemon=True).start()
    port = int(server.effective_port)
    empty = []
    try:
        upload = socket.create_connection(("127.0.0.1", port), timeout=10)
        upload.sendall(b"POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n01234")
        time.sleep(0.2)
        for _ in range(20):  # far past the limit of 6
            empty.append(socket.create_connection(("127.0.0.1", port)))
            time.sleep(0.01)
        time.sleep(0.3)
        upload.sendall(b"56789")
        got = b""
        while b"0123456789" not in got:
            chunk = upload.recv(65536)
            assert chunk, "the upload was cut: %r" % got
            got += chunk
        assert got.startswith(b"HTTP/1.1 200")
        upload.close()
    finally:
        for sock in empty:
            sock.close()
        server.task_dispatcher.shutdown()
        from waitress import wasyncore
        wasyncore.close_all(server.map)


class Slowloris:
    """``n`` connections, each sending one more header line every
    ``every`` seconds, never finishing (and ``bodies`` of them announcing
    a body that arrives one byte at a time); a connection the server
    closes is opened again at once, as an attacker would."""

    def __init__(self, port, n=600, bodies=100, every=2.0):
        import time

        self.port, self.every, self.bodies = port, every, bodies
        self.socks = [self._open(i) for i in range(n)]
        self.stopped = threading.Event()
        self.reopened = 0
        self.thread = threading.Thread(target=self._drip, daemon=True)
        self.thread.start()
        self.time = time

    def _open(self, i):
        try:
            sock = socket.create_connection(("127.0.0.1", self.port), timeout=5)
            if i < self.bodies:
                sock.sendall(b"POST /v1/actions/line_get_quota HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                             b"Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n{")
            else:
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            return sock
        except OSError:
            return None

    def _drip(self):
        n = 0
        while not self.stopped.wait(self.every):
            n += 1
            for i, sock in enumerate(self.socks):
                if self.stopped.is_set():
                    return
                try:
                    if sock is None:
                        raise OSError
                    sock.sendall(b" " if i < self.bodies else b"X-Drip-%d: x\r\n" % n)
                except OSError:
                    if sock is not None:
                        sock.close()
                    self.socks[i] = self._open(i)
                    self.reopened += 1

    def stop(self):
        self.stopped.set()
        self.thread.join(10)
        for sock in self.socks:
            if sock is not None:
                sock.close()


def test_600_slow_clients_never_delay_a_caller_by_2_s(start_service, service_sandbox, service_config, api, keys):
    """The finding: 600 connections dripping one header line every 2 s
    delayed /healthz by 20-30 s. Now /healthz and an action answer within
    2 s while they are held (about 10 s: the drip must run a few rounds)."""
    import time

    url = start_service(service_config(service_sandbox))
    port = int(url.rsplit(":", 1)[1])
    attack = Slowloris(port)
    try:
        time.sleep(4.5)  # two rounds of drips
        for _ in range(3):
            status, took = _healthz_time(url)
            assert status == 200 and took < 2.0, took
            (status, _, got), took = _timed(lambda: api(url + "/v1/actions/line_get_quota", "POST",
                                                        {"asset": "ops_line"}, key=keys.api))
            assert status == 200 and took < 2.0, (took, got)
            time.sleep(1.0)
    finally:
        attack.stop()
    assert service_sandbox.stats()["requests"] == 3  # no dripped body ever reached the app
    assert "Traceback" not in url.log_text()
    assert any(r.get("event") == "connections_shed" for r in url.log_lines())


def test_all_routes_together_keep_threads_for_everyone_else(tmp_path):
    """The service sets a total bound below its thread count: with it
    reached, a delivery to any route is 503 at once; freed, it is taken."""
    from line_connector import state
    from line_connector.service.webhooks import Ingress, Route
    from line_connector.sinks import Sink

    gate = threading.Event()
    entered = threading.Semaphore(0)

    class Blocking(Sink):
        def hand_over(self, destination, events):
            entered.release()
            gate.wait(20)

    secret = "routeSECRET-0123456789abcdef"
    store = state.FileStore(str(tmp_path / "state"))
    ingress = Ingress.for_routes([Route("a", secret, [Blocking("a")], concurrency=4),
                                  Route("b", secret, [Blocking("b")], concurrency=4)],
                                 store=store, log=lambda *a, **k: None, total_limit=2)

    def deliver(route, i):
        body, sig = _signed([_event("01HTOTAL%s%018d" % (route.upper(), i))], secret)
        return ingress.handle(route, {"x-line-signature": sig}, body)

    held = [threading.Thread(target=deliver, args=("a", i)) for i in range(2)]
    for t in held:
        t.start()
    assert entered.acquire(timeout=10) and entered.acquire(timeout=10)
    (status, answer), took = _timed(lambda: deliver("b", 1))
    assert status == 503 and took < 1.0 and "busy" in answer["error"]
    gate.set()
    for t in held:
        t.join(20)
    gate.clear()
    threading.Timer(0.2, gate.set).start()
    assert deliver("b", 2)[0] == 200
