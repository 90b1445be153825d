"""Never twice, even when the state store forgets (SPEC 12, issue 20).

Each finding of issue 20 reproduced against a REAL redis-server
(tests/redis_server.py: under CI=true a missing one fails) and a sandbox as
the vendor; deliveries are counted AT THE VENDOR (sandbox stats or a local
server's own counter), never by the pack:

* a Redis restarted without persistence (SHUTDOWN NOSAVE), a FLUSHALL and an
  "eviction storm" (every line-connector:* key deleted) between two identical
  calls under one Idempotency-Key: one delivery, because the service derives
  LINE's retry key from (API key digest, action, Idempotency-Key) and LINE
  (the sandbox, as LINE: "Retrying a failed API request",
  https://developers.line.biz/en/docs/messaging-api/retrying-api-request/)
  drops a repeated X-Line-Retry-Key for 24 h with 409;
* an evicting Redis, refused credentials (WRONGPASS, NOPERM) are exit 2 at
  start naming config.state (serve, mcp) or env.LINE_CONNECTOR_STATE (CLI);
  a Redis without persistence is a warning line at start;
* a "not sent" answer frees its Idempotency-Key; a ~600 KB CJK answer is
  stored and replayed (1 POST for 3 calls);
* /readyz follows Redis; API keys with whitespace are refused at start; a
  Redis URL's user name is no secret (only its password).
"""
import http.server
import json
import subprocess
import threading

import pytest

from conftest import _serve_command, launch
from helpers import USER, run_cli
from redis_server import RedisServer

redis = pytest.importorskip("redis")

TEXT = [{"type": "text", "text": "hello, exactly once"}]
PUSH = {"asset": "ops_line", "inputs": {"to": USER, "messages": TEXT}}
REDIS_PASS = "Redis-Canary-Pass-8Wq3"
USERS = ["U%032x" % i for i in range(3)]


def _call(api, url, key, idem, action="line_send_push", body=PUSH):
    return api(url + "/v1/actions/" + action, "POST", body, headers={"Idempotency-Key": idem}, key=key)


def _results(body):
    doc = json.loads(body)
    output = doc.get("output", doc) if isinstance(doc, dict) else doc
    return output if isinstance(output, list) else [output]


def _lose_state(server, how):
    client = redis.Redis.from_url(server.url)
    if how == "restart":  # without persistence: everything the store held is gone
        try:
            client.shutdown(nosave=True)
        except redis.exceptions.ConnectionError:
            pass  # the server closes the connection as it exits
        server.proc.wait(10)
        server.restart()
    elif how == "flushall":
        client.flushall()
    else:  # an eviction storm: every key of the pack gone (an evicting policy is refused at start now)
        doomed = list(client.scan_iter("line-connector:*"))
        assert doomed  # the record and the retry-key memory were there
        client.delete(*doomed)
    client.close()
    assert not list(redis.Redis.from_url(server.url).scan_iter("line-connector:*"))


@pytest.mark.parametrize("how", ["restart", "flushall", "evict"])
def test_push_repeated_after_the_store_lost_its_record_is_delivered_once(
        how, start_service, service_sandbox, service_config, api, keys):
    with RedisServer() as server:
        url = start_service(service_config(service_sandbox, state=server.url))
        first = _call(api, url, keys.api, "order-77")
        assert first[0] == 200, first[2][:500]
        sent = _results(first[2])[0]
        _lose_state(server, how)
        again = _call(api, url, keys.api, "order-77")
        line = service_sandbox.stats()["line"]
        assert line["deliveries"] == 1 and line["retry_keys_processed_twice"] == 0  # counted by the vendor
        # the repeat carried the same X-Line-Retry-Key; LINE said 409 and
        # named the request it had accepted. With the content record gone,
        # the pack cannot prove the 409 is for this very message: it says
        # "unknown", never "sent" and never a second delivery
        result = _results(again[2])[0]
        assert again[0] == 502 and "idempotent-replayed" not in again[1]
        assert result["status_code"] == 409 and result["retry_key"] == sent["retry_key"]
        assert result["accepted_request_id"] == sent["request_id"] and result["delivery"] == "unknown"
        # a caller's own retry_key is never replaced
        own = {"asset": "ops_line", "inputs": dict(PUSH["inputs"], retry_key="0b7c6a2e-3f4d-4e5f-8a9b-1c2d3e4f5a6b")}
        status, _, body = _call(api, url, keys.api, "order-78", body=own)
        assert status == 200 and _results(body)[0]["retry_key"] == own["inputs"]["retry_key"]


