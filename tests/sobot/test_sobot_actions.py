"""Sobot actions against ``responses``: signing, the shared token, queries,
paging and ret_code handling."""
import json
import os
import stat
from urllib.parse import parse_qsl, urlsplit

import pytest
import responses

from line_connector import ActionError, InputError, run_action
from line_connector.actions.sobot.token import sign
from line_connector.filecache import cache_dir
from line_connector.http import HttpClient

BASE = "https://sg.sobot.com"
ASSET = {"appid": "app-1", "app_key": "sb-Canary-Secret-77"}
TOKEN_URL = BASE + "/api/get_token"
TASKS_URL = BASE + "/chat-set/api/line/query_task_list"
RECORDS_URL = BASE + "/chat-set/api/line/send_record_list"
MEDIA_URL = BASE + "/chat-line/api/line/get_media_content"


def token_reply(token):
    return {"item": {"token": token, "expires_in": "86400"}, "ret_code": "000000", "ret_msg": "操作成功"}


def page(items, page_no, page_count):
    return {"items": items, "page_no": page_no, "page_size": len(items), "page_count": page_count,
            "total_count": 99, "ret_code": "000000", "ret_msg": "操作成功"}


def run(name, inputs):
    return run_action(name, ASSET, inputs, client=HttpClient(sleep=lambda s: None))


def test_published_sign_vector():
    assert sign("1", "1569397773", "2") == "258eec3118705112b2c53dc8043d4d34"


@responses.activate
def test_get_token_request_and_masking():
    responses.get(TOKEN_URL, json=token_reply("tok-4ac37cb2e9c740dba4b7"))
    out = run("sobot_get_token", {})
    query = dict(parse_qsl(urlsplit(responses.calls[0].request.url).query))
    assert query["appid"] == "app-1" and len(query["create_time"]) == 10 and query["create_time"].isdigit()
    assert query["sign"] == sign("app-1", query["create_time"], ASSET["app_key"])
    assert out["token"] == "***" and out["cached"] is False and out["expires_in"] > 86000
    text = json.dumps(out)
    assert "tok-4ac37cb2e9c740dba4b7" not in text and ASSET["app_key"] not in text
    assert out["requests"][0]["json_body"]["item"]["token"] == "***"


@responses.activate
def test_the_token_is_shared_and_only_revealed_on_request():
    responses.get(TOKEN_URL, json=token_reply("tok-first-0001"))
    responses.get(TOKEN_URL, json=token_reply("tok-second-0002"))
    first = run("sobot_get_token", {})
    again = run("sobot_get_token", {"reveal_token": True})
    assert first["cached"] is False and again["cached"] is True and again["requests"] == []
    assert again["token"] == "tok-first-0001"
    forced = run("sobot_get_token", {"force_refresh": True, "reveal_token": True})
    assert forced["token"] == "tok-second-0002" and len(responses.calls) == 2


@responses.activate
def test_cache_file_is_private_atomic_and_never_holds_the_app_key():
    responses.get(TOKEN_URL, json=token_reply("tok-cache-0003"))
    run("sobot_get_token", {})
    path = os.path.join(cache_dir(), "sobot-tokens.json")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(cache_dir()).st_mode) == 0o700
    text = open(path, encoding="utf-8").read()
    assert "tok-cache-0003" in text and ASSET["app_key"] not in text and "app-1" not in text
    assert [f for f in os.listdir(cache_dir()) if f.startswith(".tmp-")] == []


@responses.activate
def test_queries_send_the_token_header_and_the_filters():
    responses.get(TOKEN_URL, json=token_reply("tok-q-0004"))
    responses.post(RECORDS_URL, json=page([{"messageid": "1"}], 1, 1))
    inputs = {"send_start_time": 1714295033250, "send_end_time": 1714295099999, "messageid": "111",
              "message_status": "2", "taskid": "t1", "task_name": "测试", "send_agentid": "a1", "sender": "s1",
              "recipient": "r1", "subjectid": "12345678", "page_no": 2, "page_size": 100}
    (result,) = run("sobot_query_send_records", inputs)
    sent = responses.calls[1].request
    assert sent.headers["token"] == "tok-q-0004" and json.loads(sent.body) == inputs
    assert result["ok"] and result["json_body"]["items"] == [{"messageid": "1"}]


