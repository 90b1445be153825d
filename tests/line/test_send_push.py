"""line_send_push and line_get_bot_info against ``responses`` mocks."""
import json
import re
import uuid

import pytest
import responses

from helpers import LINE, OAUTH_ASSET, TEXT, TOKEN, TOKEN_ASSET, USER
from line_connector import ActionError, InputError, run_action
from line_connector.http import HttpClient

PUSH = LINE + "/v2/bot/message/push"
TOKEN_URL = LINE + "/oauth2/v3/token"
OK_BODY = {"sentMessages": [{"id": "461230966842064897", "quoteToken": "IStG5h1Tz7b..."}]}


def no_sleep_client():
    return HttpClient(sleep=lambda s: None)


def push(asset=TOKEN_ASSET, **inputs):
    inputs.setdefault("to", USER)
    inputs.setdefault("messages", TEXT)
    return run_action("line_send_push", asset, inputs, client=no_sleep_client())


@responses.activate
def test_push_sends_exact_body_token_and_retry_key():
    responses.post(PUSH, json=OK_BODY, headers={"X-Line-Request-Id": "req-1"})
    out = push(notificationDisabled=True, customAggregationUnits=["promo_1"])
    assert len(out) == 1
    result = out[0]
    assert result["status_code"] == 200 and result["ok"] is True and result["reason"] == "OK"
    assert result["json_body"] == OK_BODY
    assert result["response_headers"]["X-Line-Request-Id"] == "req-1"
    sent = responses.calls[0].request
    assert sent.headers["Authorization"] == "Bearer " + TOKEN
    assert sent.headers["Content-Type"] == "application/json"
    key = sent.headers["X-Line-Retry-Key"]
    assert str(uuid.UUID(key)) == key and result["retry_key"] == key
    assert json.loads(sent.body) == {"to": USER, "messages": TEXT, "notificationDisabled": True,
                                     "customAggregationUnits": ["promo_1"]}


@responses.activate
def test_each_call_gets_a_fresh_key_unless_the_caller_gives_one():
    responses.post(PUSH, json=OK_BODY)
    push(); push()
    mine = str(uuid.uuid4())
    push(retry_key=mine)
    keys = [c.request.headers["X-Line-Retry-Key"] for c in responses.calls]
    assert keys[0] != keys[1] and keys[2] == mine
    assert "retry_key" not in json.loads(responses.calls[2].request.body)


@pytest.mark.parametrize("inputs,path", [
    ({"messages": TEXT}, "inputs.to"),
    ({"to": USER, "messages": []}, "inputs.messages"),
    ({"to": USER, "messages": TEXT * 6}, "inputs.messages"),
    ({"to": USER, "messages": "hello"}, "inputs.messages"),
    ({"to": 42, "messages": TEXT}, "inputs.to"),
    ({"to": USER, "messages": TEXT, "notificationDisabled": "no"}, "inputs.notificationDisabled"),
    ({"to": USER, "messages": TEXT, "retry_key": "not-a-uuid"}, "inputs.retry_key"),
    ({"to": USER, "messages": TEXT, "extra": 1}, "inputs.extra"),
])
@responses.activate
def test_bad_inputs_name_the_field_and_send_nothing(inputs, path):
    with pytest.raises(InputError) as exc:
        run_action("line_send_push", TOKEN_ASSET, inputs)
    assert path in [d["path"] for d in exc.value.details]
    assert len(responses.calls) == 0


@responses.activate
def test_oversized_body_is_refused_before_sending():
    big = [{"type": "text", "text": "x" * 4900}] * 5
    msgs = [{"type": "flex", "altText": "a", "contents": {"type": "bubble", "body": {
        "type": "box", "layout": "vertical", "contents": [{"type": "text", "text": "y" * 500000}] * 1}}}] * 5
    with pytest.raises(InputError) as exc:
        push(messages=msgs)
    assert exc.value.details[0]["path"] == "inputs.messages"
    assert "2 MB" in exc.value.details[0]["message"]
    assert len(responses.calls) == 0
    responses.post(PUSH, json=OK_BODY)
    assert push(messages=big)[0]["ok"]


