"""``Idempotency-Key`` on ``POST /v1/actions/{name}`` (SPEC 9): replay of the
stored answer with ``Idempotent-Replayed: true``, 422 for another request
under the same key, 409 while the first still runs, 400 for a key that is
not 1-255 printable ASCII characters, 503 (action not run) when the state
store is down, and the record shared by replicas on one Redis.

The header follows the IETF draft "The Idempotency-Key HTTP Header Field"
(draft-ietf-httpapi-idempotency-key-header, sections 2 and 2.7: 422 for a
reused key with a different payload, 409 for a request still being
processed). NXCloud sends are the case SPEC 9 names: NXCloud has no retry
key of its own, so only this header makes a platform's retry safe."""
import json
import threading
import time

import pytest

from helpers import USER, at_once

TEXT = [{"type": "text", "text": "hello, exactly once"}]
PUSH = {"asset": "ops_line", "inputs": {"to": USER, "messages": TEXT}}
#: connector.yaml's example of nxcloud_send_line
NX_SEND = {"tenant_id": 123, "appkey": "Exxx", "to": "U44d64355f3d939f4db74649d82d25123", "type": 1,
           "content": "Text message"}


def _push(api, url, key, idem, body=PUSH):
    return api(url + "/v1/actions/line_send_push", "POST", body, headers={"Idempotency-Key": idem}, key=key)


def test_same_key_same_body_replays_without_sending(start_service, service_sandbox, service_config, api, keys):
    url = start_service(service_config(service_sandbox))
    first = _push(api, url, keys.api, "order-1")
    second = _push(api, url, keys.api, "order-1")
    assert first[0] == second[0] == 200
    assert "idempotent-replayed" not in first[1]
    assert second[1]["idempotent-replayed"] == "true"
    assert second[2] == first[2]  # byte for byte
    assert service_sandbox.stats()["line"]["deliveries"] == 1
    outcomes = [r.get("outcome") for r in url.log_lines() if r["event"] == "access"]
    assert outcomes == ["ok", "replayed"]
    # a new key is a new request
    assert _push(api, url, keys.api, "order-2")[0] == 200
    assert service_sandbox.stats()["line"]["deliveries"] == 2


def test_failures_are_replayed_too(start_service, service_sandbox, service_config, api, keys):
    """A refused send (502) is the answer to that request: a repeat gets it
    again rather than a second attempt that might deliver."""
    url = start_service(service_config(service_sandbox))
    body = dict(PUSH, asset="wrong_line")
    first = _push(api, url, keys.api, "refused-1", body)
    again = _push(api, url, keys.api, "refused-1", body)
    assert first[0] == again[0] == 502
    assert again[1]["idempotent-replayed"] == "true" and again[2] == first[2]
    assert service_sandbox.stats()["requests"] == 1


def test_same_key_different_body_is_422(start_service, service_sandbox, service_config, api, keys):
    url = start_service(service_config(service_sandbox))
    assert _push(api, url, keys.api, "k-1")[0] == 200
    changed = {"asset": "ops_line", "inputs": {"to": USER, "messages": [{"type": "text", "text": "other"}]}}
    status, headers, body = _push(api, url, keys.api, "k-1", changed)
    assert status == 422 and "idempotent-replayed" not in headers
    assert json.loads(body)["details"][0]["path"] == "headers.idempotency-key"
    # another asset, or another action, under the same key: 422 too
    assert _push(api, url, keys.api, "k-1", dict(PUSH, asset="wrong_line"))[0] == 422
    assert service_sandbox.stats()["line"]["deliveries"] == 1
    # the same body sent with keys in another order is the same request
    reordered = {"inputs": {"messages": TEXT, "to": USER}, "asset": "ops_line"}
    assert _push(api, url, keys.api, "k-1", reordered)[1].get("idempotent-replayed") == "true"


def test_keys_are_per_api_key(start_service, service_sandbox, service_config, api, keys):
    """Two callers choosing the same Idempotency-Key never see each other's answers."""
    url = start_service(service_config(service_sandbox))
    assert _push(api, url, keys.api, "shared-name")[0] == 200
    status, headers, _ = _push(api, url, keys.other, "shared-name")
    assert status == 200 and "idempotent-replayed" not in headers
    assert service_sandbox.stats()["line"]["deliveries"] == 2