@responses.activate
def test_media_content_gives_the_url_even_from_sobots_loose_example():
    responses.get(TOKEN_URL, json=token_reply("tok-m-0005"))
    responses.get(MEDIA_URL, json={"item": "https://sg.sobot.com/chatres/x/a.png", "ret_code": "000000"})
    (result,) = run("sobot_get_media_content", {"messageid": "1501597916"})
    assert result["media_url"] == "https://sg.sobot.com/chatres/x/a.png"
    query = dict(parse_qsl(urlsplit(responses.calls[1].request.url).query))
    assert query == {"appid": "app-1", "messageid": "1501597916"}
    loose = '{\n  "item": {\n    "https://sg.sobot.com/chatres/c72/017a.png"\n  },\n  "ret_code": "000000"\n}'
    responses.get(MEDIA_URL, body=loose)
    responses.replace(responses.GET, MEDIA_URL, body=loose)
    (result,) = run("sobot_get_media_content", {"messageid": "1501597916"})
    assert result["ok"] and result["media_url"] == "https://sg.sobot.com/chatres/c72/017a.png"
    assert result["json_body"] is None and result["raw_body"] == loose


@responses.activate
def test_parameter_error_is_exit_1_with_the_vendor_message():
    responses.get(TOKEN_URL, json=token_reply("tok-p-0006"))
    responses.post(TASKS_URL, json={"ret_code": "999994", "ret_msg": "参数异常,请检查"})
    with pytest.raises(ActionError) as exc:
        run("sobot_query_task_list", {"task_name": "x"})
    (result,) = exc.value.output
    assert result["vendor_code"] == "999994" and "parameter error" in result["note"] and "参数异常" in result["note"]


@responses.activate
def test_all_pages_merges_items_and_is_bounded():
    responses.get(TOKEN_URL, json=token_reply("tok-a-0007"))
    for n in range(1, 5):
        responses.post(TASKS_URL, json=page([{"taskid": "t%d" % n}], n, 4))
    out = run("sobot_query_task_list", {"all_pages": True})
    assert [json.loads(c.request.body)["page_no"] for c in responses.calls[1:]] == [1, 2, 3, 4]
    assert all("all_pages" not in json.loads(c.request.body) for c in responses.calls[1:])
    assert len(out) == 4 and out[-1]["all_items"] == [{"taskid": "t%d" % n} for n in range(1, 5)]
    assert out[-1]["pages_fetched"] == 4

    responses.reset()
    for n in range(1, 5):
        responses.post(TASKS_URL, json=page([{"taskid": "t%d" % n}], n, 4))
    out = run("sobot_query_task_list", {"all_pages": True, "max_pages": 2})
    assert len(out) == 2 and "stopped after max_pages=2 of 4" in out[-1]["note"]


@responses.activate
def test_rejected_token_is_refetched_once_not_in_a_loop():
    responses.get(TOKEN_URL, json=token_reply("tok-old-0008"))
    responses.get(TOKEN_URL, json=token_reply("tok-new-0009"))
    responses.post(TASKS_URL, json={"ret_code": "900002", "ret_msg": "token 已失效,请重新获取"})
    with pytest.raises(ActionError) as exc:
        run("sobot_query_task_list", {})
    token_calls = [c for c in responses.calls if c.request.url.startswith(TOKEN_URL)]
    task_calls = [c.request.headers["token"] for c in responses.calls if c.request.url == TASKS_URL]
    assert len(token_calls) == 2 and task_calls == ["tok-old-0008", "tok-new-0009"]
    assert exc.value.output[0]["vendor_code"] == "900002"


@responses.activate
def test_failed_token_request_is_reported():
    responses.get(TOKEN_URL, json={"ret_code": "999994", "ret_msg": "参数异常,请检查"})
    with pytest.raises(ActionError) as exc:
        run("sobot_query_task_list", {})
    (result,) = exc.value.output
    assert result["json_body"]["ret_code"] == "999994" and "get_token failed" in result["note"]
    assert not any(c.request.url == TASKS_URL for c in responses.calls)


@pytest.mark.parametrize("action,inputs,path", [
    ("sobot_query_task_list", {"page_size": 101}, "inputs.page_size"),
    ("sobot_query_task_list", {"page_no": 0}, "inputs.page_no"),
    ("sobot_query_task_list", {"task_start_time": 1714295033}, "inputs.task_start_time"),
    ("sobot_query_task_list", {"max_pages": 1000}, "inputs.max_pages"),
    ("sobot_query_send_records", {"message_status": "3"}, "inputs.message_status"),
    ("sobot_query_send_records", {"message_status": 2}, "inputs.message_status"),
    ("sobot_query_send_records", {"recipients": "r"}, "inputs.recipients"),
    ("sobot_get_media_content", {}, "inputs.messageid"),
    ("sobot_get_token", {"reveal_token": "yes"}, "inputs.reveal_token"),
])
@responses.activate
def test_bad_inputs_name_the_field_and_send_nothing(action, inputs, path):
    with pytest.raises(InputError) as exc:
        run(action, inputs)
    assert path in [d["path"] for d in exc.value.details]
    assert len(responses.calls) == 0
