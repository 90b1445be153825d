"""End to end: every LINE action from the CLI against the sandbox, success
and failure, and the no-duplicate guarantee under a timeout."""
import json
import uuid

import pytest

from helpers import TEXT, USER
from line_connector import ActionError, run_action
from line_connector.manifest import manifest
from line_connector.sandbox import FaultPlan, Sandbox

def _bearer(spec):
    """Whether the action sends the asset's Bearer token: the channel access
    token endpoints (SPEC 14) authenticate with their form instead, and are
    tested end to end in test_channel_tokens."""
    from line_connector.actions.line.tokens import TokenAction

    return not issubclass(spec.load_class(), TokenAction)


LINE_ACTIONS = [a for a in manifest().actions.values()
                if a.name.startswith("line_") and a.name != "line_parse_webhook" and _bearer(a)]


@pytest.mark.parametrize("spec", LINE_ACTIONS, ids=[a.name for a in LINE_ACTIONS])
def test_every_line_action_runs_from_the_cli(cli, line_sandbox, spec):
    inputs = dict(spec.example)
    if spec.name == "line_get_narrowcast_progress":
        (sent,) = run_action("line_send_narrowcast", {}, {"messages": TEXT}, sandbox=line_sandbox)
        inputs["requestId"] = sent["request_id"]
    asset = line_sandbox.demo_assets()["line_channel_access_token"]
    code, out, err = cli("run", spec.name, stdin={"asset": asset, "inputs": inputs})
    assert code == 0, err
    results = json.loads(out)
    assert results and all(r["ok"] and r["status_code"] in (200, 202) for r in results)

    bad = dict(asset, token="revoked-token-123")
    if "save_to" in inputs:  # the first run made that file; never overwritten unless asked
        inputs["save_to"] = "refused-" + inputs["save_to"]
    code, out, err = cli("run", spec.name, stdin={"asset": bad, "inputs": inputs})
    assert code == 1
    (refused,) = json.loads(out)[:1]
    assert refused["status_code"] == 401 and refused["json_body"]["message"].startswith("Authentication failed")
    assert "revoked-token-123" not in out + err


def test_resend_after_a_timeout_is_delivered_once():
    # the first request is processed but answered after the client gave up
    with Sandbox(faults=FaultPlan(script=["slow"], slow_seconds=1.5)) as sb:
        (result,) = run_action("line_send_push", {}, {"to": USER, "messages": TEXT}, sandbox=sb,
                               timeout=(2.0, 0.5))
        assert result["ok"] and result["attempts"] == 2
        assert result["status_code"] == 409 and "already accepted" in result["note"]
        assert sb.line.per_recipient[USER] == 1
        assert sb.line.per_retry_key[result["retry_key"]] == 1


def test_resend_after_a_dropped_connection_is_delivered_once():
    with Sandbox(faults=FaultPlan(script=["reset_after"])) as sb:
        (result,) = run_action("line_send_push", {}, {"to": USER, "messages": TEXT}, sandbox=sb)
        assert result["ok"] and result["attempts"] == 2 and sb.line.per_recipient[USER] == 1


def test_rerunning_a_call_with_the_same_key_is_not_a_second_delivery(cli, line_sandbox):
    key = str(uuid.uuid4())
    asset = line_sandbox.demo_assets()["line_channel_access_token"]
    payload = {"asset": asset, "inputs": {"to": USER, "messages": TEXT, "retry_key": key}}
    assert cli("run", "line_send_push", stdin=payload)[0] == 0
    code, out, _ = cli("run", "line_send_push", stdin=payload)
    assert code == 0 and json.loads(out)[0]["accepted_request_id"]
    assert line_sandbox.line.per_recipient[USER] == 1


def test_a_reply_whose_outcome_is_unknown_is_reported_unknown_not_resent():
    with Sandbox(faults=FaultPlan(script=["slow"], slow_seconds=1.5)) as sb:
        with pytest.raises(ActionError) as exc:
            run_action("line_send_reply", {}, {"replyToken": "rt-1", "messages": TEXT}, sandbox=sb,
                       timeout=(2.0, 0.5))
        (result,) = exc.value.output
        assert result["status_code"] == 0 and result["delivery"] == "unknown" and result["attempts"] == 1
        assert "outcome unknown" in result["note"]
        assert len(sb.line.deliveries) == 1  # it did arrive: the pack did not claim otherwise, nor resend


