"""Servers that misbehave on purpose (SPEC 7: bounded in time and memory,
never lose a send's state, strict JSON out).

Each server is a raw socket on 127.0.0.1, on a free port, in daemon threads
that stop by themselves (a lifetime cap, and when the test closes it). The
bounds asserted are the contract's (deadline + 2 s, 100 MiB), with the
deadlines kept short so the suite stays quick; nothing here measures speed.
"""
import json
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from helpers import TEXT, USER, run_cli
from line_connector import ActionError, InputError, run_action
from line_connector.http import (MAX_BODY, MAX_RAW_BODY, HttpClient, Request, deadline_scope,
                                 parse_json_body, time_left)

LIFETIME = 40.0  # no server thread outlives this, whatever the test does


class RawServer:
    """Accepts connections and runs ``behaviour(conn, server)`` for each,
    after reading the request head (and what of the body came with it)."""

    def __init__(self, behaviour):
        self.behaviour = behaviour
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.url = "http://127.0.0.1:%d" % self.port
        self.stopped = threading.Event()
        self.started = time.monotonic()
        self.connections = 0
        self.requests = []
        threading.Thread(target=self._accept, daemon=True).start()

    def alive(self):
        return not self.stopped.is_set() and time.monotonic() - self.started < LIFETIME

    def _accept(self):
        while self.alive():
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                break
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()
        self.sock.close()

    def _serve(self, conn):
        conn.settimeout(5)
        try:
            head = b""
            while b"\r\n\r\n" not in head and len(head) < 65536:
                data = conn.recv(65536)
                if not data:
                    return
                head += data
            head, _, body = head.partition(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            while len(body) < length:  # read the whole request: closing on unread data resets
                data = conn.recv(65536)
                if not data:
                    return
                body += data
            self.requests.append(head.split(b"\r\n", 1)[0].decode("latin-1"))
            self.behaviour(conn, self)
            conn.shutdown(socket.SHUT_WR)  # a clean end of the answer, then wait for the client
            conn.settimeout(2)
            while conn.recv(65536):
                pass
        except OSError:
            pass  # the client hung up: that is what these tests expect
        finally:
            conn.close()

    def close(self):
        self.stopped.set()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def drip_body(conn, server):
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{")
    while server.alive():
        conn.sendall(b" ")
        time.sleep(1.0)


def drip_headers(conn, server):
    conn.sendall(b"HTTP/1.1 200 OK\r\n")
    while server.alive():
        conn.sendall(b"X")
        time.sleep(1.0)


def silent(conn, server):
    while server.alive():
        time.sleep(0.1)


def endless(status=b"200 OK", headers=b"Content-Type: application/json\r\n", filler=b"["):
    """An answer whose chunked body never ends."""
    def behaviour(conn, server):
        conn.sendall(b"HTTP/1.1 " + status + b"\r\n" + headers + b"Transfer-Encoding: chunked\r\n\r\n")
        chunk = b"%x\r\n%s\r\n" % (65536, filler * 65536)
        conn.settimeout(10)
        while server.alive():
            conn.sendall(chunk)
    return behaviour


endless_chunked = endless()


def answer(body, status=b"200 OK", headers=b"Content-Type: application/json\r\n"):
    def behaviour(conn, server):
        conn.sendall(b"HTTP/1.1 " + status + b"\r\n" + headers
                     + b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body))
        conn.sendall(body)
    return behaviour


def line_asset(server):
    return {"url": server.url, "token": "t-hostile-1234"}


PUSH = {"to": USER, "messages": TEXT, "retry_key": "123e4567-e89b-42d3-a456-426614174000"}


# ------------------------------------------------------------------ time
def test_cli_against_a_drip_fed_body_ends_within_the_deadline_and_keeps_the_send_state():
    with RawServer(drip_body) as server:
        started = time.monotonic()
        code, out, err = run_cli("run", "line_send_push", "--deadline", "3",
                                 stdin={"asset": line_asset(server), "inputs": PUSH})
        elapsed = time.monotonic() - started
    assert elapsed < 3 + 2, elapsed  # SPEC 7: deadline + 2 s, process start-up included
    assert code == 1, (out, err)
    (result,) = json.loads(out)
    assert result["retry_key"] == PUSH["retry_key"]
    assert result["delivery"] == "unknown" and result["ok"] is False
    assert result["status_code"] == 200 and result["json_body"] is None
    assert "deadline of 3 s" in result["note"] and PUSH["retry_key"] in result["note"]
    assert json.loads(err)["error"]


def test_drip_fed_headers_end_within_the_deadline():
    with RawServer(drip_headers) as server:
        started = time.monotonic()
        with pytest.raises(ActionError) as exc:
            run_action("line_send_push", line_asset(server), PUSH, deadline=2)
        elapsed = time.monotonic() - started
    assert elapsed < 2 + 2, elapsed
    (result,) = exc.value.output
    assert result["status_code"] == 0 and result["reason"] == "Deadline exceeded"
    assert result["delivery"] == "unknown" and result["retry_key"] == PUSH["retry_key"]


def test_a_server_that_never_answers_is_cut_at_the_deadline_not_the_read_timeout():
    with RawServer(silent) as server:
        started = time.monotonic()
        with pytest.raises(ActionError) as exc:
            run_action("line_get_bot_info", line_asset(server), {}, deadline=2, timeout=30)
        elapsed = time.monotonic() - started
    assert elapsed < 2 + 2, elapsed
    (result,) = exc.value.output
    assert result["reason"] == "Deadline exceeded" and result["attempts"] == 1


def test_requests_the_deadline_leaves_no_time_for_are_reported_not_sent():
    users = ["U%032x" % i for i in range(1000)]  # two chunks of 500 (LINE's multicast limit)
    with RawServer(silent) as server:
        started = time.monotonic()
        with pytest.raises(ActionError) as exc:
            run_action("line_send_multicast", line_asset(server), {"to": users, "messages": TEXT}, deadline=2)
        elapsed = time.monotonic() - started
        connections = server.connections
    assert elapsed < 2 + 2, elapsed
    first, second = exc.value.output
    assert first["delivery"] == "unknown"
    assert second["delivery"] == "not sent" and "deadline" in second["note"]
    assert second["recipients"] == users[500:] and second["ok"] is False
    assert connections == 1  # the second chunk never left the machine


def test_the_deadline_reaches_worker_threads():
    users = ["U%032x" % i for i in range(2500)]  # five chunks, three workers
    with RawServer(silent) as server:
        started = time.monotonic()
        with pytest.raises(ActionError) as exc:
            run_action("line_send_multicast", line_asset(server),
                       {"to": users, "messages": TEXT, "max_workers": 3}, deadline=2)
        elapsed = time.monotonic() - started
    assert elapsed < 2 + 2, elapsed
    assert {r["delivery"] for r in exc.value.output} <= {"unknown", "not sent"}
    assert len(exc.value.output) == 5


def test_the_deadline_bounds_an_oauth_token_fetch():
    with RawServer(silent) as server:
        asset = {"url": server.url, "token_url": server.url + "/oauth2/v3/token",
                 "client_id": "1650000000", "client_secret": "cs-hostile-secret-1"}
        started = time.monotonic()
        with pytest.raises(ActionError) as exc:
            run_action("line_get_bot_info", asset, {}, deadline=2)
        elapsed = time.monotonic() - started
    assert elapsed < 2 + 2, elapsed
    assert "cs-hostile-secret-1" not in json.dumps(exc.value.output) + str(exc.value)
    (result,) = exc.value.output
    assert result["ok"] is False
    assert result["delivery"] == "not sent"  # the token request was cut: the call itself never left
    assert server.requests == ["POST /oauth2/v3/token HTTP/1.1"]


def test_the_deadline_bounds_a_sobot_token_fetch():
    with RawServer(silent) as server:
        asset = {"url": server.url, "appid": "app-hostile", "app_key": "k-hostile-secret-1"}
        started = time.monotonic()
        with pytest.raises(ActionError):
            run_action("sobot_get_token", asset, {"force_refresh": True}, deadline=2)
        elapsed = time.monotonic() - started
    assert elapsed < 2 + 2, elapsed


def test_time_left_follows_the_innermost_deadline_and_defaults_outside_one():
    assert time_left() == 60.0
    with deadline_scope(5):
        assert 4.0 < time_left() <= 5.0
        with deadline_scope(100):  # a nested scope never extends the outer one
            assert time_left() <= 5.0
        with deadline_scope(1):
            assert time_left() <= 1.0
    assert time_left() == 60.0


@pytest.mark.parametrize("bad", [0, -1, float("nan"), float("inf"), True, "3"])
def test_bad_timeout_or_deadline_is_an_input_error_naming_it(bad):
    for kw in ("timeout", "deadline"):
        with pytest.raises(InputError) as exc:
            run_action("line_get_bot_info", {"token": "t-1234"}, {}, **{kw: bad})
        assert exc.value.details[0]["path"] == kw


@pytest.mark.parametrize("option", ["--timeout", "--deadline"])
@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf", "-inf"])
def test_bad_timeout_or_deadline_on_the_cli_is_exit_2(option, value):
    from line_connector.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["run", "line_get_bot_info", option, value])
    assert exc.value.code == 2