def test_in_flight_repeat_is_409(start_service, service_config, api, keys, make_sandbox):
    """The first request is held by the sandbox (a 'slow' answer); repeats
    sent meanwhile, concurrently, get 409 and send nothing; once it ends,
    a repeat gets its answer."""
    from line_connector.sandbox import FaultPlan

    sandbox = make_sandbox(FaultPlan(script=["slow"], slow_seconds=3.0))
    url = start_service(service_config(sandbox))
    results = {}

    def first():
        results["first"] = api(url + "/v1/actions/line_get_quota", "POST", {"asset": "ops_line"},
                               headers={"Idempotency-Key": "slow-1"}, key=keys.api)

    worker = threading.Thread(target=first)
    worker.start()
    deadline = time.monotonic() + 10
    while sandbox.stats()["requests"] < 1 and time.monotonic() < deadline:
        time.sleep(0.02)  # the first request has reached the vendor: it is running
    repeats = at_once(lambda _: api(url + "/v1/actions/line_get_quota", "POST", {"asset": "ops_line"},
                                    headers={"Idempotency-Key": "slow-1"}, key=keys.api), 4, timeout=30)
    worker.join(30)
    assert [r[0] for r in repeats] == [409] * 4
    assert all(json.loads(r[2])["details"][0]["path"] == "headers.idempotency-key" for r in repeats)
    assert results["first"][0] == 200
    assert sandbox.stats()["requests"] == 1
    status, headers, got = api(url + "/v1/actions/line_get_quota", "POST", {"asset": "ops_line"},
                               headers={"Idempotency-Key": "slow-1"}, key=keys.api)
    assert status == 200 and headers["idempotent-replayed"] == "true" and got == results["first"][2]


def test_concurrent_first_requests_run_once(start_service, service_sandbox, service_config, api, keys):
    """Eight identical requests at once under one key: exactly one delivery;
    every other answer is a 409 or the replay."""
    url = start_service(service_config(service_sandbox))
    answers = at_once(lambda _: _push(api, url, keys.api, "burst-1"), 8)
    statuses = sorted(a[0] for a in answers)
    assert len(statuses) == 8 and set(statuses) <= {200, 409}
    fresh = [a for a in answers if a[0] == 200 and "idempotent-replayed" not in a[1]]
    assert len(fresh) == 1
    assert service_sandbox.stats()["line"]["deliveries"] == 1


@pytest.mark.parametrize("value", ["", "x" * 256, "caf\u00e9", "tab\there", "new\x7fline"],
                         ids=["empty", "too-long", "non-ascii", "control", "del"])
