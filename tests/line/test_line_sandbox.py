"""End to end: every LINE action from the CLI against the sandbox, success
and failure, and the no-duplicate guarantee under a timeout."""
import json
import uuid

import pytest

from helpers import TEXT, USER
from line_connector import ActionError, run_action
from line_connector.manifest import manifest
from line_connector.sandbox import FaultPlan, Sandbox

LINE_ACTIONS = [a for a in manifest().actions.values() if a.name.startswith("line_") and a.name != "line_parse_webhook"]


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
    import datetime

    today = datetime.datetime.now(datetime.timezone(datetime.timedelta(hours=9))).strftime("%Y%m%d")
    run = lambda name, inputs: run_action(name, {}, inputs, sandbox=line_sandbox)[0]["json_body"]
    run("line_send_push", {"to": USER, "messages": TEXT * 2})
    run("line_send_multicast", {"to": ["U%032x" % i for i in range(3)], "messages": TEXT})
    run("line_send_reply", {"replyToken": "rt-9", "messages": TEXT})
    assert run("line_get_consumption", {}) == {"totalUsage": 5}  # replies are free
    assert run("line_get_quota", {})["type"] == "limited"
    assert run("line_get_sent_push_count", {"date": today}) == {"status": "ready", "success": 2}
    assert run("line_get_sent_multicast_count", {"date": today})["success"] == 3
    assert run("line_get_sent_reply_count", {"date": today})["success"] == 1


def test_narrowcast_progress_moves_from_waiting_to_succeeded(line_sandbox):
    (sent,) = run_action("line_send_narrowcast", {}, {"messages": TEXT, "limit": {"max": 40}}, sandbox=line_sandbox)
    assert sent["status_code"] == 202
    phases = [run_action("line_get_narrowcast_progress", {}, {"requestId": sent["request_id"]},
                         sandbox=line_sandbox)[0]["json_body"] for _ in range(3)]
    assert [p["phase"] for p in phases] == ["waiting", "sending", "succeeded"]
    assert phases[-1]["successCount"] == phases[-1]["targetCount"] == 40


def test_a_used_reply_token_is_refused(line_sandbox):
    inputs = {"replyToken": "rt-once", "messages": TEXT}
    run_action("line_send_reply", {}, inputs, sandbox=line_sandbox)
    with pytest.raises(ActionError) as exc:
        run_action("line_send_reply", {}, inputs, sandbox=line_sandbox)
    assert exc.value.output[0]["json_body"]["details"][0]["message"] == "Invalid reply token"