# ------------------------------------------------------------------ memory
RSS_SCRIPT = textwrap.dedent("""
    import json, sys
    from line_connector import ActionError, run_action
    try:
        out = run_action("line_get_bot_info", {"url": sys.argv[1], "token": "t-1234"}, {}, deadline=30)
    except ActionError as exc:
        out = exc.output
    print(json.dumps(out[0]))
""")
#: Linux keeps ru_maxrss across exec: a child forked from this (large) pytest
#: process would report pytest's own peak. So a small launcher starts the
#: action in a grandchild and reads the peak of its children.
LAUNCHER = textwrap.dedent("""
    import json, resource, subprocess, sys
    proc = subprocess.run([sys.executable, "-c", sys.argv[1], sys.argv[2]], capture_output=True, text=True)
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # KiB on Linux
    print(json.dumps({"code": proc.returncode, "stdout": proc.stdout, "stderr": proc.stderr[-2000:],
                      "peak_mib": peak_kib / 1024.0}))
""")


@pytest.mark.skipif(sys.platform != "linux", reason="ru_maxrss is in KiB on Linux only")
def test_an_endless_body_keeps_peak_memory_under_100_mib():
    with RawServer(endless_chunked) as server:
        proc = subprocess.run([sys.executable, "-c", LAUNCHER, RSS_SCRIPT, server.url], capture_output=True,
                              text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["code"] == 0, report["stderr"]
    assert report["peak_mib"] < 100, report["peak_mib"]
    result = json.loads(report["stdout"])
    assert result["ok"] is False and result["status_code"] == 200 and result["json_body"] is None
    assert result["raw_body_truncated"] is True and len(result["raw_body"]) == MAX_RAW_BODY
    assert "10 MiB" in result["note"]


def test_an_11_mib_body_is_a_failure_keeping_the_first_64_kib():
    body = b'{"x":"' + b"a" * (11 * 1024 * 1024) + b'"}'
    with RawServer(answer(body)) as server:
        with pytest.raises(ActionError) as exc:
            run_action("line_get_bot_info", line_asset(server), {})
    (result,) = exc.value.output
    assert result["status_code"] == 200 and result["ok"] is False and result["json_body"] is None
    assert result["raw_body"] == body[:MAX_RAW_BODY].decode() and result["raw_body_truncated"] is True
    assert "larger than 10 MiB" in result["note"]
    assert len(body) > MAX_BODY


def test_a_body_just_under_the_bound_is_read_whole():
    body = json.dumps({"displayName": "x" * (MAX_BODY - 100)}).encode()
    with RawServer(answer(body)) as server:
        (result,) = run_action("line_get_bot_info", line_asset(server), {})
    assert result["ok"] and len(result["json_body"]["displayName"]) == MAX_BODY - 100


def test_a_redirect_body_is_bounded_like_any_other():
    """requests reads a 3xx's whole body to work out ``Response.next`` even
    when redirects are not followed (an endless one until the deadline, in
    memory); the pack's session never reads a redirect, so its body meets
    the 10 MiB bound as any answer's does."""
    with RawServer(endless(b"302 Found", b"Location: /elsewhere\r\n", b"x")) as server, deadline_scope(20):
        started = time.monotonic()
        result = HttpClient().send(Request("POST", server.url + "/v2/bot/message/push", body=b"{}"))
    assert time.monotonic() - started < 15
    assert result["status_code"] == 302 and result["raw_body_truncated"] is True
    assert len(result["raw_body"]) == MAX_RAW_BODY and "larger than 10 MiB" in result["error"]


def test_a_malformed_location_is_a_result_and_the_chunks_before_it_are_kept():
    """A 302 whose Location cannot be parsed raised out of the send (after
    the request was delivered): a fan-out lost the results of the chunks
    already delivered, and a resend would have delivered them again."""
    def behaviour(conn, server):
        if len(server.requests) == 1:
            answer(b"{}")(conn, server)
        else:
            answer(b"", b"302 Found", b"Location: http://[::1/x\r\n")(conn, server)
    ids = ["U%032x" % i for i in range(600)]
    with RawServer(behaviour) as server:
        with pytest.raises(ActionError) as exc:
            run_action("line_send_multicast", line_asset(server), {"to": ids, "messages": TEXT})
    first, second = exc.value.output
    assert first["ok"] and first["status_code"] == 200 and first["recipients"] == ids[:500]
    assert not second["ok"] and second["status_code"] == 302 and second["recipients"] == ids[500:]


# ------------------------------------------------------------------ any answer
DEEP = b"[" * 200000 + b"]" * 200000


def test_a_200_nested_200000_deep_keeps_the_push_result_on_the_cli():
    with RawServer(answer(DEEP)) as server:
        code, out, err = run_cli("run", "line_send_push", stdin={"asset": line_asset(server), "inputs": PUSH})
    assert code == 1, err
    assert "RecursionError" not in err
    (result,) = json.loads(out)
    assert result["status_code"] == 200 and result["retry_key"] == PUSH["retry_key"]
    assert result["json_body"] is None and result["raw_body"].startswith("[[[")
    assert result["raw_body_truncated"] is True
    assert "nested deeper" in result["note"]


@pytest.mark.parametrize("body, why", [
    (b'{"sentMessages": NaN}', "NaN"),
    (b'{"sentMessages": [Infinity]}', "Infinity"),
    (b'{"n": -Infinity}', "Infinity"),
    (b'{"n": 1e400}', "out of range"),
    (b'{"displayName": "\xff\xfe"}', "UTF-8"),
    (b'{"displayName": ', "not valid JSON"),
    (b"[" * 150 + b"]" * 150, "nested deeper"),
])
def test_a_body_that_is_not_strict_json_keeps_the_result(body, why):
    with RawServer(answer(body)) as server:
        with pytest.raises(ActionError) as exc:
            run_action("line_send_push", line_asset(server), PUSH)
    (result,) = exc.value.output
    assert result["status_code"] == 200 and result["retry_key"] == PUSH["retry_key"]
    assert result["json_body"] is None and result["raw_body"] == body.decode("utf-8", "replace")
    assert why in result["note"]
    json.dumps(result, allow_nan=False)  # strict JSON: nothing non-finite got through


def test_the_cli_prints_strict_json_whatever_the_body():
    with RawServer(answer(b'{"sentMessages": [{"id": NaN}], "x": "\xff"}')) as server:
        code, out, err = run_cli("run", "line_send_push", stdin={"asset": line_asset(server), "inputs": PUSH})
    assert code == 1

    def refuse(name):
        raise AssertionError("non-standard JSON constant %s in the output" % name)

    (result,) = json.loads(out, parse_constant=refuse)
    assert result["retry_key"] == PUSH["retry_key"]


def test_parse_json_body_never_raises():
    for body in (DEEP, b"\x00\x01", b'"\\ud800"', b"1" * 5000, b"\xef\xbb\xbf{}", b"[" * 2000):
        value, note = parse_json_body(body)
        assert value is None or note is None
    assert parse_json_body(b"\xef\xbb\xbf{}") == ({}, None)
    assert parse_json_body(b"[{}" + b",{}" * 1000000 + b"]")[0] is None  # too many values to hold


# ------------------------------------------------------------------ secrets, environment
def test_a_request_repr_shows_no_header_body_param_or_auth_value():
    secret = "cs-Repr-Canary-9"
    request = Request("POST", "https://api.line.me/oauth2/v3/token?client_secret=" + secret,
                      params={"client_secret": secret}, headers={"Authorization": "Bearer " + secret},
                      body=("client_secret=" + secret).encode(), auth=object())
    for text in (repr(request), str(request), repr([request]), "%r" % (request,)):
        assert secret not in text
    assert "POST" in repr(request) and "api.line.me/oauth2/v3/token" in repr(request)


@pytest.mark.parametrize("var", ["REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"])
def test_a_ca_bundle_variable_naming_a_missing_file_is_exit_2_before_sending(var, tmp_path):
    missing = str(tmp_path / "no-such-bundle.pem")
    with RawServer(answer(b"{}")) as server:
        env = dict(os.environ, PYTHONIOENCODING="utf-8")
        env.pop("REQUESTS_CA_BUNDLE", None)
        env.pop("CURL_CA_BUNDLE", None)
        env[var] = missing
        proc = subprocess.run([sys.executable, "-m", "line_connector.cli", "run", "line_send_push"],
                              input=json.dumps({"asset": line_asset(server), "inputs": PUSH}),
                              capture_output=True, text=True, timeout=60, env=env)
        connections = server.connections
    assert proc.returncode == 2, proc.stderr
    error = json.loads(proc.stderr)
    (detail,) = error["details"]
    assert detail["path"] == "env." + var
    assert "does not exist" in detail["message"] and "fix the path or unset it" in detail["message"]
    assert connections == 0 and proc.stdout == ""


def test_a_ca_bundle_variable_is_irrelevant_when_verification_is_off(monkeypatch, tmp_path):
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tmp_path / "missing.pem"))
    with RawServer(answer(b'{"userId": "U1"}')) as server:
        (result,) = run_action("line_get_bot_info", dict(line_asset(server), verify_ssl=False), {})
    assert result["ok"]


