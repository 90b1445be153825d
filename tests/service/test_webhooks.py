"""Webhook ingress (issue 14 item 4, SPEC 9): signature, de-duplication by
webhookEventId in the state store (file and real Redis), hand-over to every
sink (jsonl, http, redis_stream), 200 only once every sink has the events.

The signature rule is LINE's: "the signature in the x-line-signature request
header [is] the HMAC-SHA256 [digest of the request body with the channel
secret], Base64-encoded"; "webhookEventId: ID to uniquely identify a webhook
event", and a redelivered event keeps it ("isRedelivery": true), so a
receiver de-duplicates by it
(https://developers.line.biz/en/reference/messaging-api/#signature-validation,
https://developers.line.biz/en/docs/messaging-api/receiving-messages/#webhook-redelivery).
"""
import io
import json
import os
import stat
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from line_connector import state
from line_connector.actions.line.webhook import signature
from line_connector.config import load_config
from line_connector.errors import InputError
from line_connector.service.webhooks import NAMESPACE, Ingress, Route
from line_connector.sinks import HttpSink, JsonlSink, RedisStreamSink, build_sinks

SECRET = "hookSECRETcanary-5d2a9e71b3c4"
URL_PASSWORD = "sinkPWcanary-8c1f3e5a7b9d"
URL_TOKEN = "sinkTOKENcanary-4e6a8c0b2d"
CANARIES = (SECRET, URL_PASSWORD, URL_TOKEN)


def event(event_id=None, text="hello", **extra):
    out = {"type": "message", "mode": "active", "timestamp": 1700000000000,
           "source": {"type": "user", "userId": "U" + "a" * 32},
           "replyToken": "r" * 32, "deliveryContext": {"isRedelivery": False},
           "message": {"type": "text", "id": "1", "quoteToken": "q", "text": text}}
    if event_id is not dict:
        out["webhookEventId"] = event_id or ("01H" + uuid.uuid4().hex[:23].upper())
    out.update(extra)
    return out


def delivery(events, secret=SECRET):
    body = json.dumps({"destination": "U" + "d" * 32, "events": events}, ensure_ascii=False).encode("utf-8")
    return body, {"x-line-signature": signature(body, secret), "content-type": "application/json"}


class Log(list):
    def __call__(self, event, **fields):
        self.append(dict(fields, event=event))

    def text(self):
        return json.dumps(self)


def ingress(sinks, store=None, route="ops", metrics=None, **options):
    log = Log()
    ing = Ingress.for_routes([Route(route, SECRET, sinks)], store=store, log=log, metrics=metrics, **options)
    ing.test_log = log
    return ing


def jsonl_events(path):
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


def no_canary(*blobs):
    for blob in blobs:
        text = blob if isinstance(blob, str) else json.dumps(blob)
        for canary in CANARIES:
            assert canary not in text, "a secret leaked"


# ------------------------------------------------------------ signature
def test_a_good_signature_hands_over_and_a_bad_one_forwards_nothing(tmp_path):
    from line_connector.service.metrics import Metrics

    path = str(tmp_path / "events.jsonl")
    metrics = Metrics(known_actions=[], known_routes=["ops"])
    ing = ingress([JsonlSink(path)], metrics=metrics)
    first, second = event(text="one"), event(text="two")
    body, headers = delivery([first, second])

    for bad in ({}, {"x-line-signature": ""}, {"x-line-signature": "AAAA"},
                {"x-line-signature": headers["x-line-signature"] + " "},
                {"x-line-signature": signature(body, "another-channel-secret")}):
        status, answer = ing.handle("ops", bad, body)
        assert status == 400 and "signature" in answer["error"]
    tampered = body.replace(b"one", b"0ne")
    assert ing.handle("ops", headers, tampered)[0] == 400
    assert jsonl_events(path) == []  # nothing forwarded
    assert state.store().get(NAMESPACE, "ops\n" + first["webhookEventId"]) is None  # nothing remembered

    status, answer = ing.handle("ops", headers, body)
    assert (status, answer) == (200, {"handed_over": 2, "duplicates": 0})
    got = jsonl_events(path)
    assert [e["raw"] for e in got] == [first, second]
    assert got[0]["webhookEventId"] == first["webhookEventId"] and got[1]["message"]["text"] == "two"

    text = metrics.render()[0].decode()
    assert 'line_connector_webhook_events_total{outcome="rejected",route="ops"} 6.0' in text
    assert 'line_connector_webhook_events_total{outcome="handed_over",route="ops"} 2.0' in text
    no_canary(ing.test_log.text(), text)


