"""Transport rules: TLS verified by default, the asset's proxy honoured,
connect and read timeouts on every request, retries bounded in count and time."""
import os
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest
import requests
import responses

from helpers import TEXT, USER
from line_connector import ActionError, run_action
from line_connector.http import DEFAULT_TIMEOUT, HttpClient, Request, RetryPolicy
from line_connector.manifest import manifest
from line_connector.sandbox.line_tokens import demo_private_jwk
from line_connector.sandbox import Sandbox

TLS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fixtures", "tls")


@pytest.fixture
def https_sandbox():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(os.path.join(TLS, "cert.pem"), os.path.join(TLS, "key.pem"))
    with Sandbox(ssl_context=ctx) as sb:
        yield sb


def test_self_signed_server_fails_unless_verify_ssl_is_false(https_sandbox, monkeypatch):
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    asset = https_sandbox.demo_assets()["line_channel_access_token"]
    assert asset["url"].startswith("https://")
    with pytest.raises(ActionError) as exc:
        run_action("line_send_push", asset, {"to": USER, "messages": TEXT}, client=HttpClient())
    (result,) = exc.value.output
    assert result["status_code"] == 0 and result["reason"] == "TLS verification failed"
    assert result["attempts"] == 1  # a certificate problem is not retried
    assert result["delivery"] == "not sent"  # the handshake failed: no byte of the request was written
    assert https_sandbox.line.deliveries == []
    (ok,) = run_action("line_send_push", dict(asset, verify_ssl=False), {"to": USER, "messages": TEXT})
    assert ok["ok"] and len(https_sandbox.line.deliveries) == 1


def test_a_ca_bundle_named_by_the_environment_keeps_verification_on(https_sandbox, monkeypatch):
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", os.path.join(TLS, "cert.pem"))
    asset = https_sandbox.demo_assets()["line_channel_access_token"]
    (ok,) = run_action("line_get_bot_info", asset, {}, client=HttpClient())
    assert ok["ok"]


class _Proxy(BaseHTTPRequestHandler):
    """A forwarding HTTP proxy that remembers what it forwarded."""
    protocol_version = "HTTP/1.1"
    seen = []

    def log_message(self, *a):
        pass

    def _forward(self):
        import http.client

        target = urlsplit(self.path)
        _Proxy.seen.append((self.command, self.path))
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        conn = http.client.HTTPConnection(target.hostname, target.port, timeout=10)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("proxy-connection", "connection")}
        conn.request(self.command, target.path + ("?" + target.query if target.query else ""), body, headers)
        resp = conn.getresponse()
        data = resp.read()
        self.send_response(resp.status, resp.reason)
        for k, v in resp.getheaders():
            if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = _forward


def test_http_proxy_is_honoured(line_sandbox):
    proxy = ThreadingHTTPServer(("127.0.0.1", 0), _Proxy)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    try:
        _Proxy.seen.clear()
        asset = dict(line_sandbox.demo_assets()["line_channel_access_token"],
                     http_proxy="http://127.0.0.1:%d" % proxy.server_address[1])
        (result,) = run_action("line_send_push", asset, {"to": USER, "messages": TEXT})
        assert result["ok"] and line_sandbox.line.per_recipient[USER] == 1
        assert _Proxy.seen == [("POST", line_sandbox.url + "/v2/bot/message/push")]
    finally:
        proxy.shutdown()
        proxy.server_close()