def test_derived_keys_are_per_caller_action_and_key(start_service, service_sandbox, service_config, api, keys):
    """Another API key or another Idempotency-Key derives another retry key:
    each is a send of its own and is delivered."""
    url = start_service(service_config(service_sandbox))
    got = [_results(_call(api, url, key, idem)[2])[0]["retry_key"]
           for key, idem in ((keys.api, "a"), (keys.other, "a"), (keys.api, "b"))]
    assert len(set(got)) == 3
    assert service_sandbox.stats()["line"]["deliveries"] == 3


def test_multicast_chunks_repeated_after_a_flush_are_delivered_once(start_service, service_sandbox, service_config,
                                                                     api, keys):
    body = {"asset": "ops_line", "inputs": {"to": USERS, "messages": TEXT}}
    with RedisServer() as server:
        url = start_service(service_config(service_sandbox, state=server.url))
        first = _call(api, url, keys.api, "mc-1", "line_send_multicast", body)
        assert first[0] == 200
        _lose_state(server, "flushall")
        again = _call(api, url, keys.api, "mc-1", "line_send_multicast", body)
        # chunk keys derive from the derived key and the chunk's content:
        # a 409 for one proves this very chunk was accepted
        assert again[0] == 200, again[2][:500]
        assert [r["retry_key"] for r in _results(again[2])] == [r["retry_key"] for r in _results(first[2])]
        assert "already accepted" in _results(again[2])[0]["note"]
        assert service_sandbox.stats()["line"]["deliveries"] == 1


def test_the_sandbox_remembers_a_retry_key_for_24_hours_as_line_does(service_sandbox, api):
    """LINE: a repeated X-Line-Retry-Key within 24 h is 409 with
    x-line-accepted-request-id; after that, the key is new."""
    token = service_sandbox.demo_assets()["line_channel_access_token"]["token"]
    headers = {"Authorization": "Bearer " + token, "X-Line-Retry-Key": "2f1c3a4e-5b6d-4e7f-8a9b-0c1d2e3f4a5b"}
    body = {"to": USER, "messages": TEXT}
    first = api(service_sandbox.url + "/v2/bot/message/push", "POST", body, headers)
    repeat = api(service_sandbox.url + "/v2/bot/message/push", "POST", body, headers)
    assert first[0] == 200 and repeat[0] == 409
    assert repeat[1]["x-line-accepted-request-id"] == first[1]["x-line-request-id"]
    now = service_sandbox.line.clock()
    service_sandbox.line.clock = lambda: now + 24 * 3600 + 1
    assert api(service_sandbox.url + "/v2/bot/message/push", "POST", body, headers)[0] == 200
    assert service_sandbox.stats()["line"]["deliveries"] == 2


# ------------------------------------------------------------- start checks
def _start_fails(tmp_path, config, command="serve", env=None):
    """Run serve/mcp with ``config``; (exit code, stderr text)."""
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(json.dumps(config), encoding="utf-8")
    argv = _serve_command()[:-1] + [command, "--config", str(cfg)] + (["--port", "0"] if command == "serve" else [])
    proc, err_path = launch(tmp_path, argv, env, name=command)
    try:
        code = proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)
        pytest.fail("%s started instead of refusing: %s" % (command, err_path.read_text()[-2000:]))
    return code, err_path.read_text(encoding="utf-8", errors="replace")


@pytest.mark.parametrize("policy", ["allkeys-lru", "volatile-lru", "volatile-ttl"])
def test_an_evicting_redis_is_refused_at_start(policy, tmp_path, service_sandbox, service_config):
    with RedisServer(args=["--maxmemory", "3mb", "--maxmemory-policy", policy]) as server:
        code, err = _start_fails(tmp_path, service_config(service_sandbox, state=server.url))
        assert code == 2 and "config.state" in err and policy in err and "noeviction" in err
        assert "Traceback" not in err


