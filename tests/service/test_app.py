"""``line-connector serve`` (SPEC 9, issue 14): the real app on waitress, in a
subprocess, against the sandbox. Each status code of SPEC 9, the body
limits answered before reading (RFC 9110 sections 8.6 and 15.5.12/15.5.14),
Bearer authentication with ``WWW-Authenticate`` (RFC 6750 section 3), no
secret and no traceback anywhere, and the start-up refusals."""
import json
import os
import shutil
import subprocess
import sys
import threading
import time

import pytest

from helpers import USER, run_cli
from line_connector.manifest import manifest

TEXT = [{"type": "text", "text": "hello from the service"}]


def _json(body):
    return json.loads(body.decode("utf-8"))


def _no_traceback(service):
    text = service.log_text()
    assert "Traceback" not in text
    service.log_lines()  # every line is JSON
    return text


# ------------------------------------------------------------ reads

def test_public_endpoints(start_service, service_sandbox, service_config, api):
    url = start_service(service_config(service_sandbox))
    status, headers, body = api(url + "/healthz")
    assert status == 200 and _json(body) == {"status": "ok"}
    status, headers, body = api(url + "/v1/actions")
    assert status == 200 and headers["content-type"] == "application/json"
    assert _json(body) == [{"name": a.name, "title": a.title} for a in manifest().actions.values()]
    status, headers, body = api(url + "/metrics")
    assert status == 200 and headers["content-type"].startswith("text/plain")
    assert b"line_connector_requests" in body
    status, _, body = api(url + "/nowhere")
    assert status == 404 and _json(body)["details"][0]["path"] == "path"


def test_output_is_exactly_what_the_cli_prints(start_service, service_sandbox, service_config, api, keys):
    """A local action (no HTTP, deterministic) gives byte-identical output."""
    from line_connector.sandbox import webhook_body

    config = service_config(service_sandbox)
    url = start_service(config)
    text, signature = webhook_body([{"type": "unfollow", "timestamp": 1700000000000,
                                     "source": {"type": "user", "userId": USER}, "mode": "active",
                                     "webhookEventId": "01HZZZZZZZZZZZZZZZZZZZZZZZ",
                                     "deliveryContext": {"isRedelivery": False}}])
    inputs = {"body": text, "signature": signature}
    status, _, body = api(url + "/v1/actions/line_parse_webhook", "POST",
                          {"asset": "ops_secret", "inputs": inputs}, key=keys.api)
    code, out, err = run_cli("run", "line_parse_webhook",
                             stdin={"asset": config["assets"]["ops_secret"], "inputs": inputs})
    assert code == 0, err
    assert status == 200
    assert body.decode("utf-8") == out


def test_action_sends_once_and_answers_200(start_service, service_sandbox, service_config, api, keys):
    url = start_service(service_config(service_sandbox))
    status, _, body = api(url + "/v1/actions/line_send_push", "POST",
                          {"asset": "ops_line", "inputs": {"to": USER, "messages": TEXT}}, key=keys.api)
    assert status == 200
    result = _json(body)
    assert result[0]["status_code"] == 200 and result[0]["ok"] is True and result[0]["retry_key"]
    assert service_sandbox.stats()["line"]["deliveries"] == 1


def test_single_fitting_asset_may_be_omitted(start_service, service_sandbox, service_config, api, keys):
    config = service_config(service_sandbox)
    del config["assets"]["wrong_line"]
    url = start_service(config)
    status, _, body = api(url + "/v1/actions/line_get_quota", "POST", {"inputs": {}}, key=keys.api)
    assert status == 200, body


# ------------------------------------------------------------ errors of the caller

def test_invalid_inputs_422_nothing_sent(start_service, service_sandbox, service_config, api, keys):
    url = start_service(service_config(service_sandbox))
    status, _, body = api(url + "/v1/actions/line_send_push", "POST",
                          {"asset": "ops_line", "inputs": {"to": USER, "messages": [{"type": "text"}]}},
                          key=keys.api)
    assert status == 422
    doc = _json(body)
    assert set(doc) == {"error", "details"}
    assert any(d["path"].startswith("inputs.messages[0]") for d in doc["details"])
    # an asset that does not fit the action, and a body field that is not allowed
    status, _, body = api(url + "/v1/actions/line_get_quota", "POST", {"asset": "ops_nx"}, key=keys.api)
    assert status == 422 and _json(body)["details"][0]["path"] == "asset"
    status, _, body = api(url + "/v1/actions/line_get_quota", "POST", {"asset": "ops_line", "x": 1}, key=keys.api)
    assert status == 422 and _json(body)["details"][0]["path"] == "x"
    status, _, body = api(url + "/v1/actions/line_get_quota", "POST", {"asset": "ops_line", "inputs": [1]},
                          key=keys.api)
    assert status == 422 and _json(body)["details"][0]["path"] == "inputs"
    assert service_sandbox.stats()["requests"] == 0


