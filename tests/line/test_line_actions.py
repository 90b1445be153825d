"""Every LINE action against ``responses`` mocks: the request it makes, its
retry-key rules, and how it reports success and failure."""
import json
import uuid

import pytest
import responses

from helpers import LINE, TEXT, TOKEN_ASSET, USER
from line_connector import ActionError, InputError, run_action
from line_connector.http import HttpClient

MSGS = TEXT
KEYED = {"line_send_push", "line_send_multicast", "line_send_broadcast", "line_send_narrowcast"}
REQUESTS = [
    # action, inputs, method, path, expected body or query
    ("line_send_reply", {"replyToken": "rt-1", "messages": MSGS}, "POST", "/v2/bot/message/reply",
     {"replyToken": "rt-1", "messages": MSGS}),
    ("line_send_broadcast", {"messages": MSGS, "notificationDisabled": True}, "POST", "/v2/bot/message/broadcast",
     {"messages": MSGS, "notificationDisabled": True}),
    ("line_send_narrowcast", {"messages": MSGS, "limit": {"max": 10}}, "POST", "/v2/bot/message/narrowcast",
     {"messages": MSGS, "limit": {"max": 10}}),
    ("line_send_multicast", {"to": [USER], "messages": MSGS}, "POST", "/v2/bot/message/multicast",
     {"to": [USER], "messages": MSGS}),
    ("line_get_quota", {}, "GET", "/v2/bot/message/quota", None),
    ("line_get_consumption", {}, "GET", "/v2/bot/message/quota/consumption", None),
    ("line_get_narrowcast_progress", {"requestId": "7d51557c-8b9f"}, "GET", "/v2/bot/message/progress/narrowcast",
     {"requestId": "7d51557c-8b9f"}),
    ("line_display_loading_animation", {"chatId": USER, "loadingSeconds": 30}, "POST", "/v2/bot/chat/loading/start",
     {"chatId": USER, "loadingSeconds": 30}),
] + [("line_validate_" + k, {"messages": MSGS}, "POST", "/v2/bot/message/validate/" + k, {"messages": MSGS})
     for k in ("push", "reply", "multicast", "narrowcast", "broadcast")] \
  + [("line_get_sent_%s_count" % k, {"date": "20261122"}, "GET", "/v2/bot/message/delivery/" + k,
      {"date": "20261122"}) for k in ("push", "reply", "multicast", "broadcast")]


def run(name, inputs, **kw):
    return run_action(name, TOKEN_ASSET, inputs, client=HttpClient(sleep=lambda s: None), **kw)


@pytest.mark.parametrize("name,inputs,method,path,expected", REQUESTS, ids=[r[0] for r in REQUESTS])
@responses.activate
def test_request_shape_and_retry_key_rules(name, inputs, method, path, expected):
    status = 202 if name in ("line_send_narrowcast", "line_display_loading_animation") else 200
    responses.add(method, LINE + path, json={}, status=status, headers={"X-Line-Request-Id": "rid-1"})
    (result,) = run(name, inputs)
    assert result["ok"] and result["status_code"] == status and result["request_id"] == "rid-1"
    sent = responses.calls[0].request
    if method == "GET":
        from urllib.parse import parse_qsl, urlsplit
        assert dict(parse_qsl(urlsplit(sent.url).query)) == (expected or {})
        assert sent.body is None
    else:
        assert json.loads(sent.body) == expected
    assert ("X-Line-Retry-Key" in sent.headers) == (name in KEYED)
    assert ("retry_key" in result) == (name in KEYED)


@responses.activate
def test_reply_is_never_resent_after_it_may_have_arrived():
    responses.post(LINE + "/v2/bot/message/reply", status=500, json={"message": "Internal error"})
    with pytest.raises(ActionError) as exc:
        run("line_send_reply", {"replyToken": "rt", "messages": MSGS})
    assert len(responses.calls) == 1 and exc.value.output[0]["attempts"] == 1