def test_mcp_refuses_an_evicting_redis_too(tmp_path, service_sandbox, service_config):
    pytest.importorskip("mcp")
    with RedisServer(args=["--maxmemory", "3mb", "--maxmemory-policy", "allkeys-lfu"]) as server:
        code, err = _start_fails(tmp_path, service_config(service_sandbox, state=server.url), command="mcp")
        assert code == 2 and "config.state" in err and "allkeys-lfu" in err and "Traceback" not in err


def test_cli_refuses_an_evicting_redis_before_sending(service_sandbox, monkeypatch):
    with RedisServer(args=["--maxmemory", "3mb", "--maxmemory-policy", "allkeys-random"]) as server:
        asset = service_sandbox.demo_assets()["line_channel_access_token"]
        monkeypatch.setenv("LINE_CONNECTOR_STATE", server.url)
        code, out, err = run_cli("run", "line_send_push", stdin={"asset": asset, "inputs": PUSH["inputs"]})
        assert code == 2 and "env.LINE_CONNECTOR_STATE" in out + err and "allkeys-random" in out + err
        assert service_sandbox.stats()["requests"] == 0


def test_an_evicting_redis_is_seen_through_info_when_config_is_disabled(tmp_path, service_sandbox, service_config):
    """Managed Redis often disables CONFIG: INFO still tells the policy."""
    args = ["--maxmemory", "3mb", "--maxmemory-policy", "allkeys-lru", "--rename-command", "CONFIG", ""]
    with RedisServer(args=args) as server:
        code, err = _start_fails(tmp_path, service_config(service_sandbox, state=server.url))
        assert code == 2 and "config.state" in err and "allkeys-lru" in err


def _warnings(url):
    return [r for r in url.log_lines() if r["event"] == "state_store_warning"]


def test_no_persistence_is_a_warning_line_at_start(start_service, service_sandbox, service_config):
    with RedisServer() as server:  # --save "" --appendonly no
        url = start_service(service_config(service_sandbox, state=server.url))
        found = _warnings(url)
        assert len(found) == 1 and "persistence" in found[0]["message"] and "appendonly" in found[0]["message"]
    with RedisServer(args=["--appendonly", "yes"]) as server:
        assert _warnings(start_service(service_config(service_sandbox, state=server.url))) == []
    with RedisServer(args=["--save", "3600 1"]) as server:
        assert _warnings(start_service(service_config(service_sandbox, state=server.url))) == []


def test_a_store_from_the_environment_is_checked_at_start_too(start_service, service_sandbox, service_config,
                                                              tmp_path):
    """serve without config.state uses LINE_CONNECTOR_STATE: checked at start
    as well, its warning a JSON log line (log_lines fails on any other)."""
    with RedisServer() as server:
        url = start_service(service_config(service_sandbox), env={"LINE_CONNECTOR_STATE": server.url})
        assert len(_warnings(url)) == 1
    with RedisServer(args=["--maxmemory", "3mb", "--maxmemory-policy", "allkeys-lru"]) as server:
        code, err = _start_fails(tmp_path, service_config(service_sandbox), env={"LINE_CONNECTOR_STATE": server.url})
        assert code == 2 and "env.LINE_CONNECTOR_STATE" in err


def test_config_disabled_and_no_aof_warns_that_persistence_is_unknown(start_service, service_sandbox,
                                                                     service_config):
    with RedisServer(args=["--rename-command", "CONFIG", ""]) as server:
        found = _warnings(start_service(service_config(service_sandbox, state=server.url)))
        assert len(found) == 1 and "could not read whether" in found[0]["message"]


def test_cli_warns_about_no_persistence_once_a_day(service_sandbox, tmp_path, monkeypatch):
    with RedisServer() as server:
        asset = service_sandbox.demo_assets()["line_channel_access_token"]
        monkeypatch.setenv("LINE_CONNECTOR_STATE", server.url)
        monkeypatch.setenv("LINE_CONNECTOR_CACHE_DIR", str(tmp_path / "cache"))
        errs = []
        for _ in range(2):
            code, out, err = run_cli("run", "line_send_push", stdin={"asset": asset, "inputs": PUSH["inputs"]})
            assert code == 0
            errs.append(err)
        assert "no persistence" in errs[0] and "no persistence" not in errs[1]