def test_multicast_1234_makes_three_requests_in_the_sandbox(line_sandbox):
    users = ["U%032x" % i for i in range(1234)]
    out = run_action("line_send_multicast", {}, {"to": users, "messages": TEXT}, sandbox=line_sandbox)
    assert [len(r["recipients"]) for r in out] == [500, 500, 234]
    assert [len(d["to"]) for d in line_sandbox.line.deliveries] == [500, 500, 234]
    assert all(line_sandbox.line.per_recipient[u] == 1 for u in users)


def test_quota_consumption_and_daily_counts_follow_the_sends(line_sandbox):
    # LINE counts a day's sends about a day later, in UTC+9: today's count is
    # "unready", yesterday's "ready" (NumberOfMessagesResponse, messaging-api.yml)
    import datetime

    kst = datetime.timezone(datetime.timedelta(hours=9))
    now = datetime.datetime(2026, 3, 10, 23, 59, tzinfo=kst)  # one minute before the day changes in UTC+9
    line_sandbox.line.clock = lambda: now.timestamp()
    run = lambda name, inputs: run_action(name, {}, inputs, sandbox=line_sandbox)[0]["json_body"]
    run("line_send_push", {"to": USER, "messages": TEXT * 2})
    run("line_send_multicast", {"to": ["U%032x" % i for i in range(3)], "messages": TEXT})
    run("line_send_reply", {"replyToken": "rt-9", "messages": TEXT})
    assert run("line_get_consumption", {}) == {"totalUsage": 5}  # replies are free
    assert run("line_get_quota", {})["type"] == "limited"
    assert run("line_get_sent_push_count", {"date": "20260310"}) == {"status": "unready"}
    assert run("line_get_sent_push_count", {"date": "20260311"}) == {"status": "unready"}  # future
    line_sandbox.line.clock = lambda: (now + datetime.timedelta(minutes=2)).timestamp()
    assert run("line_get_sent_push_count", {"date": "20260310"}) == {"status": "ready", "success": 2}
    assert run("line_get_sent_multicast_count", {"date": "20260310"})["success"] == 3
    assert run("line_get_sent_reply_count", {"date": "20260310"})["success"] == 1
    assert run("line_get_sent_push_count", {"date": "20260309"}) == {"status": "ready", "success": 0}
    assert run("line_get_sent_push_count", {"date": "20180330"}) == {"status": "out_of_service"}


def test_todays_delivery_count_is_unready_in_utc_plus_9(line_sandbox):
    import datetime

    today = datetime.datetime.now(datetime.timezone(datetime.timedelta(hours=9))).strftime("%Y%m%d")
    run_action("line_send_push", {}, {"to": USER, "messages": TEXT}, sandbox=line_sandbox)
    (out,) = run_action("line_get_sent_push_count", {}, {"date": today}, sandbox=line_sandbox)
    assert out["json_body"] == {"status": "unready"}


def test_narrowcast_progress_moves_from_waiting_to_succeeded(line_sandbox):
    (sent,) = run_action("line_send_narrowcast", {}, {"messages": TEXT, "limit": {"max": 40}}, sandbox=line_sandbox)
    assert sent["status_code"] == 202
    phases = [run_action("line_get_narrowcast_progress", {}, {"requestId": sent["request_id"]},
                         sandbox=line_sandbox)[0]["json_body"] for _ in range(3)]
    assert [p["phase"] for p in phases] == ["waiting", "sending", "succeeded"]
    assert phases[-1]["successCount"] == phases[-1]["targetCount"] == 40


def test_a_used_reply_token_is_refused_with_lines_text(line_sandbox):
    # LINE: 400 {"message": "Invalid reply token"} (reference, "Error messages")
    inputs = {"replyToken": "rt-once", "messages": TEXT}
    run_action("line_send_reply", {}, inputs, sandbox=line_sandbox)
    with pytest.raises(ActionError) as exc:
        run_action("line_send_reply", {}, inputs, sandbox=line_sandbox)
    (refused,) = exc.value.output
    assert refused["status_code"] == 400 and refused["json_body"] == {"message": "Invalid reply token"}
    assert refused["response_headers"].get("X-Line-Request-Id") or refused["response_headers"].get("x-line-request-id")
    assert len(line_sandbox.line.deliveries) == 1


# ---------------------------------------------------------------------------
# The sandbox over plain HTTP, as any client (curl, the official SDK) sees it.
# LINE's behaviour cited from developers.line.biz/en/reference/messaging-api/
# ("Error responses", "Send push message", "Retry a failed API request",
# "Get quote tokens", "Get number of sent push messages").