@responses.activate
def test_validation_is_safe_to_retry():
    responses.post(LINE + "/v2/bot/message/validate/push", status=503, json={})
    responses.post(LINE + "/v2/bot/message/validate/push", json={})
    (result,) = run("line_validate_push", {"messages": MSGS})
    assert result["ok"] and result["attempts"] == 2
    assert all("X-Line-Retry-Key" not in c.request.headers for c in responses.calls)


@responses.activate
def test_narrowcast_result_carries_the_request_id_for_progress():
    responses.post(LINE + "/v2/bot/message/narrowcast", status=202, body="{}",
                   headers={"X-Line-Request-Id": "5b59509c-c57b-11e9-aa8c-2a2ae2dbcce4"})
    (result,) = run("line_send_narrowcast", {"messages": MSGS, "recipient": {"type": "audience", "audienceGroupId": 1}})
    assert result["status_code"] == 202 and result["request_id"] == "5b59509c-c57b-11e9-aa8c-2a2ae2dbcce4"


def ids(n, start=0):
    return ["U%032x" % i for i in range(start, start + n)]


@responses.activate
def test_multicast_chunks_1234_into_500_500_234_with_own_keys():
    responses.post(LINE + "/v2/bot/message/multicast", json={})
    out = run("line_send_multicast", {"to": ids(1234), "messages": MSGS})
    assert [len(r["recipients"]) for r in out] == [500, 500, 234]
    assert [r["chunk"] for r in out] == [1, 2, 3] and {r["chunks"] for r in out} == {3}
    bodies = [json.loads(c.request.body) for c in responses.calls]
    assert [b["to"] for b in bodies] == [r["recipients"] for r in out]
    assert [u for b in bodies for u in b["to"]] == ids(1234)
    keys = [c.request.headers["X-Line-Retry-Key"] for c in responses.calls]
    assert len(set(keys)) == 3 and keys == [r["retry_key"] for r in out]


@responses.activate
def test_multicast_drops_duplicates_and_sorts_the_ids():
    """Chunks hold the IDs sorted (SPEC 7): chunk keys come from chunk content,
    so the same set of IDs in any order must make the same chunks."""
    responses.post(LINE + "/v2/bot/message/multicast", json={})
    a, b, c = ids(3)
    (result,) = run("line_send_multicast", {"to": [b, a, b, c, a], "messages": MSGS})
    assert result["recipients"] == [a, b, c]
    assert json.loads(responses.calls[0].request.body)["to"] == [a, b, c]


@responses.activate
def test_multicast_failed_chunk_does_not_hide_the_others():
    url = LINE + "/v2/bot/message/multicast"
    responses.post(url, json={})
    responses.post(url, status=400, json={"message": "The property, to[3], in the request body is invalid"})
    responses.post(url, json={})
    with pytest.raises(ActionError) as exc:
        run("line_send_multicast", {"to": ids(1100), "messages": MSGS})
    out = exc.value.output
    assert [r["ok"] for r in out] == [True, False, True]
    assert out[1]["recipients"] == ids(500, 500) and out[1]["json_body"]["message"].startswith("The property")
    assert "1 of 3 request(s) failed" in exc.value.message


@responses.activate
def test_multicast_with_a_caller_key_derives_the_same_chunk_keys_every_time():
    responses.post(LINE + "/v2/bot/message/multicast", json={})
    key = str(uuid.uuid4())
    first = [r["retry_key"] for r in run("line_send_multicast", {"to": ids(1001), "messages": MSGS, "retry_key": key})]
    again = [r["retry_key"] for r in run("line_send_multicast", {"to": ids(1001), "messages": MSGS, "retry_key": key})]
    # SPEC 7: every chunk's key, the first included, is derived from the caller's key and its content
    assert first == again and key not in first and len(set(first)) == 3
    assert all(str(uuid.UUID(k)) == k for k in first)