def test_unknown_route_is_404_and_a_verify_request_is_200_with_nothing_forwarded(tmp_path):
    path = str(tmp_path / "events.jsonl")
    ing = ingress([JsonlSink(path)])
    body, headers = delivery([])
    assert ing.handle("nope", headers, body)[0] == 404
    assert ing.handle("ops", headers, body) == (200, {"handed_over": 0, "duplicates": 0})
    assert not os.path.exists(path)


def test_a_signed_body_that_is_no_strict_json_is_400_with_nothing_forwarded(tmp_path):
    path = str(tmp_path / "events.jsonl")
    ing = ingress([JsonlSink(path)])
    for body in (b'{"destination": "U1", "events": [{"type": "message", "n": NaN}]}',
                 b'{"destination": "U1", "events": ' + b"[" * 100000 + b"]" * 100000 + b"}",
                 b"not json", b'{"events": 3}'):
        status, answer = ing.handle("ops", {"x-line-signature": signature(body, SECRET)}, body)
        assert status == 400, answer
    assert not os.path.exists(path)


# ------------------------------------------------------------ dedup
def test_redelivery_to_another_ingress_on_one_file_store_is_not_handed_over_again(tmp_path):
    """Two Ingress objects, each with its own FileStore object on one
    directory: two processes of one machine."""
    path = str(tmp_path / "events.jsonl")
    root = str(tmp_path / "cache" / "state")
    a = ingress([JsonlSink(path)], store=state.FileStore(root))
    b = ingress([JsonlSink(path)], store=state.FileStore(root))
    one, two = event(), event()
    body, headers = delivery([one])
    assert a.handle("ops", headers, body) == (200, {"handed_over": 1, "duplicates": 0})
    redelivered = dict(one, deliveryContext={"isRedelivery": True})
    body2, headers2 = delivery([redelivered, two])
    assert b.handle("ops", headers2, body2) == (200, {"handed_over": 1, "duplicates": 1})
    assert a.handle("ops", headers2, body2) == (200, {"handed_over": 0, "duplicates": 2})
    assert [e["webhookEventId"] for e in jsonl_events(path)] == [one["webhookEventId"], two["webhookEventId"]]


def test_an_id_repeated_inside_one_delivery_is_handed_over_once(tmp_path):
    path = str(tmp_path / "events.jsonl")
    ing = ingress([JsonlSink(path)])
    one = event()
    body, headers = delivery([one, one])
    assert ing.handle("ops", headers, body) == (200, {"handed_over": 1, "duplicates": 1})
    assert len(jsonl_events(path)) == 1


def test_events_without_webhook_event_id_are_handed_over_every_time(tmp_path):
    path = str(tmp_path / "events.jsonl")
    ing = ingress([JsonlSink(path)])
    old = event(event_id=dict)  # a payload from before webhookEventId existed
    assert "webhookEventId" not in old
    body, headers = delivery([old])
    assert ing.handle("ops", headers, body)[0] == 200
    assert ing.handle("ops", headers, body)[0] == 200
    assert len(jsonl_events(path)) == 2