@responses.activate
def test_400_keeps_status_headers_and_body_and_is_not_retried():
    body = {"message": "The request body has 1 error(s)",
            "details": [{"message": "May not be empty", "property": "messages[0].text"}]}
    responses.post(PUSH, json=body, status=400, headers={"X-Line-Request-Id": "req-400"})
    with pytest.raises(ActionError) as exc:
        push()
    (result,) = exc.value.output
    assert result["status_code"] == 400 and result["ok"] is False
    assert result["json_body"] == body
    assert result["response_headers"]["X-Line-Request-Id"] == "req-400"
    assert len(responses.calls) == 1
    assert "400" in exc.value.message


@responses.activate
def test_500_is_retried_with_the_same_key_then_kept():
    responses.post(PUSH, json={"message": "Internal error"}, status=500)
    with pytest.raises(ActionError) as exc:
        push()
    (result,) = exc.value.output
    assert result["status_code"] == 500 and result["json_body"] == {"message": "Internal error"}
    assert result["attempts"] == len(responses.calls) == 4
    keys = {c.request.headers["X-Line-Retry-Key"] for c in responses.calls}
    assert keys == {result["retry_key"]}


@responses.activate
def test_500_then_success_reports_success():
    responses.post(PUSH, status=503, json={"message": "busy"})
    responses.post(PUSH, json=OK_BODY)
    (result,) = push()
    assert result["ok"] and result["attempts"] == 2


@responses.activate
def test_409_already_accepted_is_success():
    # a 409 answering a retry of this call (SPEC 7; a first-attempt 409 with no record: test_retry_keys.py)
    responses.post(PUSH, status=503, json={"message": "busy"})
    responses.post(PUSH, status=409, json={"message": "The retry key is already accepted"},
                   headers={"x-line-accepted-request-id": "abc-123"})
    (result,) = push(retry_key=str(uuid.uuid4()))
    assert result["ok"] is True and result["status_code"] == 409
    assert result["accepted_request_id"] == "abc-123"
    assert "already accepted" in result["note"]


@responses.activate
def test_429_is_reported_and_not_hammered():
    responses.post(PUSH, status=429, json={"message": "You have reached your monthly limit."})
    with pytest.raises(ActionError) as exc:
        push()
    assert len(responses.calls) == 1
    assert "monthly message quota" in exc.value.output[0]["note"]


@responses.activate
def test_secret_echoed_by_the_server_is_masked():
    responses.post(PUSH, status=401, json={"message": "bad token " + TOKEN})
    with pytest.raises(ActionError) as exc:
        push()
    assert TOKEN not in json.dumps(exc.value.output) and TOKEN not in str(exc.value)
    assert "***" in exc.value.output[0]["json_body"]["message"]


# ------------------------------------------------------------------ OAuth


@responses.activate
def test_oauth_asset_needs_no_change_in_the_action():
    responses.post(TOKEN_URL, json={"access_token": "oauth-token-abc123", "expires_in": 900, "token_type": "Bearer"})
    responses.post(PUSH, json=OK_BODY)
    push(asset=OAUTH_ASSET)
    push(asset=OAUTH_ASSET)
    push(asset=TOKEN_ASSET)
    token_calls = [c for c in responses.calls if c.request.url == TOKEN_URL]
    pushes = [c.request for c in responses.calls if c.request.url == PUSH]
    assert len(token_calls) == 1, "the OAuth token is cached between calls"
    form = dict(p.split("=") for p in token_calls[0].request.body.decode().split("&"))
    assert form["grant_type"] == "client_credentials" and form["client_id"] == OAUTH_ASSET["client_id"]
    assert [p.headers["Authorization"] for p in pushes] == [
        "Bearer oauth-token-abc123", "Bearer oauth-token-abc123", "Bearer " + TOKEN]
    assert json.loads(pushes[0].body) == json.loads(pushes[2].body)


