"""``GET /metrics`` (issue 14 item 6): Prometheus text format via
prometheus_client, an own registry per app, requests per action and
outcome, vendor latency per HTTP attempt, retries, webhook events; labels
are closed sets (action names of the manifest, fixed outcomes), so no caller
text, input value or secret can ever become one.

Format: https://prometheus.io/docs/instrumenting/exposition_formats/ (the
text is parsed back with prometheus_client's own parser here)."""
import pytest

from helpers import USER

prometheus_client = pytest.importorskip("prometheus_client")


def _samples(text):
    """{(name, frozenset(labels.items())): value} of an exposition text."""
    from prometheus_client.parser import text_string_to_metric_families

    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def _value(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())), 0.0)


# ------------------------------------------------------------ the class

def test_own_registry_and_closed_labels():
    from line_connector.service.metrics import Metrics

    a, b = Metrics(), Metrics(known_routes=["ops"])
    a.count_request("line_get_quota", "ok")
    a.count_request("no_such_action_" + "x" * 50, "ok")  # caller text: never a label
    a.count_request("line_get_quota", "something-else")  # not an outcome: counted as error
    a.count_retries("line_get_quota", 3)
    a.count_retries("line_get_quota", 1)
    a.count_retries("line_get_quota", None)
    a.observe_latency("line_get_quota", 0.2)
    b.count_webhook("ops", "duplicate")
    b.count_webhook("not-a-route", "handed_over")
    with pytest.raises(ValueError):
        b.count_webhook("ops", "free text")
    text_a, ctype = a.render()
    assert ctype.startswith("text/plain")
    sa, sb = _samples(text_a.decode()), _samples(b.render()[0].decode())
    assert _value(sa, "line_connector_requests_total", action="line_get_quota", outcome="ok") == 1
    assert _value(sa, "line_connector_requests_total", action="other", outcome="ok") == 1
    assert _value(sa, "line_connector_requests_total", action="line_get_quota", outcome="error") == 1
    assert _value(sa, "line_connector_retries_total", action="line_get_quota") == 2
    assert _value(sa, "line_connector_vendor_latency_seconds_count", action="line_get_quota") == 1
    assert b"no_such_action" not in text_a
    # two apps never count into each other, nor into the global registry
    assert _value(sb, "line_connector_requests_total", action="line_get_quota", outcome="ok") == 0
    assert _value(sb, "line_connector_webhook_events_total", route="ops", outcome="duplicate") == 1
    assert _value(sb, "line_connector_webhook_events_total", route="other", outcome="handed_over") == 1
    assert b"line_connector" not in prometheus_client.generate_latest(prometheus_client.REGISTRY)


def test_observe_attempts_hook_times_every_attempt(service_sandbox):
    """line_connector.http's observer sees each HTTP attempt, retries and
    worker threads included, and a failing observer never fails a send."""
    from line_connector.http import observe_attempts
    from line_connector.runner import run_action
    from line_connector.sandbox import FaultPlan, Sandbox

    seen = []
    with Sandbox(faults=FaultPlan(script=["500"])) as sandbox:
        asset = sandbox.demo_assets()["line_channel_access_token"]
        with observe_attempts(seen.append):
            out = run_action("line_get_quota", asset, {})
    assert out[0]["attempts"] == 2 and len(seen) == 2 and all(0 <= s < 30 for s in seen)

    def broken(_):
        raise RuntimeError("observer bug")

    asset = service_sandbox.demo_assets()["line_channel_access_token"]
    with observe_attempts(broken):
        assert run_action("line_get_quota", asset, {})[0]["ok"] is True
    # outside the scope nothing is observed
    before = len(seen)
    run_action("line_get_quota", asset, {})
    assert len(seen) == before


# ------------------------------------------------------------ through the service

def test_service_counts_outcomes_retries_latency(start_service, service_config, api, keys, make_sandbox,
                                                 assert_no_secrets):
    from line_connector.sandbox import FaultPlan

    sandbox = make_sandbox(FaultPlan(script=["500"]))  # the first vendor request fails once, then is retried
    url = start_service(service_config(sandbox))
    assert api(url + "/v1/actions/line_get_quota", "POST", {"asset": "ops_line"}, key=keys.api)[0] == 200
    assert api(url + "/v1/actions/line_get_quota", "POST", {"asset": "ops_line"}, key=keys.api)[0] == 200
    assert api(url + "/v1/actions/line_get_quota", "POST", {"asset": "wrong_line"}, key=keys.api)[0] == 502
    assert api(url + "/v1/actions/line_send_push", "POST",
               {"asset": "ops_line", "inputs": {"to": USER, "messages": [{"type": "text"}]}},
               key=keys.api)[0] == 422
    assert api(url + "/v1/actions/line_get_quota", "POST", {"asset": "nope"}, key=keys.api)[0] == 404
    secret_name = "action_named_" + keys.api
    assert api(url + "/v1/actions/" + secret_name, "POST", {}, key=keys.api)[0] == 404
    status, headers, body = api(url + "/metrics")
    assert status == 200 and headers["content-type"].startswith("text/plain; version=0.0.4")
    text = body.decode()
    s = _samples(text)
    assert _value(s, "line_connector_requests_total", action="line_get_quota", outcome="ok") == 2
    assert _value(s, "line_connector_requests_total", action="line_get_quota", outcome="refused") == 1
    assert _value(s, "line_connector_requests_total", action="line_get_quota", outcome="invalid") == 1
    assert _value(s, "line_connector_requests_total", action="line_send_push", outcome="invalid") == 1
    assert _value(s, "line_connector_retries_total", action="line_get_quota") == 1
    # 2 attempts + 1 + 1 (refused, a 401 is not retried); the invalid push sent nothing
    assert _value(s, "line_connector_vendor_latency_seconds_count", action="line_get_quota") == 4
    assert _value(s, "line_connector_vendor_latency_seconds_count", action="line_send_push") == 0
    assert "action_named_" not in text
    assert_no_secrets(text)
    labels = {dict(k[1]).get("action") for k in s if dict(k[1]).get("action")}
    assert labels <= {"line_get_quota", "line_send_push", "other"}
