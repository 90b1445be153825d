"""Retry keys are bound to content (SPEC 7, issue 12 item 5).

LINE remembers an accepted ``X-Line-Retry-Key`` for 24 h and answers any later
request with that key 409 + ``x-line-accepted-request-id``, delivering nothing,
whatever the request carries; only accepted requests are remembered:
https://developers.line.biz/en/docs/messaging-api/retrying-api-request/
("Once the request is accepted, subsequent retried requests are blocked and
you'll get the status code 409"). The sandbox behaves the same way, and counts
what every recipient actually received (``per_recipient``), so these tests
check deliveries, not just what the pack reports.
"""
import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import threading
import uuid

import pytest

from helpers import TEXT, TOKEN_ASSET, run_cli
from line_connector import ActionError, InputError, run_action, state
from line_connector.actions.line.send import KEY_NAMESPACE, chunk_key
from line_connector.http import HttpClient
from line_connector.sandbox import Sandbox
from line_connector.sandbox.server import FaultPlan

OTHER = [{"type": "text", "text": "a different message"}]


def users(n, start=0):
    return ["U%032x" % i for i in range(start, start + n)]


@pytest.fixture
def sb():
    with Sandbox() as sandbox:
        yield sandbox


def multicast(sandbox, to, key, messages=TEXT):
    return run_action("line_send_multicast", {}, {"to": to, "messages": messages, "retry_key": key},
                      sandbox=sandbox)


def test_resending_a_failed_chunk_with_the_same_key_delivers_it():
    """The issue's scenario: 600 users with K, chunk 2 (100 users) gets a 429;
    resending those 100 with K must deliver them, never say "already accepted"."""
    key = str(uuid.uuid4())
    everyone = users(600)
    with Sandbox(faults=FaultPlan(script=[None, "429"])) as sandbox:
        with pytest.raises(ActionError) as exc:
            multicast(sandbox, everyone, key)
        first, second = exc.value.output
        assert first["ok"] and first["recipients"] == everyone[:500]
        assert second["status_code"] == 429 and second["recipients"] == everyone[500:]
        assert all(sandbox.line.per_recipient[u] == 1 for u in everyone[:500])
        assert all(sandbox.line.per_recipient[u] == 0 for u in everyone[500:])

        (again,) = multicast(sandbox, second["recipients"], key)
        assert again["ok"] and again["status_code"] == 200
        assert "already accepted" not in (again.get("note") or "") and "accepted_request_id" not in again
        assert all(sandbox.line.per_recipient[u] == 1 for u in everyone)  # the 100 delivered, once
        assert again["retry_key"] == second["retry_key"]  # the same content derives the same key


def test_the_same_call_twice_is_already_accepted_and_delivers_nothing_twice(sb):
    key = str(uuid.uuid4())
    everyone = users(600)
    first = multicast(sb, everyone, key)
    again = multicast(sb, everyone, key)
    assert [r["retry_key"] for r in first] == [r["retry_key"] for r in again]
    assert all(r["status_code"] == 409 and r["ok"] and "already accepted" in r["note"] for r in again)
    assert all(sb.line.per_recipient[u] == 1 for u in everyone)
    assert all(count == 1 for count in sb.line.per_retry_key.values())


def test_a_subset_or_a_changed_message_gets_new_keys_and_is_delivered(sb):
    key = str(uuid.uuid4())
    everyone = users(600)
    first = multicast(sb, everyone, key)
    (subset,) = multicast(sb, everyone[:100], key)             # 100 of chunk 1: other content
    assert subset["status_code"] == 200 and subset["retry_key"] not in [r["retry_key"] for r in first]
    assert all(sb.line.per_recipient[u] == 2 for u in everyone[:100])
    changed = multicast(sb, everyone, key, messages=OTHER)     # same recipients, other message
    assert [r["status_code"] for r in changed] == [200, 200]
    assert all(sb.line.per_recipient[u] == 3 for u in everyone[:100])
    assert all(sb.line.per_recipient[u] == 2 for u in everyone[100:])


def test_chunk_keys_depend_on_the_caller_key_and_the_body_content():
    base, other = str(uuid.uuid4()), str(uuid.uuid4())
    assert chunk_key(base, b'{"to":["a"]}') == chunk_key(base, b'{"to":["a"]}')
    assert chunk_key(base, b'{"to":["a"]}') != chunk_key(base, b'{"to":["b"]}')
    assert chunk_key(base, b'{"to":["a"]}') != chunk_key(other, b'{"to":["a"]}')
    # the same content with its keys written in another order is the same chunk
    assert chunk_key(base, b'{"to":["a"],"m":{"type":"text","text":"A"}}') \
        == chunk_key(base, b'{"m":{"text":"A","type":"text"},"to":["a"]}')
    assert chunk_key(None, b"{}") != chunk_key(None, b"{}")  # no caller key: fresh every time
    assert all(str(uuid.UUID(chunk_key(base, b))) == chunk_key(base, b) for b in (b"", b"{}"))


