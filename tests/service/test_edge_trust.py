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