def test_file_paths_on_the_server_are_refused(start_service, service_sandbox, service_config, api, keys, tmp_path):
    """A caller of the service must not make it write or read the server's
    files: save_to and image_path are 422 naming the field, nothing sent or
    written; without save_to the content comes back base64-encoded."""
    from line_connector.sandbox.line_richmenu import DEMO_IMAGE_MESSAGE_ID, DEMO_EMPTY_RICH_MENU_ID

    url = start_service(service_config(service_sandbox))
    target = tmp_path / "written-by-the-service.bin"
    status, _, body = api(url + "/v1/actions/line_get_message_content", "POST",
                          {"asset": "ops_line", "inputs": {"messageId": DEMO_IMAGE_MESSAGE_ID, "save_to": str(target)}},
                          key=keys.api)
    assert status == 422 and _json(body)["details"][0]["path"] == "inputs.save_to", body
    status, _, body = api(url + "/v1/actions/line_upload_rich_menu_image", "POST",
                          {"asset": "ops_line", "inputs": {"richMenuId": DEMO_EMPTY_RICH_MENU_ID,
                                                           "image_path": "/etc/hostname"}}, key=keys.api)
    assert status == 422 and _json(body)["details"][0]["path"] == "inputs.image_path", body
    assert not target.exists() and service_sandbox.stats()["requests"] == 0
    status, _, body = api(url + "/v1/actions/line_get_message_content", "POST",
                          {"asset": "ops_line", "inputs": {"messageId": DEMO_IMAGE_MESSAGE_ID}}, key=keys.api)
    assert status == 200 and _json(body)[0]["sha256"], body


def test_refused_502_keeps_vendor_answer(start_service, service_sandbox, service_config, api, keys,
                                         assert_no_secrets):
    url = start_service(service_config(service_sandbox))
    status, _, body = api(url + "/v1/actions/line_get_quota", "POST", {"asset": "wrong_line"}, key=keys.api)
    assert status == 502
    doc = _json(body)
    assert set(doc) == {"error", "output"}
    assert doc["output"][0]["status_code"] == 401  # the vendor's status, kept
    assert doc["output"][0]["response_headers"]
    assert_no_secrets(body)


def test_unreachable_502(start_service, service_config, api, keys, make_sandbox):
    sandbox = make_sandbox()
    config = service_config(sandbox)
    sandbox.stop()  # nothing listens there any more
    url = start_service(config)
    status, _, body = api(url + "/v1/actions/line_get_quota", "POST", {"asset": "ops_line"}, key=keys.api)
    assert status == 502
    assert _json(body)["output"][0]["status_code"] == 0


def test_401_without_a_valid_key(start_service, service_sandbox, service_config, api, keys, assert_no_secrets):
    """RFC 6750 section 3: a 401 carries ``WWW-Authenticate: Bearer``."""
    url = start_service(service_config(service_sandbox))
    push = {"asset": "ops_line", "inputs": {"to": USER, "messages": TEXT}}
    for headers in ({}, {"Authorization": "Bearer " + keys.api[:-1]}, {"Authorization": "Basic " + keys.api},
                    {"Authorization": "Bearer " + keys.api + "x"}, {"Authorization": "Bearer"}):
        status, got, body = api(url + "/v1/actions/line_send_push", "POST", push, headers=headers)
        assert status == 401, headers
        assert got["www-authenticate"].startswith("Bearer")
        assert _json(body)["details"][0]["path"] == "headers.authorization"
        assert_no_secrets(body)
    # unknown actions are not told apart from known ones before authentication
    assert api(url + "/v1/actions/no_such_action", "POST", push)[0] == 401
    # the second configured key works too
    assert api(url + "/v1/actions/line_get_quota", "POST", {"asset": "ops_line"}, key=keys.other)[0] == 200
    assert service_sandbox.stats()["line"]["deliveries"] == 0