import requests  # noqa: E402

import message_corpus  # noqa: E402
from line_connector.sandbox import DEMO_NARROWCAST_ID  # noqa: E402


@pytest.fixture(scope="module")
def http_sandbox():
    with Sandbox() as sb:
        yield sb


def _post(sb, path, body, token=None, **headers):
    token = sb.credentials["token"] if token is None else token
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return requests.post(sb.url + path, data=data, timeout=10,
                         headers=dict({"Authorization": "Bearer " + token, "Content-Type": "application/json"},
                                      **headers))


def _get(sb, path, token=None, **params):
    token = sb.credentials["token"] if token is None else token
    return requests.get(sb.url + path, params=params, timeout=10, headers={"Authorization": "Bearer " + token})


def corpus_cases():
    """H1's labelled corpus (CASES) when it exists, else the VALID/INVALID_* dicts."""
    cases = getattr(message_corpus, "CASES", None)
    if cases:
        return [(c["id"], c["messages"] if isinstance(c["messages"], list) else [c["messages"]], c["valid"])
                for c in cases]
    return ([(k, [v], True) for k, v in message_corpus.VALID.items()]
            + [(k, [v], False) for k, v in message_corpus.INVALID_BOTH.items()]
            + [(k, [v], False) for k, v in message_corpus.INVALID_OURS.items()])


CORPUS = corpus_cases()


def assert_lines_400(response, property_prefix="messages"):
    """LINE's 400: {"message": "The request body has N error(s)", "details": [{"message", "property"}]}."""
    assert response.status_code == 400, response.text
    body = response.json()
    details = body["details"]
    assert body["message"] == "The request body has %d error(s)" % len(details)
    assert details and all(set(d) == {"message", "property"} and d["message"] for d in details)
    assert all(d["property"].startswith(property_prefix) for d in details), details
    assert response.headers.get("X-Line-Request-Id")
    return details


@pytest.mark.parametrize("case_id,messages,valid", CORPUS, ids=[c[0] for c in CORPUS])
def test_every_corpus_case_sent_straight_to_the_sandbox_gets_lines_verdict(http_sandbox, case_id, messages, valid):
    before = len(http_sandbox.line.deliveries)
    push = _post(http_sandbox, "/v2/bot/message/push", {"to": USER, "messages": messages})
    check = _post(http_sandbox, "/v2/bot/message/validate/push", {"messages": messages})
    if valid:
        assert push.status_code == 200, push.text
        assert len(push.json()["sentMessages"]) == len(messages)
        assert check.status_code == 200 and check.json() == {}, check.text
    else:
        assert_lines_400(push)
        assert_lines_400(check)
        assert len(http_sandbox.line.deliveries) == before  # nothing half-sent


def test_an_invalid_body_names_the_field_in_lines_notation(http_sandbox):
    body = {"to": USER, "messages": [{"type": "text", "text": "ok"}, {"type": "text"}]}
    details = assert_lines_400(_post(http_sandbox, "/v2/bot/message/push", body))
    assert [d["property"] for d in details] == ["messages[1].text"]
    details = assert_lines_400(_post(http_sandbox, "/v2/bot/message/push", {"to": "bob", "messages": TEXT}), "to")
    assert [d["property"] for d in details] == ["to"]


@pytest.mark.parametrize("kind", ["push", "reply", "multicast", "broadcast", "narrowcast"])
def test_every_send_and_validate_endpoint_checks_the_messages(http_sandbox, kind):
    recipients = {"push": {"to": USER}, "reply": {"replyToken": "rt-%s" % kind}, "multicast": {"to": [USER]},
                  "broadcast": {}, "narrowcast": {}}[kind]
    bad = [{"type": "image", "originalContentUrl": "http://example.com/a.jpg"}]  # http, no preview
    details = assert_lines_400(_post(http_sandbox, "/v2/bot/message/" + kind, dict(recipients, messages=bad)))
    assert {d["property"] for d in details} >= {"messages[0].originalContentUrl", "messages[0].previewImageUrl"}
    assert_lines_400(_post(http_sandbox, "/v2/bot/message/validate/" + kind, {"messages": bad}))
    assert_lines_400(_post(http_sandbox, "/v2/bot/message/validate/" + kind, {"messages": TEXT * 6}))