def test_a_bare_client_send_obeys_the_current_deadline():
    with RawServer(silent) as server:
        client = HttpClient(timeout=(1.0, 30.0))
        with deadline_scope(1.5):
            started = time.monotonic()
            result = client.send(Request("GET", server.url + "/x"))
            elapsed = time.monotonic() - started
    assert elapsed < 1.5 + 2 and result["reason"] == "Deadline exceeded"


# ------------------------------------------------------------------ TLS setup
TLS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fixtures", "tls")


class TLSServer(RawServer):
    """A RawServer speaking TLS with the self-signed fixture certificate
    (127.0.0.1): untrusted unless a test names it as the CA bundle. Counts
    TCP connections; ``requests`` only lists request heads that arrived."""

    def __init__(self, behaviour):
        import ssl

        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(os.path.join(TLS_DIR, "cert.pem"), os.path.join(TLS_DIR, "key.pem"))
        super().__init__(behaviour)
        self.url = "https://127.0.0.1:%d" % self.port

    def _serve(self, conn):
        conn.settimeout(5)
        try:
            conn = self.ctx.wrap_socket(conn, server_side=True)
        except OSError:  # the client refused the certificate (or hung up): nothing to read
            conn.close()
            return
        super()._serve(conn)


def _clean_env(**extra):
    env = dict(os.environ, PYTHONIOENCODING="utf-8")
    env.pop("REQUESTS_CA_BUNDLE", None)
    env.pop("CURL_CA_BUNDLE", None)
    env.update(extra)
    return env