def test_404_unknown_action_or_asset(start_service, service_sandbox, service_config, api, keys):
    url = start_service(service_config(service_sandbox))
    status, _, body = api(url + "/v1/actions/no_such_action", "POST", {"asset": "ops_line"}, key=keys.api)
    assert status == 404 and _json(body)["details"][0]["path"] == "action"
    status, _, body = api(url + "/v1/actions/line_get_quota", "POST", {"asset": "nope"}, key=keys.api)
    assert status == 404 and _json(body)["details"][0]["path"] == "asset"
    status, _, body = api(url + "/v1/webhooks/nope", "POST", {"events": []})
    assert status == 404
    assert service_sandbox.stats()["requests"] == 0


def test_405_wrong_method(start_service, service_sandbox, service_config, api, keys):
    url = start_service(service_config(service_sandbox))
    status, headers, _ = api(url + "/v1/actions/line_get_quota", "GET", key=keys.api)
    assert status == 405 and headers["allow"] == "POST"
    status, headers, _ = api(url + "/healthz", "POST", {}, key=keys.api)
    assert status == 405 and "GET" in headers["allow"]
    status, headers, _ = api(url + "/v1/actions/line_get_quota", "DELETE", key=keys.api)
    assert status == 405


@pytest.mark.parametrize("body, path", [
    (b"{not json", "body"),
    (b'{"asset": "ops_line", "inputs": {"x": NaN}}', "body"),
    (b'{"inputs": {"x": 1e999}}', "body"),
    (b"[1, 2]", "body"),
    (b"\xff\xfe{}", "body"),
    (b"[" * 100000 + b"]" * 100000, "body"),
], ids=["syntax", "nan", "overflow", "array", "not-utf8", "deep"])
def test_400_bad_json(start_service, service_sandbox, service_config, api, keys, body, path):
    url = start_service(service_config(service_sandbox))
    status, _, got = api(url + "/v1/actions/line_get_quota", "POST", body, key=keys.api)
    assert status == 400
    assert _json(got)["details"][0]["path"] == path
    assert service_sandbox.stats()["requests"] == 0
    _no_traceback(url)


def test_inline_assets_only_when_allowed(start_service, service_sandbox, service_config, api, keys):
    inline = service_sandbox.demo_assets()["line_channel_access_token"]
    url = start_service(service_config(service_sandbox))
    status, _, body = api(url + "/v1/actions/line_get_quota", "POST", {"asset": inline}, key=keys.api)
    assert status == 422 and _json(body)["details"][0]["path"] == "asset"
    assert service_sandbox.stats()["requests"] == 0
    # SPEC 12: an inline asset reaches only the vendors' hosts and inline_asset_hosts
    # (the sandbox is on loopback, so it is listed by address and port)
    url = start_service(service_config(service_sandbox, allow_inline_assets=True))
    status, _, body = api(url + "/v1/actions/line_get_quota", "POST", {"asset": inline}, key=keys.api)
    assert status == 422 and [d["path"] for d in _json(body)["details"]] == ["asset.data_url", "asset.url"]
    assert service_sandbox.stats()["requests"] == 0
    url = start_service(service_config(service_sandbox, allow_inline_assets=True,
                                       inline_asset_hosts=[service_sandbox.url.split("//", 1)[1]]))
    status, _, body = api(url + "/v1/actions/line_get_quota", "POST", {"asset": inline}, key=keys.api)
    assert status == 200
    assert inline["token"] not in body.decode("utf-8")


# ------------------------------------------------------------ hostile HTTP

def test_body_limits_answered_without_reading(start_service, service_sandbox, service_config, raw, raw_status,
                                              keys):
    """Content-Length is judged before the body is read: a huge one is 413
    at once (the body is never sent here), a missing one means no body, a bad one 400."""
    url = start_service(service_config(service_sandbox))
    head = ("POST /v1/actions/line_get_quota HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
            "Content-Type: application/json\r\n" % keys.api)
    got, closed = raw(url, (head + "Content-Length: %d\r\n\r\n" % (11 * 1024 * 1024)).encode(), read_timeout=15)
    assert raw_status(got) == 413 and closed is not None and closed < 15
    got, closed = raw(url, (head + "Content-Length: 99999999999999999999999\r\n\r\n").encode(), read_timeout=15)
    assert raw_status(got) in (400, 413) and closed is not None
    for bad in ("-1", "abc", "1.5", "0x10"):
        got, closed = raw(url, (head + "Content-Length: %s\r\n\r\n{}" % bad).encode(), read_timeout=15)
        assert raw_status(got) == 400, bad
    # no Content-Length and no Transfer-Encoding: no body (RFC 9112 6.3), read as {} (SPEC 12 / issue 20:
    # "inputs may be left out"); two LINE token assets fit here, so the asset must be named: 422
    got, closed = raw(url, (head + "Connection: close\r\n\r\n").encode(), read_timeout=15)
    assert raw_status(got) == 422 and b'"path": "asset"' in got
    # a real body past 10 MiB, sent whole: 413, and the service still serves
    big = b'{"inputs": {"x": "' + b"a" * (10 * 1024 * 1024) + b'"}}'
    got, closed = raw(url, (head + "Content-Length: %d\r\n\r\n" % len(big)).encode() + big, read_timeout=30)
    assert raw_status(got) == 413
    assert service_sandbox.stats()["requests"] == 0
    _no_traceback(url)


