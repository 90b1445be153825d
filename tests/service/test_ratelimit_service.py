"""LINE's rate limits through the service (issue 23, SPEC 13): ``/metrics``
counts the limiter's waits and LINE's 429s per endpoint and cause, and two
``line-connector serve`` replicas sharing one Redis hold the multicast
limit together.

Rules: Messaging API reference, "Rate limits"
(https://developers.line.biz/en/reference/messaging-api/#rate-limits) and
"Handle HTTP status code 429 errors"
(https://developers.line.biz/en/docs/messaging-api/handling-http-429-errors/).
"""
import json
import os
import threading

import pytest

from helpers import USER

pytest.importorskip("prometheus_client")

MULTICAST = "POST /v2/bot/message/multicast"
TEXT = [{"type": "text", "text": "hello"}]


def _samples(text):
    from prometheus_client.parser import text_string_to_metric_families

    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_metrics_count_limiter_waits_and_429s_by_endpoint_and_cause(start_service, service_config, api, keys,
                                                                      make_sandbox):
    from line_connector.sandbox import FaultPlan

    sandbox = make_sandbox(FaultPlan(script=["429_rate", None, "429"]))  # 1st push: 429, retried; 2nd: monthly
    config = service_config(sandbox)
    # multicast at factor 0.01: 2 per second, burst 1, so the second one waits
    config["assets"]["slow_line"] = dict(config["assets"]["ops_line"], rate_limit_factor=0.01)
    url = start_service(config)
    push = {"asset": "ops_line", "inputs": {"to": USER, "messages": TEXT}}
    status, _h, body = api(url + "/v1/actions/line_send_push", "POST", push, key=keys.api)
    assert status == 200, body  # the rate-limit 429 was retried
    status, _h, body = api(url + "/v1/actions/line_send_push", "POST", push, key=keys.api)
    assert status == 502 and b"monthly" in body  # the monthly-limit 429 was not
    for i in range(2):
        inputs = {"to": ["U%032x" % (i * 2 + j) for j in range(2)], "messages": TEXT}
        status, _h, body = api(url + "/v1/actions/line_send_multicast", "POST",
                               {"asset": "slow_line", "inputs": inputs}, key=keys.api)
        assert status == 200, body
    waited = json.loads(body)[0]["throttled_ms"]
    s = _samples(api(url + "/metrics")[2].decode())
    push_label = frozenset({("endpoint", "other"), ("cause", "rate")})
    assert s[("line_connector_line_429_total", push_label)] == 1
    assert s[("line_connector_line_429_total", frozenset({("endpoint", "other"), ("cause", "monthly")}))] == 1
    assert s[("line_connector_rate_limit_waits_total", frozenset({("endpoint", MULTICAST)}))] == 1
    seconds = s[("line_connector_rate_limit_wait_seconds_total", frozenset({("endpoint", MULTICAST)}))]
    assert abs(seconds * 1000 - waited) < 5