def _cli(server, env, inputs=PUSH, action="line_send_push"):
    return subprocess.run([sys.executable, "-m", "line_connector.cli", "run", action, "--deadline", "20"],
                          input=json.dumps({"asset": line_asset(server), "inputs": inputs}),
                          capture_output=True, text=True, timeout=60, env=env)


@pytest.mark.parametrize("content", ["junk\n", "", "-----BEGIN CERTIFICATE-----\nnot base64\n"
                                                   "-----END CERTIFICATE-----\n"])
@pytest.mark.parametrize("var", ["REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"])
def test_an_invalid_ca_bundle_is_exit_2_before_any_connection(var, content, tmp_path):
    """Was: exit 1, delivery "unknown", "the request may have reached LINE",
    for a CA bundle that cannot even be loaded (nothing had been sent)."""
    junk = tmp_path / "junk.pem"
    junk.write_text(content)
    with TLSServer(answer(b"{}")) as server:
        proc = _cli(server, _clean_env(**{var: str(junk)}))
        connections = server.connections
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert proc.stdout == "" and connections == 0
    (detail,) = json.loads(proc.stderr)["details"]
    assert detail["path"] == "env." + var
    assert "not a valid PEM CA bundle" in detail["message"] and "fix the path or unset it" in detail["message"]
    assert "may have reached" not in proc.stderr


