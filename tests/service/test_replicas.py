"""Issue 14's "Done when": two ``line-connector serve`` replicas on one real
Redis, behind no proxy.

Everything is real and separate, as in production: a ``redis-server``
(tests/redis_server.py), the sandbox (LINE, NXCloud, Sobot on 127.0.0.1),
and two ``line-connector serve`` processes on waitress, each on its own
port, started from one config file whose ``state:`` is that Redis. The test
talks to them over HTTP only and counts what reached the vendors in the
sandbox's own statistics:

* one Sobot token fetched across both replicas (Sobot allows one valid
  token per appid: a second fetch would invalidate the first replica's);
* an ``Idempotency-Key`` honoured across both: the same NXCloud send POSTed
  to A, then to B, is delivered once, and B answers with A's stored answer
  and ``Idempotent-Replayed: true`` (NXCloud has no retry key of its own);
* a LINE webhook delivered to A and redelivered to B is handed over once
  (the jsonl sink holds it once);
* a bad signature is 400 and nothing is forwarded;
* no API key is 401 and nothing is sent.
"""
import json
import os
import subprocess
import sys
import time
import uuid

import pytest
import requests

from helpers import USER

API_KEY = "replica-api-key-Canary-6Tz1Qp9Ls3"
START_TIMEOUT = 30.0
REDIS_DB = 11  # a database of its own on the session's shared redis-server


