"""Fuzzing: every action's inputs and every asset, broken in every way
hypothesis can think of (NaN, Infinity, lone surrogates and integers past
64 bits included), always end in a clean InputError (exit 2) with
nothing sent, or (when the mutation happens to stay valid) a normal result.
Malformed server answers always end in exit 1 with the raw text kept."""
import json
import re

import pytest
import responses
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import run_cli
from line_connector import ActionError, InputError, run_action
from line_connector.http import HttpClient
from line_connector.manifest import manifest
from line_connector.sandbox.line_tokens import demo_private_jwk

ACTIONS = list(manifest().actions.values())
ASSETS = {
    "line_channel_access_token": {"token": "fuzz-token-1234"},
    "line_oauth2_client_credentials": {"client_id": "1650000000", "client_secret": "fuzz-secret-1234"},
    "line_channel_secret": {"channel_secret": "fuzz-channel-secret"},
    "nxcloud": {"access_key": "ak", "access_secret": "fuzz-nx-secret"},
    "sobot": {"appid": "app", "app_key": "fuzz-sobot-key"},
    "line_channel_jwt": {"channel_id": "1650000000", "kid": "fuzz-kid", "private_key": demo_private_jwk()},
}
ANY_URL = re.compile(r"https?://.*")

garbage = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-2**70, max_value=2**70)
    | st.floats() | st.text(max_size=50) | st.text(min_size=6000, max_size=6001)
    | st.sampled_from(["", "\x00", "\ud7ff", "\ud800", "x\udfffy", "💥" * 3000, "U" * 33, "https://",
                      "20260230", 10 ** 400, -2 ** 63 - 1, float("nan"), float("-inf"), 1e308]),
    lambda inner: st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12)


def paths(obj, prefix=()):
    """Every (path) into a JSON-like value."""
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from paths(v, prefix + (i,))


def mutate(value, path, how, junk):
    if not path:
        return junk if how != "drop" else {}
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        value = dict(value)
        if not rest and how == "drop":
            value.pop(head, None)
        elif not rest and how == "extra":
            value["zz_%s" % head] = junk
        else:
            value[head] = mutate(value[head], rest, how, junk)
    elif isinstance(value, list):
        value = list(value)
        if not rest and how == "drop":
            value.pop(head)
        else:
            value[head] = mutate(value[head], rest, how, junk)
    return value


@st.composite
def broken_inputs(draw, example):
    all_paths = list(paths(example))
    path = draw(st.sampled_from(all_paths))
    how = draw(st.sampled_from(["replace", "drop", "extra"]))
    return mutate(example, path, how, draw(garbage))


def run_quiet(name, asset, inputs):
    client = HttpClient(sleep=lambda s: None)
    try:
        return "ok", run_action(name, asset, inputs, client=client)
    except InputError as exc:
        return "input", exc
    except ActionError as exc:
        return "action", exc


def _mock_everything(rsps):
    for method in ("GET", "POST"):
        rsps.add(method, ANY_URL, json={})


@pytest.mark.parametrize("spec", ACTIONS, ids=[a.name for a in ACTIONS])
def test_broken_inputs_never_crash_and_never_send(spec):
    asset = ASSETS[spec.assets[0]]

    @settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
    @given(broken_inputs(spec.example))
    def check(inputs):
        with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
            _mock_everything(rsps)
            kind, out = run_quiet(spec.name, asset, inputs)
            if kind == "input":
                assert len(rsps.calls) == 0, "an invalid input was sent"
                assert out.details and all(d["path"].startswith(("inputs", "asset")) and d["message"]
                                           for d in out.details)
                json.dumps(out.to_json())

    check()


@given(st.sampled_from(sorted(ASSETS)),
       st.sampled_from(["drop", "replace", "extra", "url", "proxy", "userinfo", "port"]), garbage)
@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_broken_assets_are_input_errors(asset_name, how, junk):
    spec = next(a for a in ACTIONS if asset_name in a.assets)
    asset = dict(ASSETS[asset_name])
    if how == "drop":
        asset.pop(sorted(asset)[0])
    elif how == "replace":
        asset[sorted(asset)[-1]] = junk if not isinstance(junk, str) or not junk else None
    elif how == "extra":
        asset["unexpected_field"] = junk
    elif how == "url":
        asset["url"] = junk if isinstance(junk, str) and not junk.startswith("http") else "ftp://bad.example"
    elif how == "userinfo":  # SPEC 7: a url with user:password is an invalid asset
        asset["url"] = "https://someone:pw-%s@api.example" % len(str(junk))
    elif how == "port":
        asset["http_proxy"] = "http://proxy.example:%d" % (65536 + len(str(junk)))
    else:
        asset["http_proxy"] = junk if isinstance(junk, str) and not junk.startswith("http") else "proxy:3128"
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        _mock_everything(rsps)
        kind, out = run_quiet(spec.name, asset, spec.example)
        assert kind == "input", "asset %r was accepted" % (asset,)
        assert any(d["path"].startswith("asset") for d in out.details)
        assert len(rsps.calls) == 0


@given(st.one_of(st.text(max_size=200), st.binary(max_size=200).map(lambda b: b.decode("latin-1")),
                 garbage.map(json.dumps)))
@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_cli_garbage_on_stdin_is_a_json_error_never_a_traceback(text):
    code, out, err = run_cli("run", "line_send_push", stdin=text)
    assert code == 2 and out == ""
    assert "Traceback" not in err
    error = json.loads(err)
    assert error["error"] and isinstance(error["details"], list)


MALFORMED = {
    "html": dict(body="<html><body>502 Bad Gateway</body></html>", content_type="text/html"),
    "empty": dict(body=""),
    "truncated_json": dict(body='{"sentMessages": [{"id": "4612', content_type="application/json"),
    "wrong_content_type": dict(body="<xml>not json</xml>", content_type="application/json"),
    "huge": dict(body="x" * (5 * 1024 * 1024), content_type="text/plain"),
}
SERVICES = {
    "line_send_push": ("POST", "https://api.line.me/v2/bot/message/push"),
    "nxcloud_send_viber": ("POST", "https://api-hk.nxlink.ai/saas/viber/send"),
    "sobot_query_task_list": ("POST", "https://sg.sobot.com/chat-set/api/line/query_task_list"),
}


@pytest.mark.parametrize("shape", sorted(MALFORMED))
@pytest.mark.parametrize("action", sorted(SERVICES))
@responses.activate
def test_malformed_answers_are_failures_that_keep_the_raw_text(action, shape):
    method, url = SERVICES[action]
    responses.get("https://sg.sobot.com/api/get_token",
                  json={"item": {"token": "t-fuzz-token", "expires_in": "86400"}, "ret_code": "000000"})
    responses.add(method, url, status=200, **MALFORMED[shape])
    spec = manifest().action(action)
    kind, out = run_quiet(action, ASSETS[spec.assets[0]], spec.example)
    assert kind == "action"
    (result,) = out.output
    assert result["ok"] is False and result["json_body"] is None
    body = MALFORMED[shape]["body"]
    if body:
        assert result["raw_body"] == body[:64 * 1024]
        assert result.get("raw_body_truncated", False) == (len(body) > 64 * 1024)
    assert out.message