@pytest.mark.parametrize("wrong", ["password", "acl"])
def test_refused_credentials_are_a_configuration_error_at_start(wrong, tmp_path, service_sandbox, service_config):
    args = ["--user", "line", "on", ">" + REDIS_PASS, "~other:*" if wrong == "acl" else "~*", "+@all"]
    with RedisServer(args=args) as server:
        given = REDIS_PASS if wrong == "acl" else "Wrong-" + REDIS_PASS
        state_url = "redis://line:%s@127.0.0.1:%d/0" % (given, server.port)
        code, err = _start_fails(tmp_path, service_config(service_sandbox, state=state_url))
        assert code == 2 and "config.state" in err and "unreachable" not in err and "retry" not in err.lower()
        assert ("ACL" if wrong == "acl" else "credentials") in err
        assert REDIS_PASS not in err and "Traceback" not in err


def test_only_the_password_of_a_redis_url_is_a_secret(start_service, service_sandbox, service_config, api, keys):
    args = ["--user", "line", "on", ">" + REDIS_PASS, "~*", "+@all"]
    with RedisServer(args=args) as server:
        state_url = "redis://line:%s@127.0.0.1:%d/0" % (REDIS_PASS, server.port)
        url = start_service(service_config(service_sandbox, state=state_url))
        assert _call(api, url, keys.api, "u-1")[0] == 200
        text = url.log_text()
        assert "/v1/actions/line_send_push" in text and "***_send_push" not in text
        assert REDIS_PASS not in text


# ------------------------------------------------------- what is kept
def test_a_not_sent_answer_frees_its_key(start_service, service_config, api, keys, make_sandbox):
    """Vendor down (connection refused): 502, delivery "not sent", nothing
    stored; the platform's retry under the same key runs and is delivered."""
    first_sandbox = make_sandbox()
    port, creds = first_sandbox.port, first_sandbox.credentials
    config = service_config(first_sandbox)
    first_sandbox.stop()
    with RedisServer() as server:
        config["state"] = server.url
        url = start_service(config)
        down = _call(api, url, keys.api, "retry-me")
        assert down[0] == 502 and all(r["delivery"] == "not sent" for r in _results(down[2]))
        assert down[1]["idempotency-recorded"] == "false"  # not kept: a repeat runs again, and says so here
        from line_connector.sandbox import Sandbox

        back = Sandbox(port=port, credentials=creds).start()
        try:
            up = _call(api, url, keys.api, "retry-me")
            assert up[0] == 200 and "idempotent-replayed" not in up[1]
            assert back.stats()["line"]["deliveries"] == 1
            replay = _call(api, url, keys.api, "retry-me")  # now it is kept
            assert replay[1].get("idempotent-replayed") == "true" and back.stats()["line"]["deliveries"] == 1
        finally:
            back.stop()


class _BigAnswerLine(http.server.ThreadingHTTPServer):
    """A LINE stand-in answering every push with ~600 KB of CJK text
    (UTF-8; 1.2 MB once \\u-escaped) and counting the POSTs it got."""

    daemon_threads = True

    def __init__(self):
        self.posts = 0
        text = "\u65e5\u672c\u8a9e\u306e\u9577\u3044\u8fd4\u4e8b" * 25000  # 8 chars x 3 bytes x 25000: 600 KB
        self.answer = json.dumps({"sentMessages": [{"id": "1", "quoteToken": "q"}], "note": text},
                                 ensure_ascii=False).encode("utf-8")
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                owner.posts += 1
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(owner.answer)))
                self.end_headers()
                self.wfile.write(owner.answer)

            def log_message(self, *args):
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d" % self.server_address[1]