def test_slow_client_does_not_block_others(start_service, service_sandbox, service_config, raw, api, keys):
    """A body that stops coming is never waited for by the app: other
    requests are served meanwhile, and the stalled connection is closed
    within SPEC 7's 30 s."""
    url = start_service(service_config(service_sandbox))
    head = ("POST /v1/actions/line_get_quota HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
            "Content-Length: 1000\r\n\r\n{\"asset\":" % keys.api).encode()
    outcome = {}

    def stall():
        outcome["got"], outcome["closed"] = raw(url, head, read_timeout=40)

    worker = threading.Thread(target=stall)
    worker.start()
    time.sleep(0.5)
    started = time.monotonic()
    assert api(url + "/v1/actions/line_get_quota", "POST", {"asset": "ops_line"}, key=keys.api)[0] == 200
    assert time.monotonic() - started < 10
    worker.join(45)
    assert outcome["closed"] is not None and outcome["closed"] < 32
    assert service_sandbox.stats()["requests"] == 1  # the stalled request never ran
    _no_traceback(url)


def test_client_disconnects_are_harmless(start_service, service_config, api, keys, raw, make_sandbox):
    """A client that hangs up mid-body, or while its action runs, leaves the
    service serving, with JSON log lines only."""
    from line_connector.sandbox import FaultPlan

    sandbox = make_sandbox(FaultPlan(script=["slow"], slow_seconds=2.0))
    url = start_service(service_config(sandbox))
    head = ("POST /v1/actions/line_get_quota HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
            "Content-Length: 100\r\n\r\n{" % keys.api).encode()
    raw(url, head, read_timeout=0.5, close_write=True)
    # hang up while the (slow) action runs
    body = json.dumps({"asset": "ops_line"}).encode()
    req = ("POST /v1/actions/line_get_quota HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
           "Content-Type: application/json\r\n"  # SPEC 12 (else 415, and the action would not run)
           "Content-Length: %d\r\n\r\n" % (keys.api, len(body))).encode() + body
    raw(url, req, read_timeout=0.3)
    time.sleep(2.5)
    assert api(url + "/healthz")[0] == 200
    assert api(url + "/v1/actions/line_get_quota", "POST", {"asset": "ops_line"}, key=keys.api)[0] == 200
    _no_traceback(url)


# ------------------------------------------------------------ secrets and logs

def test_no_secret_in_responses_logs_or_metrics(start_service, service_sandbox, service_config, api, keys,
                                                assert_no_secrets):
    config = service_config(service_sandbox)
    config["assets"]["env_line"] = {"url": service_sandbox.url, "token": "${SVC_CANARY_TOKEN}"}
    canary_env = "envTOKENcanary-1a2b3c4d5e6f7a8b"
    url = start_service(config, env={"SVC_CANARY_TOKEN": canary_env})
    bodies = []
    for asset in ("wrong_line", "env_line", "ops_line"):
        bodies.append(api(url + "/v1/actions/line_get_quota?token=%s" % keys.api, "POST", {"asset": asset},
                          key=keys.api)[2])
    bodies.append(api(url + "/v1/actions/line_get_quota", "POST", {"asset": "ops_line"},
                      key=keys.wrong_token)[2])
    bodies.append(api(url + "/v1/actions/line_send_push", "POST",
                      {"asset": "wrong_line", "inputs": {"to": USER, "messages": [{"type": "text", "text": "x"}]}},
                      key=keys.api)[2])
    bodies.append(api(url + "/metrics")[2])
    bodies.append(api(url + "/openapi.json")[2] if _has_openapi() else b"")
    url.stop()
    log = _no_traceback(url)
    assert_no_secrets(log, *bodies)
    for blob in bodies + [log.encode()]:
        assert canary_env.encode() not in blob
    access = [r for r in url.log_lines() if r["event"] == "access"]
    assert len(access) >= 6
    for record in access:
        assert set(record) <= {"ts", "event", "method", "path", "status", "duration_ms", "action", "route",
                               "outcome"}
        assert record.get("outcome") in (None, "ok", "refused", "invalid", "error", "replayed")
        assert "?" not in record["path"]  # no query string (it may hold anything)


