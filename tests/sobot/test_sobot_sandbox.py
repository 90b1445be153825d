"""Sobot end to end against the sandbox, which rotates tokens like Sobot:
every get_token issues a new token and the previous one stops working."""
import json

import pytest

from line_connector import ActionError, run_action


def test_two_cli_processes_in_a_row_share_one_token(cli, line_sandbox):
    asset = line_sandbox.demo_assets()["sobot"]
    for _ in range(2):
        code, out, err = cli("run", "sobot_query_task_list", stdin={"asset": asset, "inputs": {"page_size": 5}})
        assert code == 0, err
        assert len(json.loads(out)[0]["json_body"]["items"]) == 5
    assert line_sandbox.sobot.token_requests == 1
    code, out, err = cli("run", "sobot_get_token", stdin={"asset": asset, "inputs": {}})
    assert code == 0 and json.loads(out)["cached"] is True and json.loads(out)["token"] == "***"
    assert line_sandbox.sobot.token_requests == 1


def test_a_token_invalidated_elsewhere_is_refetched_once(line_sandbox):
    run_action("sobot_query_task_list", {}, {}, sandbox=line_sandbox)
    line_sandbox.sobot.token = "issued-to-someone-else"  # what another get_token would do
    (result,) = run_action("sobot_query_task_list", {}, {}, sandbox=line_sandbox)
    assert result["ok"] and line_sandbox.sobot.token_requests == 2


def test_a_token_that_keeps_failing_is_not_refetched_in_a_loop(line_sandbox):
    line_sandbox.sobot.reject_all_tokens = True
    with pytest.raises(ActionError) as exc:
        run_action("sobot_query_send_records", {}, {}, sandbox=line_sandbox)
    assert exc.value.output[0]["vendor_code"] == "900002"
    assert line_sandbox.sobot.token_requests == 2


def test_an_expired_token_is_replaced_before_use(line_sandbox, monkeypatch):
    from line_connector.actions.sobot.token import SobotToken
    import time

    run_action("sobot_get_token", {}, {}, sandbox=line_sandbox)
    monkeypatch.setattr(SobotToken, "clock", staticmethod(lambda: time.time() + 86400))
    out = run_action("sobot_get_token", {}, {}, sandbox=line_sandbox)
    assert out["cached"] is False and line_sandbox.sobot.token_requests == 2


def test_paging_filters_and_all_pages(line_sandbox):
    out = run_action("sobot_query_send_records", {}, {"message_status": "9", "page_size": 5, "all_pages": True},
                     sandbox=line_sandbox)
    items = out[-1]["all_items"]
    assert len(items) == 12 and len(out) == 3
    assert len({i["messageid"] for i in items}) == 12 and all(i["error_code"] == "999999" for i in items)
    import requests  # the sandbox's own check, bypassing the pack's validation
    token = run_action("sobot_get_token", {}, {"reveal_token": True}, sandbox=line_sandbox)["token"]
    answer = requests.post(line_sandbox.url + "/chat-set/api/line/query_task_list", json={"page_size": 101},
                           headers={"token": token}, timeout=5).json()
    assert answer["ret_code"] == "999994"


def test_media_content_and_wrong_app_key(cli, line_sandbox):
    (result,) = run_action("sobot_get_media_content", {}, {"messageid": "42"}, sandbox=line_sandbox)
    assert result["media_url"].endswith("/42.png")
    bad = dict(line_sandbox.demo_assets()["sobot"], app_key="not-the-app-key")
    code, out, err = cli("run", "sobot_get_media_content", stdin={"asset": bad, "inputs": {"messageid": "42"}})
    assert code == 1 and "get_token failed" in json.loads(out)[0]["note"]
    assert "not-the-app-key" not in out + err


@pytest.mark.parametrize("action", ["sobot_get_token", "sobot_get_media_content", "sobot_query_task_list",
                                    "sobot_query_send_records"])
def test_every_sobot_action_runs_from_the_cli(cli, action):
    from line_connector.manifest import manifest

    code, out, err = cli("run", action, "--sandbox", stdin={"inputs": manifest().action(action).example})
    assert code == 0, err