def _two_replicas_multicast(tmp_path, redis_url, rate_limits, factor, ids):
    """Two `line-connector serve` processes, one config, one Redis (its own
    database, emptied first), each asked at the same time for a multicast
    to ``ids`` IDs at max_workers 8 against an in-process sandbox enforcing
    ``rate_limits``; returns (the two HTTP answers, the sandbox's stats)."""
    import redis
    import requests

    from line_connector.sandbox import Sandbox
    from test_replicas import API_KEY, start_replica, stop_replica

    state_url = redis_url.rsplit("/", 1)[0] + "/12"
    client = redis.Redis.from_url(state_url)
    client.flushdb()
    client.close()
    sandbox = Sandbox(log_stream=open(os.devnull, "w"), rate_limits=rate_limits).start()
    procs = []
    try:
        asset = dict(sandbox.demo_assets()["line_channel_access_token"])
        if factor is not None:
            asset["rate_limit_factor"] = factor
        config = {"assets": {"ops_line": asset}, "api_keys": ["${REPLICA_API_KEY}"], "state": state_url}
        config_path = tmp_path / "service.yaml"
        config_path.write_text(json.dumps(config), encoding="utf-8")
        env = dict(os.environ, REPLICA_API_KEY=API_KEY, PYTHONIOENCODING="utf-8")
        env.pop("LINE_CONNECTOR_STATE", None)
        urls = []
        for name in ("a", "b"):
            env_r = dict(env, LINE_CONNECTOR_CACHE_DIR=str(tmp_path / ("cache-" + name)))
            proc, url, _err = start_replica(str(config_path), str(tmp_path), name, env_r)
            procs.append(proc)
            urls.append(url)
        answers = [None, None]

        def send(i):
            inputs = {"to": ["U%032x" % (i * ids + j) for j in range(ids)], "messages": TEXT,
                      "max_workers": 8}
            answers[i] = requests.post(urls[i] + "/v1/actions/line_send_multicast", timeout=120,
                                       headers={"Authorization": "Bearer " + API_KEY},
                                       json={"asset": "ops_line", "inputs": inputs})

        threads = [threading.Thread(target=send, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        stats = sandbox.stats()
    finally:
        for proc in procs:
            stop_replica(proc)
        sandbox.stop()
    return answers, stats


def test_two_service_replicas_on_one_redis_hold_the_multicast_limit(tmp_path, redis_url):
    """Two `line-connector serve` processes, one config, one Redis, each
    sending a multicast at max_workers 8 at the same time.
    The sandbox enforces a lowered limit (10/s) and the assets use factor
    0.04 (8/s of LINE's 200/s: "10 x 0.8"), so two replicas that did not
    share the limiter (16/s) would exceed it; 10,000 IDs each (20
    requests) keep it to a few seconds after the two start-ups (it may
    pass 10 s on a loaded machine: two server start-ups, then 40 requests
    at 8 per second)."""
    answers, stats = _two_replicas_multicast(tmp_path, redis_url, {MULTICAST: (10, 1.0)}, 0.04, 10000)
    for answer in answers:
        assert answer.status_code == 200, answer.text[-500:]
        assert len(answer.json()) == 20
        assert sum(r.get("throttled_ms", 0) for r in answer.json()) > 1000  # the limiter held each replica
    multicast = stats["rate_limits"][MULTICAST]
    assert multicast["refused"] == 0 and stats["line"]["deliveries"] == 40
    assert multicast["busiest_second"] <= 8, multicast["per_second"]


def test_two_service_replicas_on_one_redis_send_100000_ids_each_within_lines_multicast_limit(tmp_path, redis_url):
    """Issue 23's "done when", at LINE's own numbers: two replicas sharing
    one Redis, each a multicast to 100,000 IDs (200 requests of 500) at
    max_workers 8, against the sandbox enforcing LINE's limits (Messaging
    API reference, "Rate limits": multicast 200 requests per second,
    https://developers.line.biz/en/reference/messaging-api/#rate-limits):
    no rate-limit 429 at all, and the busiest second stays within 200 x 0.8
    (the default rate_limit_factor). It takes 10 to 15 s: two server
    start-ups (about 2 s each), 2 x 3.7 MB of IDs posted and parsed, and
    400 requests that the shared limit itself spreads over 2.4 s or more
    (160 per second, a burst of 16), each answered with its 500 IDs.
    (On a loaded machine the replicas may not reach 160/s together; the
    test above lowers the limit so the offered load is sure to exceed it.)"""
    from line_connector import ratelimit

    ids = 100000
    answers, stats = _two_replicas_multicast(tmp_path, redis_url, True, None, ids)
    for answer in answers:
        assert answer.status_code == 200, answer.text[-500:]
        results = answer.json()
        assert len(results) == ids // 500 and all(r["status_code"] == 200 for r in results)
    multicast = stats["rate_limits"][MULTICAST]
    assert multicast["limit"] == [200, 1.0]  # LINE's published limit, not an override
    assert multicast["refused"] == 0  # no rate-limit 429 at all
    assert stats["line"]["deliveries"] == 2 * ids // 500 and sum(multicast["per_second"].values()) == 2 * ids // 500
    assert multicast["busiest_second"] <= 200 * ratelimit.DEFAULT_FACTOR, multicast["per_second"]