def test_single_sends_carry_the_callers_key_as_is(sb):
    key = str(uuid.uuid4())
    (out,) = run_action("line_send_push", {}, {"to": users(1)[0], "messages": TEXT, "retry_key": key}, sandbox=sb)
    assert out["retry_key"] == key and sb.line.deliveries[-1]["retry_key"] == key
    key2 = str(uuid.uuid4())
    (out,) = run_action("line_send_broadcast", {}, {"messages": TEXT, "retry_key": key2}, sandbox=sb)
    assert out["retry_key"] == key2 and sb.line.deliveries[-1]["retry_key"] == key2


def test_same_key_different_message_is_refused_before_sending(sb):
    key = str(uuid.uuid4())
    user = users(1)[0]
    run_action("line_send_push", {}, {"to": user, "messages": TEXT, "retry_key": key}, sandbox=sb)
    before = sb.requests
    for inputs in ({"to": user, "messages": OTHER, "retry_key": key},
                   {"to": users(1, 7)[0], "messages": TEXT, "retry_key": key}):
        with pytest.raises(InputError) as exc:
            run_action("line_send_push", {}, inputs, sandbox=sb)
        (detail,) = exc.value.details
        assert detail["path"] == "inputs.retry_key" and "409" in detail["message"]
        assert "deliver nothing" in detail["message"]
    assert sb.requests == before and sb.line.per_recipient[user] == 1
    # the very same push again is allowed and answered "already accepted" by LINE
    (again,) = run_action("line_send_push", {}, {"to": user, "messages": TEXT, "retry_key": key}, sandbox=sb)
    assert again["status_code"] == 409 and sb.line.per_recipient[user] == 1


def test_the_refusal_holds_across_processes_with_exit_2(sb, tmp_path):
    """Two CLI processes sharing the user's state store (not --sandbox)."""
    asset = sb.demo_assets()["line_channel_access_token"]
    key = str(uuid.uuid4())
    user = users(1)[0]
    code, out, err = run_cli("run", "line_send_push", stdin={"asset": asset, "inputs": {
        "to": user, "messages": TEXT, "retry_key": key}})
    assert code == 0, err
    code, out, err = run_cli("run", "line_send_push", stdin={"asset": asset, "inputs": {
        "to": user, "messages": OTHER, "retry_key": key}})
    assert code == 2, (out, err)
    error = json.loads(out or err)
    assert [d["path"] for d in error["details"]] == ["inputs.retry_key"]
    assert "Traceback" not in err and sb.line.per_recipient[user] == 1


def test_a_definite_refusal_frees_the_key_for_corrected_content():
    """LINE keeps only accepted keys: after a 429 (not accepted) the same key
    may carry other content, and it is delivered."""
    key = str(uuid.uuid4())
    user = users(1)[0]
    with Sandbox(faults=FaultPlan(script=["429"])) as sandbox:
        with pytest.raises(ActionError):
            run_action("line_send_push", {}, {"to": user, "messages": TEXT, "retry_key": key}, sandbox=sandbox)
        (out,) = run_action("line_send_push", {}, {"to": user, "messages": OTHER, "retry_key": key},
                            sandbox=sandbox)
        assert out["status_code"] == 200 and sandbox.line.per_recipient[user] == 1


def test_an_uncertain_outcome_keeps_the_key_bound():
    """A 500 may have been processed: the key stays bound to what was sent."""
    key = str(uuid.uuid4())
    user = users(1)[0]
    with Sandbox(faults=FaultPlan(script=["500", "500", "500", "500", "500", "500"])) as sandbox:
        with pytest.raises(ActionError) as exc:
            run_action("line_send_push", {}, {"to": user, "messages": TEXT, "retry_key": key}, sandbox=sandbox)
        assert exc.value.output[0]["delivery"] == "unknown"
        with pytest.raises(InputError):
            run_action("line_send_push", {}, {"to": user, "messages": OTHER, "retry_key": key}, sandbox=sandbox)