def test_environment_proxies_are_ignored(line_sandbox, monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")
    (result,) = run_action("line_get_bot_info", line_sandbox.demo_assets()["line_channel_access_token"], {},
                           client=HttpClient())
    assert result["ok"]


HTTP_ACTIONS = [a for a in manifest().actions.values() if a.name != "line_parse_webhook"]


@pytest.mark.parametrize("spec", HTTP_ACTIONS, ids=[a.name for a in HTTP_ACTIONS])
@responses.activate
def test_every_request_has_connect_and_read_timeouts(spec):
    import re
    for method in ("GET", "POST"):
        responses.add(method, re.compile(r"https://.*/api/get_token.*"),
                      json={"item": {"token": "tok-1234", "expires_in": "86400"}, "ret_code": "000000"})
        responses.add(method, re.compile(r"https://.*/oauth2/v3/token"), json={"access_token": "a-1234", "expires_in": 900})
        responses.add(method, re.compile(r"https://.*/oauth2/v2\.1/token"),
                      json={"access_token": "v21-1234", "expires_in": 900, "token_type": "Bearer", "key_id": "k"})
        responses.add(method, re.compile(r"https://.*"), json={})
    inputs = dict(spec.example)
    for asset in ({"token": "t-1234"} if "line_channel_access_token" in spec.assets else None,
                  {"client_id": "1", "client_secret": "s-1234"} if "line_oauth2_client_credentials" in spec.assets else None,
                  {"access_key": "a", "access_secret": "s-1234"} if "nxcloud" in spec.assets else None,
                  {"appid": "a", "app_key": "k-1234"} if "sobot" in spec.assets else None,
                  {"channel_id": "1650000000", "kid": "kid-1", "private_key": demo_private_jwk()}
                  if "line_channel_jwt" in spec.assets else None):
        if asset is not None:
            try:
                run_action(spec.name, asset, dict(inputs, force_refresh=True) if spec.name == "sobot_get_token"
                           else inputs)
            except ActionError:
                pass  # an empty {} answer may be judged a failure: only the transport matters here
    assert responses.calls
    for call in responses.calls:
        assert call.request.req_kwargs["timeout"] == DEFAULT_TIMEOUT, call.request.url


def test_retries_are_bounded_in_count_and_in_time(monkeypatch):
    clock = [0.0]
    monkeypatch.setattr(time, "monotonic", lambda: clock[0])
    slept, attempts = [], []

    def sleep(s):
        slept.append(s)
        clock[0] += s + 0.05  # a sleep may overrun a little, as real ones do

    def answer(request):
        attempts.append((clock[0], request.req_kwargs["timeout"]))
        return 503, {}, "{}"

    with responses.RequestsMock() as rsps:
        rsps.add_callback("POST", "https://svc.example/x", callback=answer)
        many = RetryPolicy(max_attempts=1000, deadline=10.0, backoff=0.5, backoff_max=2.0,
                           retry_statuses=frozenset({503}))
        result = HttpClient(sleep=sleep).send(Request("POST", "https://svc.example/x", body=b"{}", retry=many))
        assert result["status_code"] == 503 and result["delivery"] == "unknown"
        assert 4 <= result["attempts"] == len(attempts) < 1000
        assert attempts[0] == (0.0, DEFAULT_TIMEOUT)  # the first attempt keeps the caller's timeouts
        for started, (connect, read) in attempts[1:]:
            # a retry starts before the deadline and its own timeouts cannot carry it past it
            assert started + max(connect, read) <= 10.0, (started, connect, read)
        assert all(s <= 2.0 for s in slept)  # backoff is capped
        assert clock[0] <= 10.0 + 0.05  # no sleep is started that would end past the deadline
        few = RetryPolicy(max_attempts=3, deadline=1000.0, retry_statuses=frozenset({503}))
        before = len(rsps.calls)
        assert HttpClient(sleep=sleep).send(Request("POST", "https://svc.example/x", retry=few))["attempts"] == 3
        assert len(rsps.calls) - before == 3


def test_backoff_has_jitter():
    policy = RetryPolicy(backoff=1.0, backoff_max=8.0)
    delays = {round(policy.delay(3), 6) for _ in range(50)}
    assert len(delays) > 40 and all(2.0 <= d <= 4.0 for d in delays)


def test_a_closed_port_is_retried_as_unsent_and_reported_not_sent():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    with pytest.raises(ActionError) as exc:
        run_action("line_send_push", {"url": "http://127.0.0.1:%d" % port, "token": "t-1234"},
                   {"to": USER, "messages": TEXT}, client=HttpClient(sleep=lambda s: None))
    (result,) = exc.value.output
    assert result["reason"] == "Connection failed" and result["delivery"] == "not sent"
    assert result["attempts"] == 4


def test_retries_stop_at_the_action_deadline_too(monkeypatch):
    """The policy allows 1000 attempts over 1000 s, the action's deadline 5 s:
    no attempt starts past it, no attempt's timeouts reach past it, and the
    result after the last one is the last answer, not a made-up one."""
    from line_connector.http import MIN_ATTEMPT_TIME, deadline_scope

    clock = [100.0]
    monkeypatch.setattr(time, "monotonic", lambda: clock[0])
    attempts = []

    def sleep(s):
        clock[0] += s

    def answer(request):
        attempts.append((clock[0], request.req_kwargs["timeout"]))
        clock[0] += 0.3  # each answer takes a while
        return 503, {}, "{}"

    with responses.RequestsMock() as rsps:
        rsps.add_callback("POST", "https://svc.example/x", callback=answer)
        many = RetryPolicy(max_attempts=1000, deadline=1000.0, backoff=0.2, backoff_max=0.4,
                           retry_statuses=frozenset({503}))
        with deadline_scope(5):
            result = HttpClient(sleep=sleep).send(Request("POST", "https://svc.example/x", body=b"{}", retry=many))
    assert result["status_code"] == 503 and result["attempts"] == len(attempts) > 3
    for started, (connect, read) in attempts:
        assert started + MIN_ATTEMPT_TIME <= 105.0 and started + max(connect, read) <= 105.0 + 1e-9
    assert result["delivery"] == "unknown"


def test_a_request_after_the_deadline_is_not_sent(monkeypatch):
    from line_connector.http import deadline_scope

    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.add("POST", "https://svc.example/x", json={})
        with deadline_scope(0.01):
            time.sleep(0.05)
            result = HttpClient().send(Request("POST", "https://svc.example/x", body=b"{}", extra={"retry_key": "k"}))
        assert len(rsps.calls) == 0
    assert result["delivery"] == "not sent" and "deadline" in result["note"] and result["retry_key"] == "k"
    assert result["status_code"] == 0 and "attempts" not in result


# HttpClient sends a PreparedRequest it builds itself (``HttpClient._prepare``)
# rather than calling ``Session.request`` (which merges settings this session
# never has; ~150 us per request). The reference is requests' own
# ``Session.request``: the same request must reach the server as the same bytes.
_WIRE_CASES = [
    ("POST", "/v2/bot/message/push", None, {"Content-Type": "application/json", "X-Line-Retry-Key": "k"},
     b'{"to":"U1","messages":[]}'),
    ("GET", "/v2/bot/info", {"start": "x y", "limit": 5, "skip": None}, {"Accept": "application/json"}, None),
    ("GET", "/v2/bot/info", {"start": "other"}, {}, None),  # the same URL, other params: another query
    ("GET", "/v2/bot/followers/ids?a=1", [("b", "2"), ("b", "3")], {"user-agent": "other/1", "X-Empty": None}, None),
    ("DELETE", "/v2/bot/richmenu/r%C3%A9", None, {}, None),
    ("POST", "/v1/message/mt", {}, {"accept-encoding": "identity", "Content-Type": "text/plain"}, b""),
    ("PUT", "/v2/bot/audienceGroup/upload", None, {"Content-Type": "application/json"}, "é".encode() * 3),
    ("GET", "/v2/bot/insight", {"ids": ["a", "b"], "x": "1"}, {}, None),  # unhashable params: not remembered
    ("GET", "userinfo:/v2/bot/info", None, {}, None),  # a user and password in the URL: Basic auth
] + [
    # equal as dict keys, written differently by requests: never one remembered URL for two of them
    ("GET", "/v2/bot/q", params, {}, None)
    for params in ({"a": 1}, {"a": True}, {"a": 1.0}, {"a": 0.0}, {"a": -0.0}, [("a", 1)], [("a", True)],
                   {1: "x"}, {True: "x"}, {"a": b"1"}, {"a": "1"}, "a=2&b=3")
]


class _Recorder(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen = []

    def log_message(self, *a):
        pass

    def _any(self):
        size = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(size) if size else b""
        self.seen.append((self.requestline, [(k, v) for k, v in self.headers.items() if k != "Host"], body))
        self.send_response(200)
        self.send_header("Set-Cookie", "lb=node-7; Path=/")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    do_GET = do_POST = do_PUT = do_DELETE = _any


@pytest.mark.parametrize("with_cookie", [False, True])
def test_the_pack_sends_what_session_request_sends(with_cookie):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = "http://127.0.0.1:%d" % server.server_address[1]
    try:
        for method, path, params, headers, body in _WIRE_CASES:
            seen = []
            url = base + path
            if path.startswith("userinfo:"):
                url = base.replace("http://", "http://us%40er:p%3Ass@") + path[len("userinfo:"):]
            for way in ("requests", "pack", "pack"):  # twice: the pack remembers prepared URLs
                client = HttpClient()
                if with_cookie:  # a cookie the server set earlier goes back with the next request
                    client.session.get(base + "/set-cookie", timeout=5)
                _Recorder.seen.clear()
                if way == "requests":
                    client.session.request(method, url, params=params, data=body, headers=dict(headers),
                                           timeout=(5, 5), verify=client.verify, proxies=client.proxies,
                                           allow_redirects=False, stream=True).close()
                else:
                    # a generator of pairs (used up once: never read twice) where the case has a list
                    given = (pair for pair in params) if isinstance(params, list) else params
                    result = client.send(Request(method, url, params=given, headers=dict(headers), body=body))
                    assert result["status_code"] == 200, result
                (one,) = _Recorder.seen
                seen.append(one)
                client.close()
            assert seen[0] == seen[1] == seen[2], (method, path)
            assert path.startswith("userinfo:") == any(k == "Authorization" for k, _ in seen[1][1])
            if not path.startswith("userinfo:"):  # (requests matches cookies on the whole netloc, user included)
                assert with_cookie == any(k == "Cookie" and "lb=node-7" in v for k, v in seen[1][1])
    finally:
        server.shutdown()
        server.server_close()