def test_line_only_request_rules(http_sandbox):
    # multicast: "Max: 500 user IDs" (the pack chunks; LINE itself refuses 501)
    users = ["U%032x" % i for i in range(501)]
    details = assert_lines_400(_post(http_sandbox, "/v2/bot/message/multicast", {"to": users, "messages": TEXT}), "to")
    assert any("500" in d["message"] for d in details)
    assert _post(http_sandbox, "/v2/bot/message/multicast", {"to": users[:500], "messages": TEXT}).status_code == 200
    # the pack's own input fields are not LINE request fields
    details = assert_lines_400(_post(http_sandbox, "/v2/bot/message/push",
                                     {"to": USER, "messages": TEXT, "retry_key": str(uuid.uuid4())}), "retry_key")
    assert details[0]["property"] == "retry_key"
    bad_json = _post(http_sandbox, "/v2/bot/message/push", b'{"to": ')
    assert bad_json.status_code == 400
    assert bad_json.json()["message"].startswith("The request body could not be parsed as JSON (line: 1, column:")


def test_a_repeated_retry_key_is_409_with_the_accepted_request_and_its_sent_messages(http_sandbox):
    key = str(uuid.uuid4())
    body = {"to": USER, "messages": [{"type": "text", "text": "once"}, {"type": "sticker", "packageId": "446",
                                                                          "stickerId": "1988"}]}
    first = _post(http_sandbox, "/v2/bot/message/push", body, **{"X-Line-Retry-Key": key})
    again = _post(http_sandbox, "/v2/bot/message/push", body, **{"X-Line-Retry-Key": key})
    assert first.status_code == 200 and again.status_code == 409
    assert again.headers["x-line-accepted-request-id"] == first.headers["X-Line-Request-Id"]
    assert again.headers["X-Line-Request-Id"] != first.headers["X-Line-Request-Id"]
    assert again.json() == {"message": "The retry key is already accepted", "sentMessages": first.json()["sentMessages"]}
    assert http_sandbox.line.per_retry_key[key] == 1
    # multicast/broadcast/narrowcast answer {} on success, so their 409 carries no sentMessages
    key = str(uuid.uuid4())
    assert _post(http_sandbox, "/v2/bot/message/broadcast", {"messages": TEXT}, **{"X-Line-Retry-Key": key}).ok
    repeat = _post(http_sandbox, "/v2/bot/message/broadcast", {"messages": TEXT}, **{"X-Line-Retry-Key": key})
    assert repeat.status_code == 409 and repeat.json() == {"message": "The retry key is already accepted"}


QUOTABLE_CASES = {k: v for k, v in message_corpus.VALID.items()}


def test_quote_tokens_only_for_the_message_types_that_have_one(http_sandbox):
    # "Get quote tokens": text, textV2, sticker, image, video, template and flex
    # messages get a quoteToken in sentMessages; audio, location, imagemap, coupon do not
    quotable = {"text", "textV2", "sticker", "image", "video", "template", "flex"}
    seen = set()
    for name, message in QUOTABLE_CASES.items():
        response = _post(http_sandbox, "/v2/bot/message/push", {"to": USER, "messages": [message]})
        assert response.status_code == 200, (name, response.text)
        (sent,) = response.json()["sentMessages"]
        assert sent["id"].isdigit()
        assert ("quoteToken" in sent) == (message["type"] in quotable), name
        seen.add(message["type"])
    assert seen >= quotable | {"audio", "location", "imagemap"}
    reply = _post(http_sandbox, "/v2/bot/message/reply",
                  {"replyToken": "rt-quote", "messages": [message_corpus.VALID["audio"], message_corpus.VALID["text"]]})
    assert ["quoteToken" in s for s in reply.json()["sentMessages"]] == [False, True]


def test_every_response_carries_a_request_id_even_401_and_404(http_sandbox):
    refused = _post(http_sandbox, "/v2/bot/message/push", {"to": USER, "messages": TEXT}, token="wrong-token")
    assert refused.status_code == 401 and refused.headers.get("X-Line-Request-Id")
    assert refused.json()["message"].startswith("Authentication failed")
    missing = _get(http_sandbox, "/v2/bot/message/progress/narrowcast", requestId=str(uuid.uuid4()))
    assert missing.status_code == 404 and missing.headers.get("X-Line-Request-Id")
    nowhere = _get(http_sandbox, "/v2/bot/no/such/endpoint")
    assert nowhere.status_code == 404 and nowhere.headers.get("X-Line-Request-Id")
    unauth_get = _get(http_sandbox, "/v2/bot/info", token="")
    assert unauth_get.status_code == 401 and unauth_get.headers.get("X-Line-Request-Id")
    ids = {refused.headers["X-Line-Request-Id"], missing.headers["X-Line-Request-Id"],
           nowhere.headers["X-Line-Request-Id"], unauth_get.headers["X-Line-Request-Id"]}
    assert len(ids) == 4  # one per request