def test_dry_runs_record_nothing(sb):
    key = str(uuid.uuid4())
    user = users(1)[0]
    run_action("line_send_push", {}, {"to": user, "messages": OTHER, "retry_key": key}, sandbox=sb, dry_run=True)
    run_action("line_send_multicast", {}, {"to": users(3), "messages": OTHER, "retry_key": key}, sandbox=sb,
               dry_run=True)
    (out,) = run_action("line_send_push", {}, {"to": user, "messages": TEXT, "retry_key": key}, sandbox=sb)
    assert out["status_code"] == 200


def test_keys_are_remembered_per_channel():
    """Another channel (another token) may use the same key for other content."""
    key = str(uuid.uuid4())
    user = users(1)[0]
    with Sandbox() as one, Sandbox(credentials={"token": "tok-other-channel-0001"}) as two:
        run_action("line_send_push", {}, {"to": user, "messages": TEXT, "retry_key": key}, sandbox=one)
        (out,) = run_action("line_send_push", {}, {"to": user, "messages": OTHER, "retry_key": key}, sandbox=two)
        assert out["status_code"] == 200


def test_concurrent_conflicting_sends_deliver_one_and_refuse_the_other(sb):
    key = str(uuid.uuid4())
    user = users(1)[0]
    outcomes = []

    def send(messages):
        try:
            run_action("line_send_push", {}, {"to": user, "messages": messages, "retry_key": key}, sandbox=sb)
            outcomes.append("sent")
        except InputError:
            outcomes.append("refused")
        except ActionError as exc:
            outcomes.append("wrong: %r" % (exc.output,))

    threads = [threading.Thread(target=send, args=(m,)) for m in (TEXT, OTHER) * 4]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sb.line.per_recipient[user] == 1
    assert "refused" in outcomes and "sent" in outcomes and len(outcomes) == 8
    # a same-content send whose twin reached LINE first gets LINE's 409: that is
    # this very content's acceptance (never "unknown", which would invite a new key)
    assert set(outcomes) <= {"sent", "refused"}, outcomes


def test_a_409_caused_by_a_concurrent_same_content_send_is_this_contents_acceptance(sb):
    """Call A records the key first; call B (same store, same content) joins
    the record, reaches LINE first and is delivered; A's request then gets 409.
    A must report it accepted: B marked the record "joined" before sending."""
    from line_connector.actions.line.send import SendPush, content_hash
    from line_connector.redaction import Redactor

    key = str(uuid.uuid4())
    user = users(1)[0]
    inputs = {"to": user, "messages": TEXT, "retry_key": key}
    asset = dict(sb.demo_assets()["line_channel_access_token"])
    call_a = SendPush(asset, "line_channel_access_token", None, Redactor())
    private = state.private(sb)
    try:
        call_a.key_store = private.store
        (request,) = call_a.build(inputs)
        call_a.remember(request)  # A makes the record ...
        run_action("line_send_push", {}, inputs, sandbox=sb)  # ... B joins it and is delivered first
        record = private.store.get(KEY_NAMESPACE, call_a.key_scope() + "\n" + key)
        assert record == {"sha256": content_hash(request.body), "joined": True}
        result = {"status_code": 409, "reason": "Conflict", "json_body": {"message": "accepted"},
                  "response_headers": {"x-line-accepted-request-id": "r-1"}, "attempts": 1}
        assert call_a.judge(request, result) is True and "already accepted" in result["note"]
    finally:
        private.close()
    assert sb.line.per_recipient[user] == 1


def test_a_damaged_key_record_is_replaced_not_trusted(sb):
    from line_connector.actions.line.send import SendPush

    key = str(uuid.uuid4())
    user = users(1)[0]
    scope = SendPush(sb.demo_assets()["line_channel_access_token"], "line_channel_access_token", None, None)
    private = state.private(sb)  # the sandbox's own state directory, as run_action(sandbox=sb) uses it
    try:
        private.store.put(KEY_NAMESPACE, scope.key_scope() + "\n" + key, ["not", "a", "record"], 60)
    finally:
        private.close()
    (out,) = run_action("line_send_push", {}, {"to": user, "messages": TEXT, "retry_key": key}, sandbox=sb)
    assert out["status_code"] == 200 and sb.line.per_recipient[user] == 1


# ---------------------------------------------- a 409 is not proof of this content
def push_cli(sandbox, key, messages):
    asset = sandbox.demo_assets()["line_channel_access_token"]
    return run_cli("run", "line_send_push", stdin={"asset": asset, "inputs": {
        "to": users(1)[0], "messages": messages, "retry_key": key}})