@responses.activate
def test_oauth_token_refetched_once_when_rejected():
    responses.post(TOKEN_URL, json={"access_token": "old-token-1", "expires_in": 900})
    responses.post(TOKEN_URL, json={"access_token": "new-token-2", "expires_in": 900})
    responses.post(PUSH, status=401, json={"message": "Authentication failed"})
    responses.post(PUSH, json=OK_BODY)
    (result,) = push(asset=OAUTH_ASSET)
    assert result["ok"]
    auths = [c.request.headers.get("Authorization") for c in responses.calls if c.request.url == PUSH]
    assert auths == ["Bearer old-token-1", "Bearer new-token-2"]
    assert len({c.request.headers["X-Line-Retry-Key"] for c in responses.calls if c.request.url == PUSH}) == 1


@responses.activate
def test_oauth_failure_reports_the_token_endpoint_and_hides_the_secret():
    responses.post(TOKEN_URL, status=400, json={"error": "invalid_client", "error_description": "bad secret"})
    with pytest.raises(ActionError) as exc:
        push(asset=OAUTH_ASSET)
    (result,) = exc.value.output
    assert result["status_code"] == 400 and result["json_body"]["error"] == "invalid_client"
    assert "OAuth token request" in result["note"]
    assert not any(c.request.url == PUSH for c in responses.calls)
    assert OAUTH_ASSET["client_secret"] not in json.dumps(exc.value.output) + str(exc.value)


@responses.activate
def test_oauth_token_expiry_is_honoured(monkeypatch):
    from line_connector.actions.line import auth

    clock = [1000.0]
    # tokens live in the state store, shared between processes: expiry is on the wall clock
    monkeypatch.setattr(auth.ClientCredentials, "clock", staticmethod(lambda: clock[0]))
    responses.post(TOKEN_URL, json={"access_token": "t-first-1", "expires_in": 900})
    responses.post(TOKEN_URL, json={"access_token": "t-second-2", "expires_in": 900})
    responses.post(PUSH, json=OK_BODY)
    push(asset=OAUTH_ASSET)
    clock[0] += 845  # within the last 60 s of the 900 s lifetime: refresh early
    push(asset=OAUTH_ASSET)
    auths = [c.request.headers.get("Authorization") for c in responses.calls if c.request.url == PUSH]
    assert auths == ["Bearer t-first-1", "Bearer t-second-2"]


def test_asset_selection_says_which_fields_are_missing():
    with pytest.raises(InputError) as exc:
        run_action("line_send_push", {"url": LINE}, {"to": USER, "messages": TEXT})
    paths = {d["path"]: d["message"] for d in exc.value.details}
    assert "is required (for asset line_channel_access_token)" == paths["asset.token"]
    assert "for asset line_oauth2_client_credentials" in paths["asset.client_secret"]
    with pytest.raises(InputError) as exc:
        run_action("line_send_push", {"token": TOKEN, "verify_ssl": "yes"}, {"to": USER, "messages": TEXT})
    assert any(d["path"] == "asset.verify_ssl" for d in exc.value.details)
    assert TOKEN not in str(exc.value)


@responses.activate
def test_bot_info():
    info = {"userId": "Ub1", "basicId": "@bot", "displayName": "Bot", "chatMode": "bot", "markAsReadMode": "auto"}
    responses.get(LINE + "/v2/bot/info", json=info)
    (result,) = run_action("line_get_bot_info", TOKEN_ASSET, {})
    assert result["json_body"] == info and "retry_key" not in result
    assert "X-Line-Retry-Key" not in responses.calls[0].request.headers
    with pytest.raises(InputError):
        run_action("line_get_bot_info", TOKEN_ASSET, {"unexpected": 1})