def _has_openapi():
    try:
        from line_connector.service import openapi  # noqa: F401
    except ImportError:
        return False
    return hasattr(openapi, "document")


# ------------------------------------------------------------ start-up

def _serve(*args, env=None, timeout=30):
    full = dict(os.environ)
    full.update(env or {})
    proc = subprocess.run([sys.executable, "-m", "line_connector.cli", "serve"] + list(args),
                          capture_output=True, text=True, timeout=timeout, env=full, stdin=subprocess.DEVNULL)
    return proc.returncode, proc.stdout, proc.stderr


def test_refuses_to_start_without_api_keys(tmp_path, service_sandbox, service_config):
    config = service_config(service_sandbox)
    del config["api_keys"]
    cfg = tmp_path / "noauth.yaml"
    cfg.write_text(json.dumps(config), encoding="utf-8")
    code, _, err = _serve("--config", str(cfg), "--port", "0")
    assert code == 2 and "Traceback" not in err
    assert json.loads(err)["details"][0]["path"] == "config.api_keys"
    # --no-auth is refused on an address other machines can reach
    code, _, err = _serve("--config", str(cfg), "--port", "0", "--host", "0.0.0.0", "--no-auth")
    assert code == 2 and json.loads(err)["details"][0]["path"] == "--no-auth"


def test_no_auth_on_loopback(start_service, service_sandbox, service_config, api):
    config = service_config(service_sandbox)
    del config["api_keys"]
    url = start_service(config, args=["--no-auth"])
    assert api(url + "/v1/actions/line_get_quota", "POST", {"asset": "ops_line"})[0] == 200