def test_a_409_for_content_the_pack_has_no_record_of_is_not_reported_delivered(sb):
    """The key's record is lost (state directory deleted; the same holds on
    another machine, a degraded store or a rotated token): LINE answers the
    second push 409 though it carried other content, and delivers nothing."""
    key = str(uuid.uuid4())
    user = users(1)[0]
    code, out, err = push_cli(sb, key, [{"type": "text", "text": "A"}])
    assert code == 0, err
    shutil.rmtree(os.environ["LINE_CONNECTOR_CACHE_DIR"])
    for _ in range(2):  # and again: the failed attempt leaves no record that would make it "known"
        code, out, err = push_cli(sb, key, [{"type": "text", "text": "B"}])
        assert code == 1, (out, err)
        (result,) = json.loads(out)
        assert result["status_code"] == 409 and result["ok"] is False and result["delivery"] == "unknown"
        assert not result["note"].startswith("already accepted") and "nothing was sent twice" not in result["note"]
        assert "no record that it carried this content" in result["note"]
        assert "use a new retry_key" in result["note"]
    # LINE delivered only the first push ("A"), once
    assert [d["retry_key"] for d in sb.line.deliveries if user in d["to"]] == [key]
    assert sb.line.per_recipient[user] == 1 and sb.line.per_retry_key[key] == 1
    code, out, err = push_cli(sb, str(uuid.uuid4()), [{"type": "text", "text": "B"}])  # the advised fix
    assert code == 0 and sb.line.per_recipient[user] == 2


def test_a_409_answering_a_retry_within_the_call_is_success():
    """The first attempt is processed, its answer lost (dropped connection):
    the retry's 409 is this very request's acceptance."""
    key = str(uuid.uuid4())
    user = users(1)[0]
    with Sandbox(faults=FaultPlan(script=["reset_after"])) as sandbox:
        (out,) = run_action("line_send_push", {}, {"to": user, "messages": TEXT, "retry_key": key},
                            sandbox=sandbox)
        assert out["ok"] and out["status_code"] == 409 and out["attempts"] == 2
        assert "already accepted" in out["note"] and "delivery" not in out
        assert sandbox.line.per_recipient[user] == 1


def test_a_first_attempt_409_with_no_record_is_unknown_but_a_known_one_is_success():
    import responses

    url = TOKEN_ASSET.get("url", "https://api.line.me") + "/v2/bot/message/push"
    key = str(uuid.uuid4())
    inputs = {"to": users(1)[0], "messages": TEXT, "retry_key": key}
    with responses.RequestsMock() as mock:
        mock.post(url, status=409, json={"message": "The retry key is already accepted"},
                  headers={"x-line-accepted-request-id": "abc-123"})
        with pytest.raises(ActionError) as exc:
            run_action("line_send_push", TOKEN_ASSET, inputs, client=HttpClient(sleep=lambda s: None))
        (result,) = exc.value.output
        assert result["delivery"] == "unknown" and result["accepted_request_id"] == "abc-123"
        assert len(mock.calls) == 1  # a 409 is never retried
    with responses.RequestsMock() as mock:  # the pack's own earlier send of this content, then the resend
        mock.post(url, json={"sentMessages": []})
        other = dict(inputs, retry_key=str(uuid.uuid4()))
        run_action("line_send_push", TOKEN_ASSET, other, client=HttpClient(sleep=lambda s: None))
        mock.replace(responses.POST, url, status=409, json={"message": "The retry key is already accepted"},
                     headers={"x-line-accepted-request-id": "abc-124"})
        (again,) = run_action("line_send_push", TOKEN_ASSET, other, client=HttpClient(sleep=lambda s: None))
        assert again["ok"] and "already accepted" in again["note"] and "delivery" not in again


# ------------------------------------------- the same content in another order
def test_a_multicast_resent_with_the_recipients_reordered_delivers_nothing_twice(sb):
    key = str(uuid.uuid4())
    a, b = users(2)
    multicast(sb, [a, b], key)
    again = multicast(sb, [b, a], key)
    assert [r["status_code"] for r in again] == [409] and again[0]["ok"]
    assert sb.line.per_recipient[a] == 1 and sb.line.per_recipient[b] == 1
    # across chunks too: 1200 IDs reversed and with repeats make the same chunks and keys
    key = str(uuid.uuid4())
    everyone = users(1200, 100)
    first = multicast(sb, everyone, key)
    shuffled = everyone[::-1] + everyone[:7]
    again = multicast(sb, shuffled, key)
    assert [r["retry_key"] for r in again] == [r["retry_key"] for r in first]
    assert [r["recipients"] for r in again] == [r["recipients"] for r in first]
    assert all(r["status_code"] == 409 and r["ok"] for r in again)
    assert all(sb.line.per_recipient[u] == 1 for u in everyone)