def test_narrowcast_times_stay_put_once_it_succeeded(http_sandbox):
    sent = _post(http_sandbox, "/v2/bot/message/narrowcast", {"messages": TEXT, "limit": {"max": 7}})
    assert sent.status_code == 202
    request_id = sent.headers["X-Line-Request-Id"]
    polls = [_get(http_sandbox, "/v2/bot/message/progress/narrowcast", requestId=request_id).json()
             for _ in range(3)]
    assert [p["phase"] for p in polls] == ["waiting", "sending", "succeeded"]
    import time as _time
    _time.sleep(0.01)
    later = [_get(http_sandbox, "/v2/bot/message/progress/narrowcast", requestId=request_id).json()
             for _ in range(2)]
    assert later == [polls[-1], polls[-1]] and polls[-1]["targetCount"] == 7
    assert len({p["acceptedTime"] for p in polls + later}) == 1


def test_a_fresh_sandbox_knows_the_demo_narrowcast():
    assert DEMO_NARROWCAST_ID == "d5a3c1e2-0000-4000-8000-000000000001"
    with Sandbox() as sb:
        (out,) = run_action("line_get_narrowcast_progress", {}, {"requestId": DEMO_NARROWCAST_ID}, sandbox=sb)
        again = _get(sb, "/v2/bot/message/progress/narrowcast", requestId=DEMO_NARROWCAST_ID).json()
    assert out["ok"] and out["json_body"]["phase"] == "succeeded" and again == out["json_body"]
    assert out["json_body"]["successCount"] == out["json_body"]["targetCount"] > 0


@pytest.mark.parametrize("depth", [300, 3000])
def test_a_hostile_nesting_depth_is_lines_400_not_a_crash(http_sandbox, depth):
    inner = '{"type":"text","text":"x"}'
    for _ in range(depth):
        inner = '{"type":"box","layout":"vertical","contents":[%s]}' % inner
    body = '{"to":"%s","messages":[{"type":"flex","altText":"a","contents":{"type":"bubble","body":%s}}]}' % (
        USER, inner)
    before = len(http_sandbox.line.deliveries)
    response = _post(http_sandbox, "/v2/bot/message/push", body)
    assert response.status_code == 400 and response.headers.get("X-Line-Request-Id")
    assert "message" in response.json()
    assert len(http_sandbox.line.deliveries) == before
    assert _post(http_sandbox, "/v2/bot/message/push", {"to": USER, "messages": TEXT}).status_code == 200


@pytest.mark.parametrize("body,where", [
    ('{"to":"%s","messages":[{"type":"text","text":"a\\ud800b"}]}' % USER, "messages[0].text"),
    ('{"to":"%s","messages":[{"type":"text","text":"%s"}]}' % (USER, "\\udfff" * 3000), "messages[0].text"),
    ('{"to":"%s","messages":[{"type":"text","text":"x","\\udc00":1}]}' % USER, "messages[0].\\udc00"),
    ('{"to":"%s","messages":[{"type":"template","altText":"a","template":{"type":"buttons","text":"t",'
     '"actions":[{"type":"message","label":"%s","text":"x"}]}}]}' % (USER, "\\ud83d" * 30),
     "messages[0].template.actions[0].label"),
])
def test_a_lone_surrogate_in_the_json_text_is_lines_400_never_a_500(http_sandbox, body, where):
    """JSON text may escape half of a UTF-16 pair ("\\ud800"); Python reads it into a str that strict
    UTF-16/UTF-8 cannot encode. Each of these once answered 500 (UnicodeEncodeError in the length check)."""
    before = len(http_sandbox.line.deliveries)
    for path in ("/v2/bot/message/push", "/v2/bot/message/validate/push"):
        response = _post(http_sandbox, path, body.encode("ascii"))
        assert response.status_code == 400, response.text
        details = response.json()["details"]
        assert response.json()["message"] == "The request body has 1 error(s)"
        assert [d["property"] for d in details] == [where]
    assert len(http_sandbox.line.deliveries) == before
    # a well-formed escaped pair is one character, and fine
    ok = '{"to":"%s","messages":[{"type":"text","text":"\\ud83d\\ude00"}]}' % USER
    assert _post(http_sandbox, "/v2/bot/message/push", ok.encode("ascii")).status_code == 200
