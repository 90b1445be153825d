"""A canary secret in every secret field of every asset never appears in
any output: success, failure, dry run, input and asset errors, exception
text, reprs and logs, in plain, URL-encoded, base64 or repr-escaped form.
The second half runs a canary through every error class issue 12 found."""
import base64
import json
import logging
import re
from urllib.parse import quote, quote_plus

import pytest
import responses

from helpers import run_cli
from line_connector import ActionError, InputError
from line_connector import run_action as _run_action
from line_connector.http import HttpClient
from line_connector.manifest import manifest
from line_connector.sandbox import FaultPlan, Sandbox, webhook_body

CANARY = "Cnry-9x!Secret/+=~q7"
SECRET_FIELDS = ("token", "client_secret", "channel_secret", "access_secret", "app_key")
CANARY_CREDS = {k: CANARY for k in SECRET_FIELDS}
ACTIONS = list(manifest().actions.values())


def run_action(*args, **kw):
    """run_action with retries that do not wait (the fault path retries a lot)."""
    kw.setdefault("client", HttpClient(sleep=lambda s: None))
    return _run_action(*args, **kw)


def forms(secret):
    """Plain, URL-encoded, base64 and repr-escaped forms (as Python's own
    error texts quote a value)."""
    raw = secret.encode("utf-8", "surrogatepass")
    out = {secret, quote(secret, safe=""), quote_plus(secret), repr(secret)[1:-1], repr(raw)[2:-1],
           secret.encode("unicode_escape").decode(), secret.encode("ascii", "backslashreplace").decode()}
    for enc in (base64.b64encode, base64.urlsafe_b64encode):
        text = enc(raw).decode()
        out |= {text, text.rstrip("=")}
    return out


LEAKS = forms(CANARY)


def assert_clean(*texts):
    for text in texts:
        for form in LEAKS:
            assert form not in text, "secret leaked as %r in: %s" % (form, text[:300])


def inputs_for(spec, sandbox):
    inputs = dict(spec.example)
    if "replyToken" in inputs:  # reply tokens work once
        import uuid
        inputs["replyToken"] = uuid.uuid4().hex
    if spec.name == "line_get_narrowcast_progress":
        inputs["requestId"] = run_action("line_send_narrowcast", {}, {"messages": [{"type": "text", "text": "x"}]},
                                         sandbox=sandbox)[0]["request_id"]
    if spec.name == "line_parse_webhook":
        inputs["body"], inputs["signature"] = webhook_body([{"type": "unfollow", "mode": "active", "timestamp": 1}],
                                                           channel_secret=CANARY)
    return inputs


def outcome_text(fn):
    try:
        return json.dumps(fn(), ensure_ascii=False)
    except (InputError, ActionError) as exc:
        detail = exc.to_json() if isinstance(exc, InputError) else exc.output
        return " ".join([str(exc), repr(exc), json.dumps(detail, ensure_ascii=False)])


@pytest.mark.parametrize("spec", ACTIONS, ids=[a.name for a in ACTIONS])
def test_canary_never_leaks_in_any_path(spec, caplog):
    caplog.set_level(logging.DEBUG)
    texts = []
    for asset_name in spec.assets:
        # a fresh sandbox per asset: an example may change what it acts on
        # (a deleted rich menu, a chat left), so a second run would be refused
        with Sandbox(credentials=CANARY_CREDS) as sb:
            asset = sb.demo_assets()[asset_name]
            inputs = inputs_for(spec, sb)
            ok = run_action(spec.name, asset, inputs)  # success path really succeeds with the canary
            texts.append(json.dumps(ok, ensure_ascii=False))
            texts.append(outcome_text(lambda: run_action(spec.name, asset, inputs, dry_run=True)))
            texts.append(outcome_text(lambda: run_action(spec.name, asset, {"bogus": CANARY})))
            texts.append(outcome_text(lambda: run_action(spec.name, dict(asset, verify_ssl="no"), inputs)))
            texts.append(outcome_text(lambda: run_action(spec.name, dict(asset, url="bad"), {"bogus": 1})))
    with Sandbox() as refusing:  # the canary is now the wrong secret: the services refuse it
        for asset_name in spec.assets:
            asset = dict(refusing.demo_assets()[asset_name], **{k: CANARY for k in SECRET_FIELDS
                                                                if k in refusing.demo_assets()[asset_name]})
            texts.append(outcome_text(lambda: run_action(spec.name, asset, inputs_for(spec, refusing))))
    with Sandbox(credentials=CANARY_CREDS, faults=FaultPlan(script=["500"] * 10)) as failing:
        asset = failing.demo_assets()[spec.assets[0]]
        texts.append(outcome_text(lambda: run_action(spec.name, asset, inputs_for(spec, failing))))
    texts.append("\n".join(r.getMessage() for r in caplog.records))
    assert_clean(*texts)