def test_message_keys_in_another_order_are_the_same_content(sb):
    key = str(uuid.uuid4())
    a, b = users(2, 50)
    multicast(sb, [a, b], key, messages=[{"type": "text", "text": "A"}])
    (again,) = multicast(sb, [a, b], key, messages=[{"text": "A", "type": "text"}])
    assert again["status_code"] == 409 and again["ok"]
    assert sb.line.per_recipient[a] == 1 and sb.line.per_recipient[b] == 1

    key, user = str(uuid.uuid4()), users(1, 60)[0]
    run_action("line_send_push", {}, {"to": user, "messages": [{"type": "text", "text": "A"}], "retry_key": key},
               sandbox=sb)
    (push,) = run_action("line_send_push", {}, {"retry_key": key, "messages": [{"text": "A", "type": "text"}],
                                                "to": user}, sandbox=sb)  # not refused as "different"
    assert push["status_code"] == 409 and push["ok"] and sb.line.per_recipient[user] == 1


# ------------------------------------------------------ a never-sent request
def closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed on return: connections to it are refused


def test_a_push_that_was_never_sent_leaves_its_key_free():
    key = str(uuid.uuid4())
    asset = dict(TOKEN_ASSET, url="http://127.0.0.1:%d" % closed_port())
    for messages in (TEXT, OTHER):  # other content under the same key: not refused, LINE never saw it
        with pytest.raises(ActionError) as exc:
            run_action("line_send_push", asset, {"to": users(1)[0], "messages": messages, "retry_key": key},
                       client=HttpClient(sleep=lambda s: None))
        assert exc.value.output[0]["delivery"] == "not sent"


# ------------------------------------------------ every directory made is 0700
@pytest.mark.skipif(not hasattr(os, "umask") or sys.platform == "win32", reason="POSIX modes")
def test_the_cache_directories_are_private_under_umask_000(sb, tmp_path):
    root = tmp_path / "fresh" / "cache"
    env = dict(os.environ, LINE_CONNECTOR_CACHE_DIR=str(root), PYTHONIOENCODING="utf-8")
    asset = sb.demo_assets()["line_channel_access_token"]
    proc = subprocess.run([sys.executable, "-m", "line_connector.cli", "run", "line_send_push"],
                          input=json.dumps({"asset": asset, "inputs": {
                              "to": users(1)[0], "messages": TEXT, "retry_key": str(uuid.uuid4())}}),
                          capture_output=True, text=True, timeout=60, env=env,
                          preexec_fn=lambda: os.umask(0))
    assert proc.returncode == 0, proc.stderr
    made = [root.parent] + [p for p in root.parent.rglob("*") if p.is_dir()]
    assert any(p.name == "checked" for p in made) and any(p.name == "state" for p in made)
    modes = {str(p): oct(stat.S_IMODE(p.stat().st_mode)) for p in made}
    assert set(modes.values()) == {"0o700"}, modes


def test_a_stuck_key_lock_never_crashes_and_never_claims_already_used(sb, monkeypatch):
    """The key's record lock held by a stopped process (``get``, ``put``,
    ``delete`` raise LockTimeout past TABLE_PATIENCE): a definite 4xx's
    release says the record was kept (never a traceback), an accepted 409
    is not taken as ours, and a "joined" mark that cannot be written is
    skipped (the send goes on)."""
    from line_connector.actions.line.send import SendPush
    from line_connector.redaction import Redactor

    key = str(uuid.uuid4())
    inputs = {"to": users(1)[0], "messages": TEXT, "retry_key": key}
    asset = dict(sb.demo_assets()["line_channel_access_token"])
    call = SendPush(asset, "line_channel_access_token", None, Redactor())
    private = state.private(sb)
    try:
        store = call.key_store = private.store
        (request,) = call.build(inputs)
        call.remember(request)

        def stuck(*args, **kwargs):
            raise state.LockTimeout(KEY_NAMESPACE, 0.25)

        for name in ("get", "put", "delete"):
            monkeypatch.setattr(store, name, stuck)
        result = {"status_code": 400, "reason": "Bad Request", "json_body": {"message": "bad"},
                  "response_headers": {}, "attempts": 1}
        assert call.judge(request, result) is False
        assert "could not be released" in result["note"] and "new retry_key" in result["note"]
        assert call.accepted_is_ours(request, {"status_code": 409, "attempts": 1}) is False
        other = SendPush(asset, "line_channel_access_token", None, Redactor())
        other.key_store = store
        (again,) = other.build(inputs)
        assert other.remember(again) is again  # same content joins; the mark is skipped
    finally:
        private.close()