def test_a_valid_ca_bundle_still_works_and_the_check_follows_a_fixed_file(monkeypatch, tmp_path):
    bundle = tmp_path / "ca.pem"
    bundle.write_text("junk")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bundle))
    with TLSServer(answer(b'{"userId": "U1"}')) as server:
        with pytest.raises(InputError) as exc:
            run_action("line_get_bot_info", line_asset(server), {})
        assert exc.value.details[0]["path"] == "env.REQUESTS_CA_BUNDLE" and server.connections == 0
        with open(os.path.join(TLS_DIR, "cert.pem")) as f:
            bundle.write_text(f.read())  # the same path, fixed: checked again, not a stale cached verdict
        os.utime(str(bundle), ns=(1, 10 ** 18))  # a different mtime even on a coarse-clock filesystem
        (result,) = run_action("line_get_bot_info", line_asset(server), {})
    assert result["ok"] and result["json_body"] == {"userId": "U1"}


def test_an_untrusted_certificate_is_not_sent_and_not_retried_on_the_cli():
    """A failed handshake (here: certificate verification) means no byte of
    the request was written: "not sent", one attempt, no "may have reached
    LINE". The retry key stays unused and may be reused (LINE: "Retry
    failed API requests", developers.line.biz/en/reference/messaging-api/
    #retry-api-request)."""
    with TLSServer(answer(b"{}")) as server:
        proc = _cli(server, _clean_env())
        connections, requests_seen = server.connections, list(server.requests)
    assert proc.returncode == 1, proc.stderr
    (result,) = json.loads(proc.stdout)
    assert result["delivery"] == "not sent" and result["ok"] is False
    assert result["reason"] == "TLS verification failed" and "CERTIFICATE_VERIFY_FAILED" in result["error"]
    assert result["attempts"] == 1 and connections == 1  # not retried
    assert requests_seen == []  # the server never got a request
    assert result["retry_key"] == PUSH["retry_key"]
    assert "may have reached" not in proc.stdout + proc.stderr