def start_replica(config_path, workdir, name, env):
    """``line-connector serve`` in its own process on a free port (``--port
    0``); returns (process, base url, stderr path) once it logged
    ``listening`` and answers /healthz. The caller stops it."""
    err_path = os.path.join(workdir, "%s.stderr" % name)
    err = open(err_path, "wb")
    proc = subprocess.Popen([sys.executable, "-m", "line_connector.cli", "serve", "--config", config_path,
                             "--host", "127.0.0.1", "--port", "0", "--threads", "4"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err, env=env)
    err.close()
    deadline = time.monotonic() + START_TIMEOUT
    url = None
    while time.monotonic() < deadline and proc.poll() is None:
        with open(err_path, "rb") as fh:
            for line in fh.read().decode("utf-8", "replace").splitlines():
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                if record.get("event") == "listening":
                    url = record["url"]
        if url:
            try:
                if requests.get(url + "/healthz", timeout=2).status_code == 200:
                    return proc, url, err_path
            except requests.RequestException:
                pass
        time.sleep(0.05)
    stop_replica(proc)
    with open(err_path, "rb") as fh:
        tail = fh.read()[-2000:].decode("utf-8", "replace")
    raise AssertionError("replica %s did not start: %s" % (name, tail))


def stop_replica(proc):
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


@pytest.fixture
def cluster(tmp_path, redis_url):
    """(sandbox, replica A url, replica B url, jsonl sink path, stderr paths)."""
    import redis

    from line_connector.sandbox import Sandbox

    state_url = redis_url.rsplit("/", 1)[0] + "/%d" % REDIS_DB
    client = redis.Redis.from_url(state_url)
    client.flushdb()  # only this test's database: it must start with no Sobot token
    client.close()
    sink = tmp_path / "events.jsonl"
    sandbox = Sandbox(log_stream=open(os.devnull, "w")).start()
    procs = []
    try:
        demo = sandbox.demo_assets()
        config = {
            "assets": {"ops_line": demo["line_channel_access_token"], "ops_secret": demo["line_channel_secret"],
                       "ops_nx": demo["nxcloud"], "ops_sobot": demo["sobot"]},
            "api_keys": ["${REPLICA_API_KEY}"],
            "state": state_url,
            "webhooks": {"ops": {"asset": "ops_secret", "forward": [{"jsonl": str(sink)}]}},
        }
        config_path = tmp_path / "service.yaml"
        config_path.write_text(json.dumps(config), encoding="utf-8")  # JSON is YAML
        env = dict(os.environ, REPLICA_API_KEY=API_KEY, PYTHONIOENCODING="utf-8")
        env.pop("LINE_CONNECTOR_STATE", None)  # the config's state: is what must be used
        urls, errs = [], []
        for name in ("a", "b"):
            # each replica its own cache directory: nothing shared but Redis
            env_r = dict(env, LINE_CONNECTOR_CACHE_DIR=str(tmp_path / ("cache-" + name)))
            proc, url, err = start_replica(str(config_path), str(tmp_path), name, env_r)
            procs.append(proc)
            urls.append(url)
            errs.append(err)
        assert urls[0] != urls[1]
        yield sandbox, urls[0], urls[1], sink, errs
    finally:
        for proc in procs:
            stop_replica(proc)
        sandbox.stop()


def _post(url, path, body, key=API_KEY, headers=None):
    h = {"Content-Type": "application/json"}
    if key:
        h["Authorization"] = "Bearer " + key
    h.update(headers or {})
    return requests.post(url + path, data=json.dumps(body).encode("utf-8"), headers=h, timeout=30)


def _sink_events(sink):
    if not sink.exists():
        return []
    lines = [json.loads(line) for line in sink.read_text(encoding="utf-8").splitlines() if line.strip()]
    events = []
    for line in lines:  # a line is one event, or a delivery holding them
        events.extend(line["events"] if isinstance(line, dict) and "events" in line else [line])
    return events


def _event_id(event):
    return event.get("webhookEventId") or (event.get("event") or {}).get("webhookEventId")


def test_two_replicas_share_one_redis(cluster):
    from line_connector.sandbox import webhook_body

    sandbox, a, b, sink, errs = cluster

    # -- one Sobot token across both replicas
    for url in (a, b, a, b):
        r = _post(url, "/v1/actions/sobot_query_task_list", {"asset": "ops_sobot", "inputs": {}})
        assert r.status_code == 200, r.text
    assert sandbox.stats()["sobot"]["token_requests"] == 1

    # -- an Idempotency-Key honoured across both: one NXCloud delivery
    from line_connector.manifest import manifest

    send = {"asset": "ops_nx", "inputs": manifest().action("nxcloud_send_line").example}  # documented, valid
    key = "replica-" + uuid.uuid4().hex
    before = sandbox.stats()["nxcloud"]["deliveries"]
    first = _post(a, "/v1/actions/nxcloud_send_line", send, headers={"Idempotency-Key": key})
    assert first.status_code == 200, first.text
    assert "Idempotent-Replayed" not in first.headers
    assert sandbox.stats()["nxcloud"]["deliveries"] == before + 1
    again = _post(b, "/v1/actions/nxcloud_send_line", send, headers={"Idempotency-Key": key})
    assert again.status_code == 200, again.text
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert again.json() == first.json()  # A's answer, replayed by B
    assert sandbox.stats()["nxcloud"]["deliveries"] == before + 1
    assert sandbox.stats()["nxcloud"]["recipients_delivered_twice"] == 0
    # the same key with another body is refused by the other replica, nothing sent
    other = dict(send, inputs=dict(send["inputs"]))
    other["inputs"]["to"] = _other_recipient(send["inputs"]["to"])
    refused = _post(b, "/v1/actions/nxcloud_send_line", other, headers={"Idempotency-Key": key})
    assert refused.status_code == 422, refused.text
    assert sandbox.stats()["nxcloud"]["deliveries"] == before + 1

    # -- a webhook delivered to A, redelivered to B: handed over once
    event_id = "01" + uuid.uuid4().hex[:24].upper()
    event = {"type": "message", "mode": "active", "timestamp": 1700000000000, "webhookEventId": event_id,
             "deliveryContext": {"isRedelivery": False}, "replyToken": "nHuyWiB7yP5Zw52FIkcQobQuGDXCTA",
             "source": {"type": "user", "userId": USER},
             "message": {"id": "444573844083572737", "type": "text", "text": "help", "quoteToken": "q1"}}
    body, signature = webhook_body([event])
    r = requests.post(a + "/v1/webhooks/ops", data=body.encode("utf-8"), timeout=30,
                      headers={"Content-Type": "application/json", "x-line-signature": signature})
    assert r.status_code == 200, r.text
    redelivered = dict(event, deliveryContext={"isRedelivery": True})
    body2, signature2 = webhook_body([redelivered])
    r = requests.post(b + "/v1/webhooks/ops", data=body2.encode("utf-8"), timeout=30,
                      headers={"Content-Type": "application/json", "x-line-signature": signature2})
    assert r.status_code == 200, r.text
    assert [_event_id(e) for e in _sink_events(sink)] == [event_id]

    # -- a bad signature: 400, nothing forwarded (a new event, so it is not a duplicate)
    fresh = dict(event, webhookEventId="01" + uuid.uuid4().hex[:24].upper())
    body3, signature3 = webhook_body([fresh])
    bad = signature3[:-2] + ("AA" if not signature3.endswith("AA=") else "BB")
    for url in (a, b):
        r = requests.post(url + "/v1/webhooks/ops", data=body3.encode("utf-8"), timeout=30,
                          headers={"Content-Type": "application/json", "x-line-signature": bad})
        assert r.status_code == 400, r.text
    r = requests.post(a + "/v1/webhooks/ops", data=body3.encode("utf-8"), timeout=30,
                      headers={"Content-Type": "application/json"})  # no signature at all
    assert r.status_code == 400, r.text
    assert [_event_id(e) for e in _sink_events(sink)] == [event_id]

    # -- no API key, or a wrong one: 401 and nothing sent
    requests_before = sandbox.stats()["requests"]
    for url in (a, b):
        r = _post(url, "/v1/actions/line_send_push", {"asset": "ops_line", "inputs": {
            "to": USER, "messages": [{"type": "text", "text": "hi"}]}}, key=None)
        assert r.status_code == 401, r.text
        assert r.json()["error"]
        r = _post(url, "/v1/actions/line_send_push", {"asset": "ops_line", "inputs": {
            "to": USER, "messages": [{"type": "text", "text": "hi"}]}}, key="not-" + API_KEY)
        assert r.status_code == 401, r.text
    assert sandbox.stats()["requests"] == requests_before

    # -- nothing of the above leaked a secret or a traceback into the logs
    demo = sandbox.demo_assets()
    for err in errs:
        text = open(err, encoding="utf-8", errors="replace").read()
        assert "Traceback" not in text
        for secret in (API_KEY, demo["nxcloud"]["access_secret"], demo["sobot"]["app_key"],
                       demo["line_channel_access_token"]["token"], demo["line_channel_secret"]["channel_secret"]):
            assert secret not in text
        for line in text.splitlines():
            json.loads(line)  # JSON lines only


def _other_recipient(to):
    """A recipient different from ``to`` (same shape), for a changed body."""
    if isinstance(to, list):
        return list(to) + ["+8613800000001"]
    return to[:-1] + ("1" if not to.endswith("1") else "2")