def test_config_errors_name_the_key(tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(json.dumps({"assets": {"x": {"token": "${SVC_UNSET_VAR_FOR_TEST}"}},
                               "api_keys": ["k" * 20]}), encoding="utf-8")
    code, _, err = _serve("--config", str(cfg), env={"SVC_UNSET_VAR_FOR_TEST": ""})
    assert code == 2
    assert "SVC_UNSET_VAR_FOR_TEST" in json.loads(err)["details"][0]["message"]
    code, _, err = _serve("--config", str(tmp_path / "missing.yaml"))
    assert code == 2 and json.loads(err)["details"][0]["path"] == "--config"


def test_serve_without_the_extras_says_what_to_install(tmp_path, service_sandbox, service_config):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(json.dumps(service_config(service_sandbox)), encoding="utf-8")
    for blocked in ("waitress", "prometheus_client", "redis"):
        # a None entry in sys.modules makes `import <name>` raise ImportError
        code = ("import sys; sys.modules[%r] = None\n"
                "from line_connector.cli import main; sys.exit(main(['serve', '--config', %r, '--port', '0']))"
                % (blocked, str(cfg)))
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30,
                              stdin=subprocess.DEVNULL)
        assert proc.returncode == 2, proc.stderr
        assert "pip install 'line-connector[service]'" in proc.stderr
        assert blocked in json.loads(proc.stderr)["error"]
        assert "Traceback" not in proc.stderr
    # importing the package itself needs none of them
    code = ("import sys; sys.modules['waitress'] = sys.modules['prometheus_client'] = sys.modules['redis'] = None\n"
            "import line_connector.service as s; print(callable(s.create_app), callable(s.app_from_env))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0 and proc.stdout.split() == ["True", "True"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="gunicorn runs on POSIX; tested on Linux")
def test_gunicorn_two_workers(tmp_path, service_sandbox, service_config, api, keys):
    """The README's command: ``LINE_CONNECTOR_CONFIG=cfg.yaml gunicorn -w 2
    'line_connector.service:app_from_env()'``."""
    gunicorn = shutil.which("gunicorn", path=os.path.dirname(sys.executable)) or shutil.which("gunicorn")
    if gunicorn is None:
        pytest.skip("gunicorn is not installed (pip install 'line-connector[test]')")
    from redis_server import free_port

    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(json.dumps(service_config(service_sandbox)), encoding="utf-8")
    port = free_port()
    err_path = tmp_path / "gunicorn.stderr"
    with open(err_path, "wb") as err:
        proc = subprocess.Popen([gunicorn, "-w", "2", "-b", "127.0.0.1:%d" % port,
                                 "line_connector.service:app_from_env()"],
                                env=dict(os.environ, LINE_CONNECTOR_CONFIG=str(cfg)), cwd=str(tmp_path),
                                stdout=subprocess.DEVNULL, stderr=err, stdin=subprocess.DEVNULL)
    url = "http://127.0.0.1:%d" % port
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
        for i in range(6):
            status, _, body = api(url + "/v1/actions/line_send_push", "POST",
                                  {"asset": "ops_line", "inputs": {"to": USER, "messages": TEXT}},
                                  headers={"Idempotency-Key": "gunicorn-%d" % (i // 2)}, key=keys.api)
            assert status == 200, body
        assert api(url + "/v1/actions/line_get_quota", "POST", {"asset": "ops_line"})[0] == 401
        # 3 keys, each sent twice: the file state store is shared by both workers
        assert service_sandbox.stats()["line"]["deliveries"] == 3
    finally:
        proc.terminate()
        proc.wait(20)
    text = err_path.read_text()
    assert "Traceback" not in text
    assert keys.api not in text
    assert '"event": "access"' in text  # our JSON access log, from the workers


def test_app_from_env_without_config_exits_2(tmp_path):
    code = "from line_connector.service import app_from_env; app_from_env()"
    env = dict(os.environ)
    env.pop("LINE_CONNECTOR_CONFIG", None)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30, env=env)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert json.loads(proc.stderr)["details"][0]["path"] == "env.LINE_CONNECTOR_CONFIG"


def test_webhook_route_dispatch(start_service, service_sandbox, service_config, api, keys, tmp_path):
    """POST /v1/webhooks/{route} is authenticated by LINE's x-line-signature
    (https://developers.line.biz/en/reference/messaging-api/#signature-validation),
    not by an API key: a signed delivery reaches the sink, a bad signature
    is 400 with nothing forwarded, and an API key alone opens nothing."""
    from line_connector.sandbox import webhook_body

    sink = tmp_path / "events.jsonl"
    config = service_config(service_sandbox, webhooks={"ops": {"asset": "ops_secret",
                                                               "forward": [{"jsonl": str(sink)}]}})
    url = start_service(config)
    text, signature = webhook_body([{"type": "unfollow", "timestamp": 1700000000000, "mode": "active",
                                     "source": {"type": "user", "userId": USER},
                                     "webhookEventId": "01HSVCAPPTEST0000000000001",
                                     "deliveryContext": {"isRedelivery": False}}])
    status, _, body = api(url + "/v1/webhooks/ops", "POST", text.encode(),
                          headers={"x-line-signature": signature})
    assert status == 200, body
    assert "01HSVCAPPTEST0000000000001" in sink.read_text()
    status, _, _ = api(url + "/v1/webhooks/ops", "POST", text.encode(),
                       headers={"x-line-signature": signature[:-4] + "AAAA"}, key=keys.api)
    assert status == 400
    assert len(sink.read_text().splitlines()) == 1
    assert api(url + "/v1/webhooks/ops", "GET")[0] == 405
    _no_traceback(url)


def test_chunked_bodies(start_service, service_sandbox, service_config, raw, raw_status, keys):
    """Transfer-Encoding: chunked (RFC 9112 section 7.1) is accepted, and
    bounded by the same 10 MiB as a Content-Length body."""
    url = start_service(service_config(service_sandbox))
    head = ("POST /v1/actions/line_get_quota HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
            "Content-Type: application/json\r\n"  # SPEC 12: a body must be application/json (else 415)
            "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n" % keys.api).encode()
    body = b'{"asset": "ops_line"}'
    got, _ = raw(url, head + b"%x\r\n" % len(body) + body + b"\r\n0\r\n\r\n", read_timeout=15)
    assert raw_status(got) == 200
    piece = b"a" * (1024 * 1024)
    big = b"".join(b"%x\r\n" % len(piece) + piece + b"\r\n" for _ in range(11)) + b"0\r\n\r\n"
    got, _ = raw(url, head + big, read_timeout=30)
    assert raw_status(got) == 413
    assert service_sandbox.stats()["requests"] == 1


# ------------------------------------------------------------ the WSGI callable itself
# (what another WSGI server, e.g. gunicorn, may hand the app: a stream that
# ends early or fails, a chunked body without Content-Length)

class _Stream:
    def __init__(self, data, fail=False):
        self.data, self.fail, self.reads = data, fail, 0

    def read(self, n=-1):
        self.reads += 1
        if self.fail:
            raise OSError("client went away")
        n = len(self.data) if n is None or n < 0 else n
        out, self.data = self.data[:n], self.data[n:]
        return out


def _wsgi(app, method="POST", path="/v1/actions/line_get_quota", body=b"", length=None, key=None, **extra):
    environ = {"REQUEST_METHOD": method, "PATH_INFO": path, "wsgi.input": extra.pop("stream", _Stream(body)),
               "SERVER_NAME": "x", "SERVER_PORT": "80", "wsgi.url_scheme": "http",
               "CONTENT_TYPE": "application/json"}  # SPEC 12: a body must be application/json
    if length is not None:
        environ["CONTENT_LENGTH"] = length
    if key:
        environ["HTTP_AUTHORIZATION"] = "Bearer " + key
    environ.update(extra)
    seen = {}

    def start_response(status, headers):
        seen["status"], seen["headers"] = status, dict(headers)
    body = b"".join(app(environ, start_response))
    return int(seen["status"].split()[0]), seen["headers"], body


def test_wsgi_app_reads_exactly_what_was_announced(tmp_path, service_sandbox, service_config, keys, capfd):
    from line_connector.config import load_config
    from line_connector.service import create_app

    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(json.dumps(service_config(service_sandbox)), encoding="utf-8")
    app = create_app(load_config(str(cfg)))
    # the stream ends before the announced length: a disconnect, logged as one line
    status, _, _ = _wsgi(app, body=b'{"asset"', length="100", key=keys.api)
    assert status == 400
    stream = _Stream(b"", fail=True)
    status, _, _ = _wsgi(app, stream=stream, length="10", key=keys.api)
    assert status == 400
    # a huge or bad length is answered without a single read
    # no length: no body, read as {} (SPEC 12); two assets fit line_get_quota here: 422
    for length, want in (("20000000", 413), ("-5", 400), ("1e3", 400), ("", 422), (None, 422)):
        stream = _Stream(b"{}" * 10)
        status, _, _ = _wsgi(app, stream=stream, length=length, key=keys.api)
        assert status == want and stream.reads == 0, length
    # unauthenticated: 401 before anything is read either
    stream = _Stream(b"{}")
    assert _wsgi(app, stream=stream, length="2")[0] == 401 and stream.reads == 0
    # chunked, terminated by the server (gunicorn sets wsgi.input_terminated)
    body = json.dumps({"asset": "ops_line"}).encode()
    status, _, got = _wsgi(app, body=body, key=keys.api, HTTP_TRANSFER_ENCODING="chunked",
                           **{"wsgi.input_terminated": True})
    assert status == 200, got
    status, _, _ = _wsgi(app, body=b"a" * (10 * 1024 * 1024 + 1), key=keys.api,
                         HTTP_TRANSFER_ENCODING="chunked", **{"wsgi.input_terminated": True})
    assert status == 413
    err = capfd.readouterr().err
    assert "Traceback" not in err
    events = [json.loads(line)["event"] for line in err.splitlines() if line.strip()]
    assert events.count("client_disconnected") == 2
    assert keys.api not in err


def test_wsgi_app_turns_any_bug_into_a_json_500(tmp_path, service_sandbox, service_config, keys, capfd):
    """A bug outside the runner: 500 with the exception's type only; its
    text (which could hold anything) goes scrubbed to one log line."""
    from line_connector.config import load_config
    from line_connector.service import create_app

    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(json.dumps(service_config(service_sandbox)), encoding="utf-8")

    def broken(name, asset, inputs, **options):
        raise RuntimeError("boom with " + asset["token"])

    app = create_app(load_config(str(cfg)), run=broken)
    body = json.dumps({"asset": "wrong_line"}).encode()
    status, _, got = _wsgi(app, body=body, length=str(len(body)), key=keys.api)
    assert status == 500 and json.loads(got)["error"].startswith("internal error: RuntimeError")
    err = capfd.readouterr().err
    assert "Traceback" not in err and keys.wrong_token not in err and keys.wrong_token not in got.decode()
    assert any(json.loads(line)["event"] == "internal_error" for line in err.splitlines() if line.strip())


# ------------------------------------------------------------ review of issue 14 (H2, H3, M1, L3)

def test_sigterm_lets_the_request_in_flight_finish(start_service, service_config, api, keys, make_sandbox):
    """SIGTERM while an action runs (the sandbox holds its answer 8 s, past
    waitress's own ~5 s shutdown): no new connection is accepted, the client
    still gets its full answer, the process exits 0 and logs one
    ``stopped`` line saying it waited for one request."""
    import signal
    import socket
    import urllib.parse

    from line_connector.sandbox import FaultPlan

    sandbox = make_sandbox(FaultPlan(script=["slow"], slow_seconds=8.0))
    url = start_service(service_config(sandbox))
    result = {}

    def call():
        result["answer"] = api(url + "/v1/actions/line_get_quota", "POST", {"asset": "ops_line"}, key=keys.api)

    worker = threading.Thread(target=call)
    worker.start()
    deadline = time.monotonic() + 10
    while sandbox.stats()["requests"] < 1 and time.monotonic() < deadline:
        time.sleep(0.02)  # the action has reached the vendor: it is in flight
    url.proc.send_signal(signal.SIGTERM)
    time.sleep(2.0)
    parts = urllib.parse.urlsplit(url)
    with pytest.raises(OSError):  # no longer accepting
        socket.create_connection((parts.hostname, parts.port), timeout=5).close()
    worker.join(60)
    status, _, body = result["answer"]
    assert status == 200, body
    assert _json(body)  # the whole answer, as the CLI prints it
    assert url.proc.wait(30) == 0
    stopped = [r for r in url.log_lines() if r["event"] == "stopped"]
    assert len(stopped) == 1 and stopped[0]["signal"] == "SIGTERM"
    assert stopped[0]["in_flight"] == 1 and stopped[0]["unfinished"] == 0
    _no_traceback(url)


def test_head_has_headers_but_no_body(start_service, service_sandbox, service_config, raw):
    """RFC 9110 section 9.3.2: HEAD is GET without the content. A body after
    HEAD would be parsed as the next answer on a keep-alive connection: HEAD
    then GET on one connection must give two well-formed answers."""
    url = start_service(service_config(service_sandbox))
    got, _ = raw(url, b"HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
                      b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", read_timeout=15)
    head_part, _, rest = got.partition(b"\r\n\r\n")
    assert head_part.startswith(b"HTTP/1.1 200 ")
    assert rest.startswith(b"HTTP/1.1 200 "), rest[:80]  # no HEAD body in between
    get_head, _, get_body = rest.partition(b"\r\n\r\n")

    def length(block):
        for line in block.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                return int(value)
    assert length(head_part) == length(get_head) == len(get_body) > 0
    assert json.loads(get_body) == {"status": "ok"}


def test_slowloris_headers_are_cut(start_service, service_sandbox, service_config, api):
    """A client sending one header line every 2 s never goes idle, so
    waitress's idle timeout (20 s) never fires; the absolute limit (headers
    complete within 10 s of the first byte) closes it, and /healthz keeps
    answering meanwhile."""
    import socket
    import urllib.parse

    url = start_service(service_config(service_sandbox))
    parts = urllib.parse.urlsplit(url)
    started = time.monotonic()
    closed_after = None
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        sock.settimeout(2.0)
        n = 0
        while time.monotonic() - started < 40:
            try:
                if sock.recv(4096) == b"":
                    closed_after = time.monotonic() - started
                    break
            except socket.timeout:
                pass
            except OSError:
                closed_after = time.monotonic() - started
                break
            try:
                n += 1
                sock.sendall(b"X-Drip-%d: a\r\n" % n)
            except OSError:
                closed_after = time.monotonic() - started
                break
            assert api(url + "/healthz", timeout=10)[0] == 200
    assert closed_after is not None and closed_after < 20, closed_after
    assert any(r["event"] == "request_too_slow" and r["part"] == "headers" for r in url.log_lines())
    _no_traceback(url)


def test_non_ascii_api_key_matches(start_service, service_sandbox, service_config, raw, raw_status):
    """A header reaches WSGI as latin-1 decoded text (PEP 3333 section
    "Unicode Issues"): a UTF-8 API key must be compared as the bytes sent."""
    key = "cl\u00e9-\u043a\u043b\u044e\u0447-7e1d0c9b8a7f"
    url = start_service(service_config(service_sandbox, api_keys=[key]))
    body = json.dumps({"asset": "ops_line"}).encode()

    def send(token):
        req = b"POST /v1/actions/line_get_quota HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + token + \
            ("\r\nContent-Type: application/json"  # SPEC 12: else 415
             "\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(body)).encode() + body
        return raw_status(raw(url, req, read_timeout=20)[0])

    assert send(key.encode("utf-8")) == 200
    assert send(key.encode("utf-8")[:-1]) == 401
    assert send(key.encode("latin-1", "replace")) == 401