def test_a_ca_bundle_that_fails_to_load_at_send_time_is_not_sent(tmp_path):
    """HttpClient given a CA file directly (no environment check on that
    path): the load fails after the TCP connect, before any request byte."""
    junk = tmp_path / "junk.pem"
    junk.write_text("junk")
    with TLSServer(answer(b"{}")) as server:
        client = HttpClient(verify=str(junk), sleep=lambda s: None)
        result = client.send(Request("POST", server.url + "/v2/bot/message/push", body=b"{}"))
        requests_seen = list(server.requests)
    assert result["status_code"] == 0 and result["delivery"] == "not sent"
    assert result["attempts"] == 1 and requests_seen == []


def test_a_tls_handshake_that_times_out_is_not_sent():
    """urllib3 reports a handshake timeout as a *read* timeout; the
    connection knows the request was never written. A plain-TCP server that
    never answers the ClientHello: every attempt is "not sent", so a send
    without a retry key may be retried safely."""
    with RawServer(silent) as server:
        client = HttpClient(timeout=(2.0, 1.0), sleep=lambda s: None)
        url = server.url.replace("http://", "https://")
        with deadline_scope(15):
            result = client.send(Request("POST", url + "/v2/bot/message/push", body=b"{}"))
        requests_seen = list(server.requests)
    assert result["delivery"] == "not sent", result
    assert result["reason"] == "Timed out" and result["attempts"] == 3  # UNSENT_ONLY retries it
    assert requests_seen == []


def test_a_request_written_then_cut_is_still_unknown():
    """The other side of the phase tracking: a POST that was written and then
    got no answer stays "unknown"."""
    with RawServer(silent) as server:
        client = HttpClient(timeout=(2.0, 1.0), sleep=lambda s: None)
        with deadline_scope(15):
            result = client.send(Request("POST", server.url + "/v2/bot/message/push", body=b"{}"))
    assert result["delivery"] == "unknown" and result["attempts"] == 1
    assert server.requests == ["POST /v2/bot/message/push HTTP/1.1"]