def test_dedup_across_two_replicas_on_a_real_redis(tmp_path, redis_url):
    from line_connector.state_redis import RedisStore

    path = str(tmp_path / "events.jsonl")
    a = ingress([JsonlSink(path)], store=RedisStore(redis_url))
    b = ingress([JsonlSink(path)], store=RedisStore(redis_url))
    one = event()
    body, headers = delivery([one])
    assert a.handle("ops", headers, body)[1]["handed_over"] == 1
    assert b.handle("ops", headers, body) == (200, {"handed_over": 0, "duplicates": 1})
    assert len(jsonl_events(path)) == 1


def _concurrent(ingresses, body, headers, per=6):
    results, barrier = [], threading.Barrier(len(ingresses) * per)

    def post(ing):
        barrier.wait(10)
        results.append(ing.handle("ops", headers, body))

    threads = [threading.Thread(target=post, args=(ing,)) for ing in ingresses for _ in range(per)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results


class SlowJsonl(JsonlSink):
    """A jsonl sink that takes its time: the window in which a second
    delivery of the same events would slip through without the lock."""

    def hand_over(self, destination, events):
        time.sleep(0.2)
        super().hand_over(destination, events)


@pytest.mark.parametrize("backend", ["file", "redis"])
def test_concurrent_deliveries_of_the_same_events_hand_them_over_once(tmp_path, backend, request):
    if backend == "redis":
        from line_connector.state_redis import RedisStore

        url = request.getfixturevalue("redis_url")
        stores = [RedisStore(url), RedisStore(url)]
    else:
        root = str(tmp_path / "cache" / "state")
        stores = [state.FileStore(root), state.FileStore(root)]
    path = str(tmp_path / "events.jsonl")
    replicas = [ingress([SlowJsonl(path)], store=s) for s in stores]
    events = [event(), event(), event()]
    body, headers = delivery(events)
    results = _concurrent(replicas, body, headers)
    assert len(results) == 12 and all(status == 200 for status, _ in results), results
    assert sum(answer["handed_over"] for _, answer in results) == 3
    assert sorted(e["webhookEventId"] for e in jsonl_events(path)) == sorted(e["webhookEventId"] for e in events)


# ------------------------------------------------------------ jsonl
def test_jsonl_lines_are_fsynced_before_the_answer_and_the_file_is_0600(tmp_path, monkeypatch):
    path = str(tmp_path / "events.jsonl")
    synced = []
    real_fsync = os.fsync

    def fsync(fd):
        real_fsync(fd)
        if os.path.exists(path) and os.path.samestat(os.fstat(fd), os.stat(path)):
            with open(path, encoding="utf-8") as fh:
                synced.append(fh.read())
    monkeypatch.setattr(os, "fsync", fsync)
    old = os.umask(0o022)
    try:
        ing = ingress([JsonlSink(path)])
        first = event(text="caf\u00e9 \u0e02\u0e49\u0e2d\u0e04\u0e27\u0e32\u0e21")
        body, headers = delivery([first])
        assert ing.handle("ops", headers, body)[0] == 200
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    with open(path, encoding="utf-8") as fh:
        content = fh.read()
    assert synced and synced[-1] == content  # everything on disk was fsync'd before handle() returned
    assert content.endswith("\n") and content.count("\n") == 1 and "caf\u00e9" in content
    assert json.loads(content)["raw"] == first


def test_jsonl_refuses_a_symlink_and_the_events_stay_unmarked(tmp_path):
    target = tmp_path / "elsewhere.txt"
    target.write_text("precious\n")
    path = tmp_path / "events.jsonl"
    os.symlink(str(target), str(path))
    ing = ingress([JsonlSink(str(path))])
    one = event()
    body, headers = delivery([one])
    status, answer = ing.handle("ops", headers, body)
    assert status == 500 and "symlink" in answer["error"]
    assert target.read_text() == "precious\n"
    path.unlink()
    assert ing.handle("ops", headers, body) == (200, {"handed_over": 1, "duplicates": 0})  # LINE's redelivery
    assert len(jsonl_events(str(path))) == 1


def test_jsonl_writers_in_threads_never_interleave_lines(tmp_path):
    path = str(tmp_path / "events.jsonl")
    sinks = [JsonlSink(path) for _ in range(4)]
    big = "x" * 200000  # larger than a pipe buffer: one write() may be split

    def write(sink, n):
        for i in range(10):
            sink.hand_over("U1", [{"n": n, "i": i, "pad": big}, {"n": n, "i": i, "second": True}])
    threads = [threading.Thread(target=write, args=(s, n)) for n, s in enumerate(sinks)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    lines = jsonl_events(path)
    assert len(lines) == 80
    for first, second in zip(lines[::2], lines[1::2]):  # a hand-over's lines stay together
        assert (first["n"], first["i"]) == (second["n"], second["i"]) and second["second"]


def test_a_fifo_at_the_jsonl_path_is_refused_without_blocking(tmp_path):
    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs on this platform")
    path = str(tmp_path / "events.jsonl")
    os.mkfifo(path)
    ing = ingress([JsonlSink(path)])
    body, headers = delivery([event()])
    status, answer = ing.handle("ops", headers, body)
    assert status == 500 and "regular file" in answer["error"]


# ------------------------------------------------------------ http
class Receiver:
    """A local HTTP server on 127.0.0.1 whose answers follow ``plan`` (a list
    of statuses, or "hang"; the last one repeats). Records every POST."""

    def __init__(self, plan):
        self.plan = list(plan)
        self.posts = []
        self.release = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                outer.posts.append({"path": self.path, "headers": dict(self.headers), "body": body})
                step = outer.plan.pop(0) if len(outer.plan) > 1 else outer.plan[0]
                if step == "hang":
                    outer.release.wait(30)  # bounded: the test ends it
                    self.close_connection = True
                    return
                data = b"{}"
                self.send_response(step)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()

    def url(self, userinfo=""):
        return "http://%s127.0.0.1:%d/trigger?token=%s" % (userinfo, self.server.server_address[1], URL_TOKEN)

    def stop(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    made = []

    def make(plan):
        r = Receiver(plan)
        made.append(r)
        return r
    yield make
    for r in made:
        r.stop()


def test_http_sink_retries_a_5xx_then_succeeds(tmp_path, receiver):
    r = receiver([503, 500, 200])
    ing = ingress([HttpSink(r.url("hook:%s@" % URL_PASSWORD))])
    one = event()
    body, headers = delivery([one])
    assert ing.handle("ops", headers, body) == (200, {"handed_over": 1, "duplicates": 0})
    assert len(r.posts) == 3
    sent = json.loads(r.posts[-1]["body"])
    assert sent["destination"] == "U" + "d" * 32 and [e["raw"] for e in sent["events"]] == [one]
    assert r.posts[-1]["headers"]["Content-Type"] == "application/json"
    assert r.posts[-1]["headers"]["Authorization"].startswith("Basic ")  # the URL's user info is used
    assert r.posts[-1]["path"] == "/trigger?token=" + URL_TOKEN
    no_canary(ing.test_log.text())


def test_http_sink_that_always_fails_is_500_bounded_and_the_redelivery_hands_over(tmp_path, receiver):
    from line_connector.service.metrics import Metrics

    r = receiver([502])
    path = str(tmp_path / "events.jsonl")
    metrics = Metrics(known_actions=[], known_routes=["ops"])
    ing = ingress([JsonlSink(path), HttpSink(r.url("hook:%s@" % URL_PASSWORD))], metrics=metrics)
    one = event()
    body, headers = delivery([one])
    status, answer = ing.handle("ops", headers, body)
    assert status == 500 and "HTTP 502" in answer["error"]
    assert len(r.posts) == 3  # HTTP_ATTEMPTS: bounded
    assert state.store().get(NAMESPACE, "ops\n" + one["webhookEventId"]) is None  # not marked
    no_canary(answer, ing.test_log.text(), metrics.render()[0].decode())
    assert 'outcome="sink_failed",route="ops"} 1.0' in metrics.render()[0].decode()

    r.plan = [200]  # the SOAR is back; LINE redelivers
    redelivered = dict(one, deliveryContext={"isRedelivery": True})
    body2, headers2 = delivery([redelivered])
    assert ing.handle("ops", headers2, body2) == (200, {"handed_over": 1, "duplicates": 0})
    assert len(r.posts) == 4
    # the jsonl sink took it on the failed delivery too: the documented double in that failure case
    assert [e["webhookEventId"] for e in jsonl_events(path)] == [one["webhookEventId"]] * 2
    assert ing.handle("ops", headers2, body2) == (200, {"handed_over": 0, "duplicates": 1})
    assert len(r.posts) == 4


def test_http_sink_that_hangs_ends_at_its_deadline(receiver):
    r = receiver(["hang"])
    ing = ingress([HttpSink(r.url(), deadline=2.0, timeout=(1.0, 1.0))])
    body, headers = delivery([event()])
    started = time.monotonic()
    status, answer = ing.handle("ops", headers, body)
    took = time.monotonic() - started
    assert status == 500 and took < 10, (status, answer, took)
    assert 1 <= len(r.posts) <= 3


def test_http_sink_a_redirect_or_4xx_is_a_failure_not_success(receiver):
    for code in (302, 404):
        r = receiver([code])
        ing = ingress([HttpSink(r.url())])
        body, headers = delivery([event()])
        status, answer = ing.handle("ops", headers, body)
        assert status == 500 and ("HTTP %d" % code) in answer["error"]
        assert len(r.posts) == 1  # a 4xx/3xx is not retried


def test_http_sink_unreachable_is_500_and_nothing_marked():
    from redis_server import free_port

    ing = ingress([HttpSink("http://127.0.0.1:%d/x" % free_port(), deadline=3.0)])
    one = event()
    body, headers = delivery([one])
    assert ing.handle("ops", headers, body)[0] == 500
    assert state.store().get(NAMESPACE, "ops\n" + one["webhookEventId"]) is None


# ------------------------------------------------------------ redis_stream
def test_redis_stream_gets_one_entry_per_new_event(redis_url):
    import redis

    stream = "lc-test-" + uuid.uuid4().hex
    password_url = redis_url  # the test server has no password
    ing = ingress([RedisStreamSink(password_url, stream, maxlen=1000)])
    one, two = event(text="a"), event(text="b")
    body, headers = delivery([one, two])
    assert ing.handle("ops", headers, body)[1]["handed_over"] == 2
    assert ing.handle("ops", headers, body)[1]["duplicates"] == 2
    client = redis.Redis.from_url(redis_url)
    entries = client.xrange(stream)
    assert len(entries) == 2
    events = [json.loads(fields[b"event"]) for _, fields in entries]
    assert [e["raw"] for e in events] == [one, two]
    assert entries[0][1][b"destination"] == ("U" + "d" * 32).encode()


def test_redis_stream_down_is_500_and_the_events_stay_unmarked(tmp_path):
    from redis_server import free_port

    url = "redis://:%s@127.0.0.1:%d/0" % (URL_PASSWORD, free_port())
    log = Log()
    ing = Ingress.for_routes([Route("ops", SECRET, build_sinks([{"redis_stream": {"url": url, "stream": "s"}}],
                                                               "config.webhooks.ops.forward"))], log=log)
    one = event()
    body, headers = delivery([one])
    status, answer = ing.handle("ops", headers, body)
    assert status == 500 and "redis_stream" in answer["error"]
    assert state.store().get(NAMESPACE, "ops\n" + one["webhookEventId"]) is None
    no_canary(answer, log.text(), repr(ing), repr(ing.routes["ops"].sinks))


# ------------------------------------------------------------ state outage
def test_a_state_store_outage_is_500_and_nothing_is_handed_over(tmp_path):
    from line_connector.state_redis import RedisStore
    from redis_server import free_port

    path = str(tmp_path / "events.jsonl")
    ing = ingress([JsonlSink(path)], store=RedisStore("redis://127.0.0.1:%d/0" % free_port()))
    body, headers = delivery([event()])
    status, answer = ing.handle("ops", headers, body)
    assert status == 500 and "state store" in answer["error"]
    assert not os.path.exists(path)  # never a hand-over without de-duplication


def test_a_file_store_degraded_to_memory_is_an_outage_for_the_service(tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    path = str(tmp_path / "events.jsonl")
    ing = ingress([JsonlSink(path)], store=state.FileStore(str(blocker / "state")))
    body, headers = delivery([event()])
    assert ing.handle("ops", headers, body)[0] == 500
    assert not os.path.exists(path)


def test_a_lock_held_by_a_stuck_delivery_is_500_within_the_bound(tmp_path):
    root = str(tmp_path / "cache" / "state")
    store = state.FileStore(root)
    path = str(tmp_path / "events.jsonl")
    ing = ingress([JsonlSink(path)], store=state.FileStore(root), lock_wait=0.5)
    one = event()
    body, headers = delivery([one])
    with store.lock(NAMESPACE, "ops\n" + one["webhookEventId"], 5):
        status, answer = ing.handle("ops", headers, body)
    assert status == 500 and "lock_timeout" in answer["error"]
    assert not os.path.exists(path)
    assert ing.handle("ops", headers, body)[0] == 200


# ------------------------------------------------------------ config
def test_config_sinks_unknown_type_is_a_start_up_error_naming_the_key(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(json.dumps({"assets": {"s": {"channel_secret": SECRET}},
                               "webhooks": {"ops": {"asset": "s", "forward": [{"kafka": "x"}]}}}))
    with pytest.raises(InputError) as exc:
        load_config(str(cfg))
    assert {"path": "config.webhooks.ops.forward[0].kafka", "message": "is not an allowed field"} \
        in exc.value.details
    with pytest.raises(InputError) as exc:
        build_sinks([{"kafka": "x"}], "config.webhooks.ops.forward")
    assert exc.value.details[0]["path"] == "config.webhooks.ops.forward[0].kafka"


def test_config_builds_every_sink_type_and_registers_url_secrets(tmp_path, monkeypatch):
    monkeypatch.setenv("HOOK_SECRET", SECRET)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(json.dumps({"assets": {"s": {"channel_secret": "${HOOK_SECRET}"}}, "webhooks": {"ops": {
        "asset": "s", "forward": [
            {"jsonl": str(tmp_path / "e.jsonl")},
            {"http": "https://hook:%s@soar.example/x?token=%s" % (URL_PASSWORD, URL_TOKEN)},
            {"redis_stream": {"url": "redis://:%s@127.0.0.1:6379/0" % URL_PASSWORD, "stream": "line"}}]}}}))
    config = load_config(str(cfg))
    ing = Ingress(config)
    kinds = [s.kind for s in ing.routes["ops"].sinks]
    assert kinds == ["jsonl", "http", "redis_stream"]
    assert ing.routes["ops"].sinks[2].maxlen == 100000
    scrubbed = config.redactor.scrub("a %s b %s c %s" % CANARIES)
    no_canary(scrubbed, repr(ing), repr(ing.routes), repr(config))
    ing.close()


# ------------------------------------------------------------ dev receiver
def test_the_dev_receiver_runs_the_ingress_and_prints_a_redelivery_once():
    import requests

    from line_connector.webhook_server import make_server

    out, log = io.StringIO(), io.StringIO()
    server = make_server(SECRET, out=out, log_stream=log)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        one = event()
        body, headers = delivery([one])
        for _ in range(2):
            assert requests.post(server.url, data=body, headers=headers, timeout=10).status_code == 200
        bad = requests.post(server.url, data=body, headers={"x-line-signature": "AAAA"}, timeout=10)
        assert bad.status_code == 400 and "does not match" in bad.json()["message"]
    finally:
        server.shutdown()
        server.server_close()
    lines = out.getvalue().splitlines()
    assert [json.loads(line)["raw"] for line in lines] == [one]
    assert "webhook_duplicates" in log.getvalue() and SECRET not in log.getvalue() + out.getvalue()


# ------------------------------------------------------------ the real app
def test_through_the_service(tmp_path, start_service, service_sandbox, service_config, api, keys):
    events_file = tmp_path / "svc-events.jsonl"
    demo_secret = service_sandbox.demo_assets()["line_channel_secret"]["channel_secret"]
    config = service_config(service_sandbox, webhooks={"ops": {"asset": "ops_secret",
                                                               "forward": [{"jsonl": str(events_file)}]}})
    url = start_service(config)
    one = event()
    body, headers = delivery([one], secret=demo_secret)
    status, _, answer = api(url + "/v1/webhooks/ops", "POST", body, {"x-line-signature": "AAAA"})
    assert status == 400 and not events_file.exists()
    status, _, answer = api(url + "/v1/webhooks/ops", "POST", body,
                            {"x-line-signature": headers["x-line-signature"]})
    assert status == 200 and json.loads(answer) == {"handed_over": 1, "duplicates": 0}
    status, _, answer = api(url + "/v1/webhooks/ops", "POST", body,
                            {"x-line-signature": headers["x-line-signature"]})
    assert status == 200 and json.loads(answer) == {"handed_over": 0, "duplicates": 1}
    assert [e["raw"] for e in jsonl_events(str(events_file))] == [one]
    assert stat.S_IMODE(os.stat(events_file).st_mode) == 0o600
    assert api(url + "/v1/webhooks/nope", "POST", body, {"x-line-signature": headers["x-line-signature"]})[0] == 404
    _, _, metrics = api(url + "/metrics", key=keys.api)
    text = metrics.decode()
    assert 'outcome="handed_over",route="ops"} 1.0' in text and 'outcome="duplicate",route="ops"} 1.0' in text
    assert demo_secret not in url.log_text() + text


def test_a_failed_jsonl_write_leaves_no_torn_line_and_the_redelivery_completes(tmp_path, monkeypatch):
    """A disk that fills up half-way through a hand-over: the half written
    is cut off again, so the file never holds a torn line or half a
    delivery, and the events stay unmarked for LINE's redelivery."""
    import errno

    path = str(tmp_path / "events.jsonl")
    ing = ingress([JsonlSink(path)])
    first = event()
    body, headers = delivery([first])
    assert ing.handle("ops", headers, body)[0] == 200
    before = open(path, "rb").read()
    real_write = os.write

    def full_disk(fd, data):
        if os.path.samestat(os.fstat(fd), os.stat(path)):
            real_write(fd, bytes(data[:len(data) // 2]))
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)
    monkeypatch.setattr(os, "write", full_disk)
    second = event()
    body2, headers2 = delivery([second, event()])
    status, answer = ing.handle("ops", headers2, body2)
    assert status == 500 and "No space left" in answer["error"]
    assert open(path, "rb").read() == before
    monkeypatch.setattr(os, "write", real_write)
    assert ing.handle("ops", headers2, body2) == (200, {"handed_over": 2, "duplicates": 0})
    assert [e["webhookEventId"] for e in jsonl_events(path)][:2] == [first["webhookEventId"],
                                                                    second["webhookEventId"]]


def test_a_redis_stream_that_never_answers_ends_within_its_timeout():
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)  # accepts connections (the kernel does), never answers
    try:
        url = "redis://127.0.0.1:%d/0" % listener.getsockname()[1]
        ing = ingress([RedisStreamSink(url, "s", timeout=1.0)])
        body, headers = delivery([event()])
        started = time.monotonic()
        status, answer = ing.handle("ops", headers, body)
        assert status == 500 and "redis_stream" in answer["error"] and time.monotonic() - started < 10
    finally:
        listener.close()