def test_reprs_of_credential_objects_are_masked():
    from line_connector.actions.line.auth import line_auth
    from line_connector.actions.nxcloud.signing import NxSigner
    from line_connector.actions.sobot.token import SobotToken
    from line_connector.http import Request
    from line_connector.redaction import Redactor, Secret

    objects = [line_auth("line_channel_access_token", {"token": CANARY}, Redactor()),
               line_auth("line_oauth2_client_credentials", {"token_url": "https://x", "client_id": "1",
                                                            "client_secret": CANARY}, Redactor()),
               NxSigner("ak", CANARY, "7", "mt"), SobotToken("https://x", "app", CANARY, Redactor()), Secret(CANARY)]
    objects.append(Request("POST", "https://x", auth=objects[0]))
    assert_clean(*[repr(o) for o in objects], *[str(vars(o)) for o in objects[:4]])


@pytest.mark.parametrize("action", ["line_send_push", "nxcloud_send_super_message", "sobot_query_task_list",
                                    "line_parse_webhook"])
def test_cli_stdout_and_stderr_stay_clean(action):
    spec = manifest().action(action)
    with Sandbox(credentials=CANARY_CREDS) as sb:
        asset = sb.demo_assets()[spec.assets[0]]
        inputs = inputs_for(spec, sb)
        for args, payload in [(("run", action), {"asset": asset, "inputs": inputs}),
                              (("run", action, "--dry-run"), {"asset": asset, "inputs": inputs}),
                              (("run", action), {"asset": asset, "inputs": {"bad": CANARY}}),
                              (("run", action), {"asset": dict(asset, url="https://127.0.0.1:1"), "inputs": inputs})]:
            code, out, err = run_cli(*args, stdin=payload)
            assert code in (0, 1, 2)
            assert_clean(out, err)


# ---------------------------------------------------------------------------
# Issue 12: one canary through every error class the adversarial review found.
# Each case asserts the canary appears in none of its forms (plain,
# URL-encoded, base64, repr-escaped) in what the Python API raises (str, repr,
# args, details, output, __cause__/__context__, the formatted traceback) and in
# the CLI's stdout and stderr.

import contextlib  # noqa: E402
import threading  # noqa: E402
import traceback  # noqa: E402
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer  # noqa: E402

from line_connector.errors import ConnectorError  # noqa: E402
from line_connector.redaction import Redactor  # noqa: E402

CUT = 64 * 1024  # SPEC 7: the first 64 KiB of a body are kept
# a canary with characters that repr/unicode_escape/JSON/URL encodings all change
CANARY_U = "Cnry-\u00fc\u20ac-Secret-q7"