@pytest.mark.parametrize("name,inputs,path", [
    ("line_get_sent_push_count", {"date": "2026-11-22"}, "inputs.date"),
    ("line_get_sent_reply_count", {"date": "20260230"}, "inputs.date"),
    ("line_get_sent_multicast_count", {"date": "20261322"}, "inputs.date"),
    ("line_get_sent_broadcast_count", {}, "inputs.date"),
    ("line_display_loading_animation", {"chatId": USER, "loadingSeconds": 7}, "inputs.loadingSeconds"),
    ("line_display_loading_animation", {"chatId": USER, "loadingSeconds": 65}, "inputs.loadingSeconds"),
    ("line_display_loading_animation", {"chatId": "C" + "0" * 32}, "inputs.chatId"),
    ("line_send_reply", {"replyToken": "rt", "messages": MSGS, "retry_key": str(uuid.uuid4())}, "inputs.retry_key"),
    ("line_validate_push", {"messages": MSGS, "retry_key": str(uuid.uuid4())}, "inputs.retry_key"),
    ("line_send_multicast", {"to": [], "messages": MSGS}, "inputs.to"),
    ("line_send_multicast", {"to": ["C" + "0" * 32], "messages": MSGS}, "inputs.to[0]"),
    ("line_send_narrowcast", {"messages": MSGS, "limit": {"max": 0}}, "inputs.limit.max"),
    ("line_send_narrowcast", {"messages": MSGS, "recipient": {"type": "audience"}}, "inputs.recipient.audienceGroupId"),
    ("line_send_narrowcast", {"messages": MSGS, "filter": {"demographic": {"type": "age", "gte": "age_99"}}},
     "inputs.filter.demographic.gte"),
    ("line_get_narrowcast_progress", {}, "inputs.requestId"),
])
@responses.activate
def test_bad_inputs_exit_before_sending(name, inputs, path):
    with pytest.raises(InputError) as exc:
        run(name, inputs)
    assert path in [d["path"] for d in exc.value.details], exc.value.details
    assert len(responses.calls) == 0


def test_impossible_date_message_is_clear():
    with pytest.raises(InputError) as exc:
        run("line_get_sent_push_count", {"date": "20260230"})
    assert exc.value.details == [{"path": "inputs.date",
                                  "message": "must be a real calendar date written yyyyMMdd (e.g. 20191231)"}]


@responses.activate
def test_oversized_multicast_is_refused_before_any_chunk_is_sent():
    big = [{"type": "text", "text": "x" * 5000}] * 5
    flex = [{"type": "flex", "altText": "a", "contents": {"type": "bubble", "body": {
        "type": "box", "layout": "vertical", "contents": [{"type": "text", "text": "y" * 450000}]}}}] * 5
    with pytest.raises(InputError) as exc:
        run("line_send_multicast", {"to": ids(1200), "messages": flex})
    assert "2 MB" in exc.value.details[0]["message"] and len(responses.calls) == 0
    responses.post(LINE + "/v2/bot/message/multicast", json={})
    assert len(run("line_send_multicast", {"to": ids(600), "messages": big})) == 2


@pytest.mark.parametrize("workers", [1, 4])
@responses.activate
def test_concurrent_chunks_keep_their_order_and_their_keys(workers):
    import threading
    seen, lock = [], threading.Lock()

    def reply(request):
        with lock:
            seen.append(json.loads(request.body)["to"][0])
        return 200, {"X-Line-Request-Id": json.loads(request.body)["to"][0]}, "{}"

    responses.add_callback(responses.POST, LINE + "/v2/bot/message/multicast", callback=reply)
    key = str(uuid.uuid4())
    progress = []
    out = run_action("line_send_multicast", TOKEN_ASSET,
                     {"to": ids(5000), "messages": MSGS, "retry_key": key, "max_workers": workers},
                     client=HttpClient(sleep=lambda s: None), progress=lambda d, t: progress.append((d, t)))
    assert [r["chunk"] for r in out] == list(range(1, 11))
    assert [r["request_id"] for r in out] == [r["recipients"][0] for r in out]  # each result is its own chunk's
    serial = [r["retry_key"] for r in run("line_send_multicast", {"to": ids(5000), "messages": MSGS, "retry_key": key})]
    assert [r["retry_key"] for r in out] == serial
    assert progress[-1] == (10, 10) and len(progress) == 10