@pytest.mark.parametrize("store", ["redis", "files"])
def test_a_large_cjk_answer_is_stored_and_replayed_never_rerun(store, start_service, service_sandbox,
                                                               service_config, api, keys, tmp_path):
    vendor = _BigAnswerLine()
    threading.Thread(target=vendor.serve_forever, daemon=True).start()
    try:
        assert len(vendor.answer) > 500_000
        config = service_config(service_sandbox)
        config["assets"]["big_line"] = {"url": vendor.url, "token": "big-answer-token-1234"}
        body = {"asset": "big_line", "inputs": PUSH["inputs"]}
        with RedisServer() as server:
            env = {"LINE_CONNECTOR_CACHE_DIR": str(tmp_path / "cache")}
            if store == "redis":
                config["state"] = server.url
            url = start_service(config, env=env)
            answers = [_call(api, url, keys.api, "big-1", body=body) for _ in range(3)]
        assert vendor.posts == 1  # counted by the vendor
        assert [a[0] for a in answers] == [200, 200, 200]
        assert "idempotent-replayed" not in answers[0][1]
        assert len(answers[0][2]) > 500_000 and "idempotency-recorded" not in answers[0][1]
        for again in answers[1:]:  # kept as a short note in its place (1.2 MB once \u-escaped): replayed
            assert again[1].get("idempotent-replayed") == "true"
            assert "too large to keep" in json.loads(again[2])["error"]
    finally:
        vendor.shutdown()
        vendor.server_close()


# ------------------------------------------------------------- /readyz
def test_readyz_follows_the_state_store_healthz_does_not(start_service, service_sandbox, service_config, api):
    with RedisServer() as server:
        url = start_service(service_config(service_sandbox, state=server.url))
        assert api(url + "/readyz")[0] == 200  # no API key needed, like /healthz
        server.kill()
        status, headers, body = api(url + "/readyz")
        # the reason is the operator's (in the log), not any caller's: the path needs no API key
        assert status == 503 and json.loads(body) == {"status": "unavailable"}
        assert headers.get("retry-after") == "5"
        assert "127.0.0.1:%d" % server.port in url.log_text()
        assert api(url + "/healthz")[0] == 200
        server.restart()
        assert api(url + "/readyz")[0] == 200


def test_readyz_with_the_file_store(start_service, service_sandbox, service_config, api):
    url = start_service(service_config(service_sandbox))
    status, _, body = api(url + "/readyz")
    assert status == 200 and json.loads(body)["status"] == "ready"


# ------------------------------------------------------------- api keys
@pytest.mark.parametrize("value", ["svcKEY-trailing-newline-0123\n", " svcKEY-leading-space-0123", "svcKEY-tab-0123\t"])
def test_api_keys_with_whitespace_are_refused_at_start(value, tmp_path, service_sandbox, service_config):
    config = service_config(service_sandbox)
    config["api_keys"] = [config["api_keys"][0], "${SVC_KEY_FROM_FILE}"]
    code, err = _start_fails(tmp_path, config, env={"SVC_KEY_FROM_FILE": value})
    assert code == 2 and "config.api_keys[1]" in err and "whitespace" in err
    assert value.strip() not in err and "Traceback" not in err


def test_load_config_names_every_key_with_whitespace(tmp_path):
    from line_connector import InputError
    from line_connector.config import load_config

    cfg = tmp_path / "c.yaml"
    cfg.write_text(json.dumps({"assets": {"a": {"token": "t" * 20}}, "api_keys": ["good-key-1234-5678", "bad-key-1234-5678\n",
                                                                               " bad-too-1234-5678"]}))
    with pytest.raises(InputError) as exc:
        load_config(str(cfg), environ={})
    assert [d["path"] for d in exc.value.details] == ["config.api_keys[1]", "config.api_keys[2]"]
    assert "bad-key-1234-5678" not in json.dumps(exc.value.to_json())


# ------------------------------------------------------- the read-retry note
def test_a_read_resent_several_times_says_so():
    """A read is resent like any request a repeat cannot harm; when every
    attempt was cut after the request went out, the note says how often it
    was sent, never 'it was not resent'."""
    from line_connector import ActionError, run_action
    from line_connector.sandbox import FaultPlan, Sandbox

    sandbox = Sandbox(faults=FaultPlan(script=["reset_after"] * 10)).start()
    try:
        with pytest.raises(ActionError) as exc:
            run_action("line_get_quota", sandbox.demo_assets()["line_channel_access_token"], {})
        result = exc.value.output[0]
        assert result["delivery"] == "unknown" and result["attempts"] > 1
        assert "not resent" not in result["note"]
        assert "sent %d times" % result["attempts"] in result["note"]
        assert sandbox.stats()["requests"] == result["attempts"]
    finally:
        sandbox.stop()