def test_invalid_key_is_400(start_service, service_sandbox, service_config, api, keys, value, raw, raw_status):
    url = start_service(service_config(service_sandbox))
    body = json.dumps(PUSH).encode()
    # raw bytes: http.client refuses to send some of these header values itself
    request = ("POST /v1/actions/line_send_push HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
               "Idempotency-Key: " % keys.api).encode() + value.encode("utf-8") + \
        ("\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(body)).encode() + body
    got, _ = raw(url, request, read_timeout=15)
    status = raw_status(got)
    assert status == 400
    head, _, payload = got.partition(b"\r\n\r\n")
    if value != "new\x7fline":
        assert json.loads(payload)["details"][0]["path"] == "headers.idempotency-key"
    # else waitress refuses the DEL byte in a header value itself (RFC 9110 section 5.5), in plain text
    assert service_sandbox.stats()["requests"] == 0


def test_longest_valid_key(start_service, service_sandbox, service_config, api, keys):
    url = start_service(service_config(service_sandbox))
    key = "".join(chr(c) for c in range(0x21, 0x7f)) * 3  # every visible character, 282 long
    assert _push(api, url, keys.api, key[:255])[0] == 200
    assert _push(api, url, keys.api, key[:255])[1]["idempotent-replayed"] == "true"


def test_state_store_down_is_503_and_nothing_runs(start_service, service_sandbox, service_config, api, keys):
    """The config's Redis is not reachable: a request with an
    Idempotency-Key is refused before anything is sent."""
    pytest.importorskip("redis")
    from redis_server import free_port

    url = start_service(service_config(service_sandbox, state="redis://127.0.0.1:%d/0" % free_port()))
    status, headers, body = _push(api, url, keys.api, "down-1")
    assert status == 503
    doc = json.loads(body)
    assert "state store" in doc["error"] and doc["details"][0]["path"] == "headers.idempotency-key"
    assert "retry-after" in headers
    assert service_sandbox.stats()["requests"] == 0
    assert "Traceback" not in url.log_text()


def test_replicas_on_one_redis_share_records(start_service, service_sandbox, service_config, api, keys,
                                             redis_url):
    """Two services on one real Redis: the key claimed on one is replayed
    by the other, and an NXCloud send (no vendor key) is delivered once."""
    config = service_config(service_sandbox, state=redis_url)
    one, two = start_service(config), start_service(config)
    body = {"asset": "ops_nx", "inputs": NX_SEND}
    a = api(one + "/v1/actions/nxcloud_send_line", "POST", body, headers={"Idempotency-Key": "nx-1"}, key=keys.api)
    b = api(two + "/v1/actions/nxcloud_send_line", "POST", body, headers={"Idempotency-Key": "nx-1"}, key=keys.api)
    assert a[0] == 200, a[2]
    assert b[0] == 200 and b[1]["idempotent-replayed"] == "true" and b[2] == a[2]
    assert service_sandbox.stats()["nxcloud"]["deliveries"] == 1


# ------------------------------------------------------------ units

def test_record_key_and_fingerprint_units():
    from line_connector.service.idempotency import fingerprint, record_key

    assert record_key("k", "a", "b") != record_key("k", "ab", "")  # length-prefixed parts
    assert record_key("k1", "a", "x") != record_key("k2", "a", "x")
    assert len(record_key("secret-key", "a", "x")) == 64 and "secret-key" not in record_key("secret-key", "a", "x")
    assert fingerprint("a", "name:x", {"b": 1, "a": 2}) == fingerprint("a", "name:x", {"a": 2, "b": 1})
    assert fingerprint("a", "name:x", {"a": 1}) != fingerprint("a", "name:y", {"a": 1})
    assert fingerprint("a", "name:x", {"a": 1}) != fingerprint("a", "name:x", {"a": 1.5})


# ------------------------------------------------------------ a run that died (issue 14, review H1)

class _FakeApp:
    """What ``run_once`` uses of the app: ``log`` and ``metrics``."""

    def __init__(self):
        self.logged = []

        class _Metrics:
            @staticmethod
            def count_request(action, outcome):
                pass
        self.metrics = _Metrics()

    def log(self, event, **fields):
        self.logged.append(dict(fields, event=event))


def _run(app, calls, idem="dead-1"):
    from line_connector.service import idempotency

    def execute():
        calls.append(1)
        return 200, {"sent": True}
    return idempotency.run_once(app, "api-key", "line_send_push", idem, "hash-1", execute)


def test_claim_of_a_dead_run_is_never_run_again(monkeypatch):
    """The first run died (kill -9) after claiming the key: only its claim
    is left. Past the run's bound a repeat is NOT run again (it could
    deliver twice): 409 saying the outcome is unknown. The bound is shrunk
    to 0.3 s so the test need not wait the real 92 s."""
    from line_connector.service import idempotency
    from line_connector.service.app import HttpError

    monkeypatch.setattr(idempotency, "run_bound", lambda: 0.3)
    # the claim's life used to be this bound: it expired and the key was free again
    monkeypatch.setattr(idempotency, "_claim_ttl", lambda: 0.3, raising=False)
    app, calls = _FakeApp(), []
    original = idempotency.run_once

    def dying_execute():
        raise KeyboardInterrupt  # stands for the process dying mid-run: nothing recorded

    with pytest.raises(KeyboardInterrupt):
        original(app, "api-key", "line_send_push", "dead-1", "hash-1", dying_execute)
    with pytest.raises(HttpError) as young:  # within the bound: still running
        _run(app, calls)
    assert young.value.status == 409 and "still running" in young.value.body["error"]
    time.sleep(0.6)  # past the bound (and past the old 92 s claim's stand-in)
    with pytest.raises(HttpError) as old:
        _run(app, calls)
    assert old.value.status == 409 and "outcome is unknown" in old.value.body["error"]
    assert old.value.body["details"][0]["path"] == "headers.idempotency-key"
    assert calls == []  # never run again under that key


def test_failed_final_write_is_flagged_and_never_rerun(monkeypatch):
    """The store refuses the final answer (every try): the caller still
    gets it, marked ``Idempotency-Recorded: false``, one log line says so,
    and a repeat gets a 409, never a second run."""
    from line_connector import state
    from line_connector.service import idempotency
    from line_connector.service.app import HttpError

    real_put = type(state.store()).put
    puts = []

    def failing_put(self, namespace, key, value, ttl):
        if namespace == idempotency.NAMESPACE and value.get("state") == "done":
            puts.append(1)
            raise OSError("disk full")
        return real_put(self, namespace, key, value, ttl)  # the claim itself is written

    monkeypatch.setattr(type(state.store()), "put", failing_put)
    app, calls = _FakeApp(), []
    status, headers, body = _run(app, calls, "put-fails")
    assert status == 200 and json.loads(body) == {"sent": True}
    assert ("Idempotency-Recorded", "false") in headers
    assert len(puts) == idempotency.PUT_TRIES  # retried, within a short bound
    assert [r["event"] for r in app.logged] == ["idempotency_not_recorded"]
    monkeypatch.setattr(idempotency, "run_bound", lambda: 0.0)  # as if long after
    time.sleep(0.05)
    with pytest.raises(HttpError) as again:
        _run(app, calls, "put-fails")
    assert again.value.status == 409 and "outcome is unknown" in again.value.body["error"]
    assert calls == [1]


def test_a_worker_whose_store_fell_back_to_memory_refuses_instead_of_running():
    """Under serve --workers (``needs_shared_state``), a file store that
    degraded to this process's memory holds a claim no other worker sees: a
    copy of the request at another worker would run too. So the call is
    refused (503, not run); a one-process service, whose memory is the
    whole service's, still runs it."""
    from line_connector import state
    from line_connector.service.app import HttpError

    store = state.store()
    store._degrade(PermissionError(13, "Permission denied"))
    assert store.shared is False
    worker, calls = _FakeApp(), []
    worker.needs_shared_state = True
    with pytest.raises(HttpError) as refused:
        _run(worker, calls, idem="degraded-1")
    assert refused.value.status == 503 and "was not run" in refused.value.body["error"]
    assert calls == []
    assert [r["event"] for r in worker.logged] == ["state_unavailable"]
    assert _run(_FakeApp(), calls, idem="degraded-2")[0] == 200 and calls == [1]