def exception_text(exc):
    """Everything an exception can show: its text, repr, args, attributes and
    its whole chain, formatted as a traceback would be."""
    parts = [str(exc), repr(exc), repr(exc.args), repr(exc.__cause__), repr(exc.__context__),
             "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))]
    if isinstance(exc, InputError):
        parts.append(json.dumps(exc.to_json(), ensure_ascii=False))
    if isinstance(exc, ActionError):
        parts.append(json.dumps(exc.output, ensure_ascii=False))
    return " ".join(parts)


def assert_never(secret, *texts):
    for text in texts:
        for form in forms(secret):
            assert form not in text, "secret leaked as %r in: %s" % (form, text[:400])


def api_error(*args, **kw):
    """The exception run_action raises (the test fails if it returns)."""
    with pytest.raises(ConnectorError) as info:
        _run_action(*args, **kw)  # the real client path: the asset's proxy is used
    return info.value


@contextlib.contextmanager
def local_server(handler_cls):
    """A ThreadingHTTPServer on 127.0.0.1 (free port) that stops by itself."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler_cls)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield "http://127.0.0.1:%d" % server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


class _Quiet(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def reply(self, status, body, content_type="text/plain", headers=()):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


PUSH = {"to": "U4af4980629a0b1c2d3e4f5a6b7c8d9e0", "messages": [{"type": "text", "text": "hi"}]}


def test_proxy_password_in_an_invalid_proxy_url_is_exit_2_naming_the_field():
    """Was: requests' InvalidURL text printed the password, exit 1 'outcome unknown'."""
    for proxy in ("http://proxyuser:%s@127.0.0.1:99999" % CANARY,      # port out of range
                  "http://proxyuser:%s@127.0.0.1:port" % quote(CANARY, safe=""),
                  "socks9://proxyuser:%s@127.0.0.1:3128" % CANARY):  # bad scheme
        asset = {"token": "tok-1234", "http_proxy": proxy}
        exc = api_error("line_send_push", asset, PUSH)
        assert isinstance(exc, InputError)
        assert exc.details[0]["path"] == "asset.http_proxy"
        code, out, err = run_cli("run", "line_send_push", stdin={"asset": asset, "inputs": PUSH})
        assert code == 2 and out == ""
        assert json.loads(err)["details"][0]["path"] == "asset.http_proxy"
        assert_never(CANARY, exception_text(exc), out, err)


class _EchoingProxy(_Quiet):
    """An HTTP proxy that refuses every request and echoes the credentials it
    got back in a header and in the body (as a misconfigured proxy might)."""
    seen = []

    def do_POST(self):
        auth = self.headers.get("Proxy-Authorization", "")
        _EchoingProxy.seen.append(auth)
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.reply(407, ("proxy refuses; you sent Proxy-Authorization: %s" % auth).encode(),
                   headers=[("X-Echo", auth)])

    do_GET = do_POST


def test_proxy_credentials_still_work_and_are_never_shown():
    """http_proxy may carry user:password: it is used (the proxy receives
    Basic auth) and masked, even when the proxy echoes it back."""
    _EchoingProxy.seen.clear()
    with local_server(_EchoingProxy) as proxy_url, Sandbox() as sb:
        proxy = proxy_url.replace("http://", "http://proxyuser:%s@" % quote(CANARY, safe=""))
        asset = dict(sb.demo_assets()["line_channel_access_token"], http_proxy=proxy)
        exc = api_error("line_send_push", asset, PUSH)
        assert isinstance(exc, ActionError) and exc.output[0]["status_code"] == 407
        code, out, err = run_cli("run", "line_send_push", stdin={"asset": asset, "inputs": PUSH})
        assert code == 1
    expected = "Basic " + base64.b64encode(("proxyuser:" + CANARY).encode()).decode()
    assert _EchoingProxy.seen and set(_EchoingProxy.seen) == {expected}
    assert_never(CANARY, exception_text(exc), out, err)


@pytest.mark.parametrize("field", ["url", "token_url"])
def test_user_info_in_a_request_url_is_an_invalid_asset(field):
    asset = {"client_id": "1650000000", "client_secret": "cs-1234",
             field: "https://someone:%s@api.line.me" % CANARY}
    exc = api_error("line_send_push", asset, PUSH)
    assert isinstance(exc, InputError) and [d["path"] for d in exc.details] == ["asset." + field]
    code, out, err = run_cli("run", "line_send_push", stdin={"asset": asset, "inputs": PUSH})
    assert code == 2 and json.loads(err)["details"][0]["path"] == "asset." + field
    assert_never(CANARY, exception_text(exc), out, err)


def test_user_info_in_nxcloud_super_message_url_is_an_invalid_asset():
    spec = manifest().action("nxcloud_send_super_message")
    asset = {"access_key": "ak", "access_secret": "as-1234",
             "super_message_url": "https://u:%s@api.nxcloud.com" % CANARY}
    exc = api_error(spec.name, asset, spec.example)
    assert isinstance(exc, InputError) and [d["path"] for d in exc.details] == ["asset.super_message_url"]
    assert_never(CANARY, exception_text(exc))


# requests quotes an invalid header value with repr() (InvalidHeader) and
# crashes with UnicodeEncodeError on a non-latin-1 one (the error keeps the
# whole string): such credentials are refused before anything is built.
BAD_HEADER_VALUES = {"vertical_tab": CANARY + "\x0b", "delete": CANARY + "\x7f", "space": CANARY + " x",
                     "newline": CANARY + "\n", "non_latin1": CANARY_U, "latin1": CANARY + "\u00e9"}


@pytest.mark.parametrize("kind", sorted(BAD_HEADER_VALUES))
@pytest.mark.parametrize("action,field,asset", [
    ("line_send_push", "token", {}),
    ("nxcloud_send_line", "access_key", {"access_secret": "as-1234"}),
])
def test_credentials_sent_in_headers_must_be_visible_ascii(kind, action, field, asset):
    value = BAD_HEADER_VALUES[kind]
    secret = CANARY_U if kind == "non_latin1" else CANARY
    asset = dict(asset, **{field: value})
    inputs = PUSH if action == "line_send_push" else manifest().action(action).example
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.add("POST", re.compile(r"https?://.*"), json={})
        exc = api_error(action, asset, inputs)
        assert len(rsps.calls) == 0, "an invalid credential was sent"
    assert isinstance(exc, InputError)
    assert ("asset." + field) in [d["path"] for d in exc.details]
    assert any("visible ASCII" in d["message"] for d in exc.details)
    code, out, err = run_cli("run", action, stdin={"asset": asset, "inputs": inputs})
    assert code == 2 and out == ""
    if field == "access_key":  # not a password field: the value is simply never quoted
        secret = value
    assert_never(secret, exception_text(exc), out, err)


class _EchoAcrossCut(_Quiet):
    """Answers 200 text/plain: padding, then the Authorization header it got,
    placed so that the 64 KiB cut falls ``offset`` characters into the token."""
    offset = 1

    def do_GET(self):
        auth = self.headers.get("Authorization", "").encode()
        token_at = len(b"Bearer ")
        pad = b"x" * (CUT - token_at - self.offset)
        self.reply(200, pad + auth + b" and then more text" + b"y" * 1000)


@pytest.mark.parametrize("offset", [1, 2, 5, len(CANARY) // 2, len(CANARY) - 1])
def test_token_echoed_across_the_64k_cut_leaves_no_prefix(offset):
    """Was: the first characters of a token echoed back across the cut were printed."""
    handler = type("Echo%d" % offset, (_EchoAcrossCut,), {"offset": offset})
    with local_server(handler) as url:
        asset = {"url": url, "token": CANARY}
        try:
            output = run_action("line_get_bot_info", asset, {})
        except ActionError as exc:
            output, text = exc.output, exception_text(exc)
        else:
            text = ""
        (result,) = output
        assert result.get("raw_body_truncated") is True
        raw = result["raw_body"]
        assert raw.startswith("x" * 1000) and raw.endswith("Bearer ***")
        for k in range(1, len(CANARY)):  # no prefix of the token at the cut
            assert not raw.endswith(CANARY[:k])
        code, out, err = run_cli("run", "line_get_bot_info", stdin={"asset": asset, "inputs": {}})
        assert code in (0, 1)
        assert json.loads(out)[0]["raw_body"].endswith("Bearer ***")
    assert_never(CANARY, text, json.dumps(output), out, err)


class _EchoingTokenServer(_Quiet):
    """An OAuth token endpoint that fails and echoes the form it got
    (client_secret URL-encoded) in its body and a header."""

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.reply(400, json.dumps({"error": "invalid_client", "error_description": "got " + body.decode()}).encode(),
                   content_type="application/json", headers=[("X-Echo", body.decode())])


def test_oauth_failure_echoing_the_form_and_request_reprs_stay_clean():
    from line_connector.http import Request

    with local_server(_EchoingTokenServer) as url:
        asset = {"url": url, "token_url": url + "/oauth2/v3/token", "client_id": "1650000000",
                 "client_secret": CANARY}
        exc = api_error("line_send_push", asset, PUSH)
        code, out, err = run_cli("run", "line_send_push", stdin={"asset": asset, "inputs": PUSH})
    assert isinstance(exc, ActionError) and code == 1
    assert "got grant_type=client_credentials" in json.dumps(exc.output)  # the echo itself is kept
    body = ("grant_type=client_credentials&client_id=1&client_secret=" + quote_plus(CANARY)).encode()
    request = Request("POST", "https://api.line.me/oauth2/v3/token", body=body)
    assert_never(CANARY, exception_text(exc), out, err, repr(request), str(request))


class _Exploding:
    """A client whose send raises what a bug or a library might, with the
    secret inside its text and its attributes."""

    def __init__(self, exc):
        self.exc = exc

    def send(self, request):
        raise self.exc


@pytest.mark.parametrize("make", [
    lambda s: ValueError("boom with Bearer " + s),
    lambda s: UnicodeEncodeError("latin-1", "Bearer " + s, 7, 8, "ordinal not in range(256)"),
    lambda s: KeyError(s),
    lambda s: RuntimeError("escaped %r" % s.encode()),
], ids=["ValueError", "UnicodeEncodeError", "KeyError", "bytes_repr"])
def test_unexpected_exceptions_from_the_python_api_are_scrubbed_and_unchained(make):
    from line_connector.errors import InternalError

    for secret in (CANARY, CANARY_U):
        asset = {"client_id": "1650000000", "client_secret": secret}
        exc = api_error("line_send_push", asset, PUSH, client=_Exploding(make(secret)))
        assert isinstance(exc, InternalError)
        assert exc.__cause__ is None and exc.__context__ is None
        assert exc.kind == type(make(secret)).__name__
        assert_never(secret, exception_text(exc))


def test_redactor_masks_every_form_and_every_cut_prefix():
    r = Redactor([CANARY_U])
    for form in forms(CANARY_U) | {json.dumps(CANARY_U)[1:-1], json.dumps(CANARY_U, ensure_ascii=False)[1:-1]}:
        assert r.scrub("<%s>" % form) == "<***>", form
    for form in forms(CANARY_U):
        for k in range(1, len(form)):
            cut = r.scrub_obj({"raw_body": "head " + form[:k], "raw_body_truncated": True})["raw_body"]
            assert cut == "head ***", (form, k)
    # a multi-byte character split by the byte cut decodes to U+FFFD: still masked
    assert Redactor([CANARY_U]).scrub_cut("a " + CANARY_U[:6] + "\ufffd") == "a ***"
    # without the truncation mark nothing is guessed
    assert r.scrub_obj({"raw_body": "head C"})["raw_body"] == "head C"
    # registering a value that cannot be URL-encoded (a lone surrogate) never fails
    Redactor(["abc\ud800def"]).scrub("x")


def test_every_registered_url_password_form_is_masked():
    r = Redactor()
    r.add_url("http://proxyuser:%s@proxy.example:3128" % quote(CANARY, safe=""))
    assert_never(CANARY, r.scrub("InvalidURL: http://proxyuser:%s@h:1 / %s / %s"
                                 % (CANARY, quote(CANARY, safe=""), repr(CANARY))))


# ---------------------------------------------------------------------------
# A server echoing the token in every encoding a real service might use.
# Real LINE channel access tokens hold "+", "/" and "=" (base64 text), so
# their percent-encodings carry escapes that servers write in either case.
ECHO_CANARY = "CANARY+s3cr/et=XYZ"


def echo_forms(token):
    raw = token.encode()
    def lower(text):
        return re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), text)

    out = [token, quote(token, safe=""), lower(quote(token, safe="")), lower(quote_plus(token)),
           raw.hex(), raw.hex().upper(),
           repr(raw), repr(token), token.replace("/", "\\/")]
    for enc in (base64.b64encode, base64.urlsafe_b64encode):
        out += [enc(raw).decode(), enc(raw).decode().rstrip("="),
                enc(b"Bearer " + raw).decode(),             # offset 7 = 1 mod 3
                enc(b"user:" + raw + b"!").decode(),        # offset 5 = 2 mod 3, with a suffix
                enc(b"ab" + raw + b"trailing").decode(),    # offset 2
                enc(b"x" + raw).decode(),                   # offset 1
                enc(b"abc" + raw + b"z").decode()]          # offset 0, with a suffix
    return out


class _EchoEverywhere(_Quiet):
    """Echoes the bearer token it got, in every form, in a non-JSON body
    (kept raw), a JSON error body and a header."""

    def do_GET(self):
        token = self.headers.get("Authorization", "")[len("Bearer "):]
        text = " | ".join(echo_forms(token))
        if self.path.endswith("/json"):
            self.reply(400, json.dumps({"message": text, "details": [{"message": text}]}).encode(),
                       content_type="application/json", headers=[("X-Echo", text)])
        else:
            self.reply(200, ("echo: " + text).encode(), headers=[("X-Echo", text)])


def _decoded_runs(text):
    """Every hex and base64 run of ``text`` decoded at every alignment: an
    independent check that no encoding of the token survived."""
    import binascii

    for run in re.findall(r"[0-9A-Fa-f]{8,}", text):
        for shift in (0, 1):
            part = run[shift:]
            yield binascii.unhexlify(part[:len(part) // 2 * 2])
    for run in re.findall(r"[A-Za-z0-9+/_\-]{6,}", text):
        for shift in range(4):
            part = run[shift:]
            part = part[:len(part) // 4 * 4]
            for alt in (b"+/", b"-_"):
                try:
                    yield base64.b64decode(part.encode(), altchars=alt)
                except (binascii.Error, ValueError):
                    pass


def assert_token_absent(token, text):
    from urllib.parse import unquote, unquote_plus

    for view in (text, unquote(text), unquote_plus(text), text.replace("\\/", "/")):
        assert token not in view, "token readable in %r" % text[:300]
    raw = token.encode()
    windows = {raw[i:i + 4] for i in range(len(raw) - 3)}
    for decoded in _decoded_runs(text):
        for w in windows:
            assert w not in decoded, "token bytes %r decodable from the output" % w


@pytest.mark.parametrize("path", ["/text", "/json"])
def test_a_server_echoing_the_token_in_any_encoding_leaks_nothing_on_the_cli(path):
    with local_server(_EchoEverywhere) as url:
        asset = {"url": url + path, "token": ECHO_CANARY}
        # the endpoint path is appended to the asset's url; the handler keys on its end
        code, out, err = run_cli("run", "line_get_bot_info", stdin={"asset": asset, "inputs": {}})
    assert code in (0, 1) and out
    assert "echo" in out or "message" in out  # the echo itself reached the output, masked
    assert_token_absent(ECHO_CANARY, out + "\n" + err)


def test_the_echo_check_would_see_each_form():
    """The checker above is not blind: each unmasked form trips it."""
    for form in echo_forms(ECHO_CANARY):
        with pytest.raises(AssertionError):
            assert_token_absent(ECHO_CANARY, "x " + form + " y")


def test_redactor_masks_each_echoed_form_and_keeps_innocent_text():
    r = Redactor([ECHO_CANARY])
    for form in echo_forms(ECHO_CANARY):
        assert_token_absent(ECHO_CANARY, r.scrub("<" + form + ">"))
    innocent = "QmVhcmVyIGFiY2RlZmdoaWprbG1u 0123456789abcdef CANARY s3cr et XYZ %2b%2f"
    assert r.scrub(innocent) == innocent
