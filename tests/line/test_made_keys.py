"""Pushes without a caller's ``retry_key`` (issue 22): the pack makes the key
(``Store.made_key``) and records the content sent under it in the store's
journal of made keys instead of a file per key. SPEC 7's promises hold
unchanged. LINE remembers an accepted ``X-Line-Retry-Key`` for 24 h and
answers any later request with it 409 + ``x-line-accepted-request-id``,
delivering nothing (https://developers.line.biz/en/docs/messaging-api/retrying-api-request/);
the sandbox does the same and counts what each recipient received."""
import json
import os

import pytest

from helpers import TEXT, run_cli
from line_connector import ActionError, InputError, run_action, state
from line_connector.filecache import cache_dir
from line_connector.sandbox import Sandbox

USER = "U%032x" % 7
OTHER = [{"type": "text", "text": "a different message"}]


@pytest.fixture
def sb():
    with Sandbox() as sandbox:
        yield sandbox


def asset(sandbox):
    return sandbox.demo_assets()["line_channel_access_token"]


def key_dir():
    return os.path.join(cache_dir(), "state", "line-retry-key")


def test_a_push_without_a_key_records_it_in_the_journal_not_a_file_per_key(sb):
    keys = [run_action("line_send_push", asset(sb), {"to": USER, "messages": TEXT})[0]["retry_key"]
            for _ in range(3)]
    names = os.listdir(key_dir())
    assert not [n for n in names if n.endswith((".json", ".lock"))]
    assert [n for n in names if n.endswith(".jnl")] == ["made-%s.jnl" % keys[0].replace("-", "")[:16]]
    assert sb.line.per_recipient[USER] == 3 and all(sb.line.per_retry_key[k] == 1 for k in keys)


def test_a_resend_with_the_made_key_after_a_crash_never_delivers_twice(sb):
    """The first run's answer was lost (the process died after LINE accepted):
    the caller resends with the key the result carried, from a new process."""
    (first,) = run_action("line_send_push", asset(sb), {"to": USER, "messages": TEXT})
    state.forget()  # nothing of the first run's process survives but its files
    code, out, err = run_cli("run", "line_send_push", stdin={"asset": asset(sb), "inputs": {
        "to": USER, "messages": TEXT, "retry_key": first["retry_key"]}})
    assert code == 0, (out, err)
    (again,) = json.loads(out)
    assert again["status_code"] == 409 and again["ok"] and "already accepted" in again["note"]
    assert "delivery" not in again
    assert sb.line.per_recipient[USER] == 1 and sb.line.per_retry_key[first["retry_key"]] == 1


def test_a_made_key_resent_with_other_content_is_refused_before_sending(sb):
    (first,) = run_action("line_send_push", asset(sb), {"to": USER, "messages": TEXT})
    state.forget()
    before = sb.requests
    with pytest.raises(InputError) as exc:
        run_action("line_send_push", asset(sb), {"to": USER, "messages": OTHER, "retry_key": first["retry_key"]})
    (detail,) = exc.value.details
    assert detail["path"] == "inputs.retry_key" and "deliver nothing" in detail["message"]
    assert sb.requests == before and sb.line.per_recipient[USER] == 1


def test_a_lost_journal_only_makes_the_answer_more_careful(sb):
    (first,) = run_action("line_send_push", asset(sb), {"to": USER, "messages": TEXT})
    for name in os.listdir(key_dir()):
        os.unlink(os.path.join(key_dir(), name))
    state.forget()
    with pytest.raises(ActionError) as exc:
        run_action("line_send_push", asset(sb), {"to": USER, "messages": TEXT, "retry_key": first["retry_key"]})
    (result,) = exc.value.output
    assert result["status_code"] == 409 and result["ok"] is False and result["delivery"] == "unknown"
    assert sb.line.per_recipient[USER] == 1


def test_a_refused_push_releases_its_made_key_record(sb):
    """A definite 4xx: LINE did not accept the key, so its record is dropped
    (the journal's null line), as a caller key's file is deleted."""
    bad = dict(asset(sb), token="not-the-token")
    with pytest.raises(ActionError) as exc:
        run_action("line_send_push", bad, {"to": USER, "messages": TEXT})
    (result,) = exc.value.output
    key = result["retry_key"]
    store = state.store()
    scope = [n for n in os.listdir(key_dir()) if n.endswith(".jnl")]
    assert scope  # the record was written before sending, then dropped
    with open(os.path.join(key_dir(), scope[0]), "rb") as fh:
        lines = [json.loads(line) for line in fh.read().split(b"\n") if line]
    assert [line["value"] for line in lines] == [lines[0]["value"], None]
    assert all(store.get_made("line-retry-key", key, k) is None for k in ("", key))
