"""NXCloud actions against ``responses``: every message type, every
failure class, retries only where nothing can have been sent."""
import json

import pytest
import requests
import responses
from urllib3.exceptions import NewConnectionError

from line_connector import ActionError, InputError, run_action
from line_connector.actions.nxcloud.signing import sign
from line_connector.http import HttpClient

ASSET = {"access_key": "ak-123", "access_secret": "nx-Canary-Secret-99"}
LINE_URL = "https://api-hk.nxlink.ai/saas/line/send"
VIBER_URL = "https://api-hk.nxlink.ai/saas/viber/send"
SUPER_URL = "https://api.nxcloud.com/v1/message/mt"
OK = {"code": 0, "message": "", "data": {"message_id": "m1"}, "traceId": "t1"}
IMG = "https://example.com/a.jpg"
BASE = {"tenant_id": 123, "appkey": "Exxx"}
LINE_TYPES = {
    "text": dict(BASE, to="U44d64355f3d939f4db74649d82d25123", type=1, content="สวัสดี 你好"),
    "image": dict(BASE, to="U44d", type=3, filename="a.jpg", originalContentUrl=IMG),
    "video": dict(BASE, to="U44d", type=4, filename="a.mp4", originalContentUrl=IMG, previewImageUrl=IMG),
    "voice": dict(BASE, to="U44d", type=5, filename="a.m4a", originalContentUrl=IMG, duration=12000),
}
BUTTON = {"button_text": "Open", "button_link": "https://example.com"}
VIBER_TYPES = {
    "text": dict(BASE, to="8613700000000", type=1, content="Text message"),
    "image": dict(BASE, to="8613700000000", type=3, filename="a.jpg", fileUrl=IMG),
    "text_image": dict(BASE, to="8613700000000", type=10, filename="a.jpg", fileUrl=IMG, content="c"),
    "text_button": dict(BASE, to="8613700000000", type=12, content="c", viber_video_button_info=BUTTON),
    "text_image_button": dict(BASE, to="8613700000000", type=11, content="c", filename="a.jpg", fileUrl=IMG,
                              viber_video_button_info=BUTTON, tag_id=7),
}
CHOICES = [{"textMessage": {"text": "按钮"}, "urlMessage": {"url": "https://example.com"}}]
SUPER_TYPES = {
    "text": {"textMessage": {"text": "Greetings from Super API."}},
    "image": {"mediaMessage": {"image": {"url": IMG}}},
    "video": {"mediaMessage": {"video": {"url": IMG, "thumbnailUrl": IMG, "videoSize": "10", "duration": "10"}}},
    "file": {"mediaMessage": {"file": {"fileName": "文件名称", "url": "https://example.com/x.pdf", "fileType": "pdf"}}},
    "choice": {"choiceMessage": {"textMessage": {"text": "按钮Title"}, "choices": CHOICES}},
    "card": {"cardMessage": {"title": "卡片", "mediaMessage": {"image": {"url": IMG}}, "choices": CHOICES}},
}


def run(name, inputs):
    return run_action(name, ASSET, inputs, client=HttpClient(sleep=lambda s: None))


def assert_signed(request, biz_type):
    h = request.headers
    assert h["accessKey"] == "ak-123" and h["bizType"] == biz_type and h["action"] == "mt"
    assert h["sign"] == sign("ak-123", ASSET["access_secret"], biz_type, "mt", h["ts"], request.body)


@pytest.mark.parametrize("kind", sorted(LINE_TYPES))
@responses.activate
def test_line_types(kind):
    responses.post(LINE_URL, json=OK)
    (result,) = run("nxcloud_send_line", LINE_TYPES[kind])
    assert result["ok"] and result["json_body"] == OK
    sent = responses.calls[0].request
    assert json.loads(sent.body) == LINE_TYPES[kind]
    assert_signed(sent, "7")


@pytest.mark.parametrize("kind", sorted(VIBER_TYPES))
@responses.activate
def test_viber_types(kind):
    responses.post(VIBER_URL, json=OK)
    (result,) = run("nxcloud_send_viber", VIBER_TYPES[kind])
    assert result["ok"]
    assert json.loads(responses.calls[0].request.body) == VIBER_TYPES[kind]
    assert_signed(responses.calls[0].request, "7")


@pytest.mark.parametrize("kind", sorted(SUPER_TYPES))
@responses.activate
def test_super_message_types(kind):
    responses.post(SUPER_URL, json={"code": 0, "message": "Success", "data": {"requestId": "r1"}})
    inputs = {"appkey": "bFzEXXAx", "phones": ["85290000630"], "message": SUPER_TYPES[kind],
              "webhook": "https://example.com/hook", "priority": ["VIBER", "SMS"]}
    (result,) = run("nxcloud_send_super_message", inputs)
    assert result["ok"] and result["recipients"] == ["85290000630"]
    assert json.loads(responses.calls[0].request.body) == inputs
    assert_signed(responses.calls[0].request, "8")


@responses.activate
def test_super_message_4500_phones_make_2000_2000_500_and_drop_duplicates():
    responses.post(SUPER_URL, json={"code": 0, "message": "Success", "data": {}})
    phones = [str(85290000000 + i) for i in range(4500)]
    out = run("nxcloud_send_super_message", {"appkey": "a", "phones": phones + phones[:10],
                                             "message": SUPER_TYPES["text"]})
    assert [len(r["recipients"]) for r in out] == [2000, 2000, 500]
    sent = [json.loads(c.request.body)["phones"] for c in responses.calls]
    assert sent == [r["recipients"] for r in out] and sum(sent, []) == phones


@pytest.mark.parametrize("phones,expected", [
    # in ascending order: nothing to drop, found without the set
    (["85290000001", "85290000002", "85290000003"], ["85290000001", "85290000002", "85290000003"]),
    # ascending but for one repeat (not strictly): the repeat is dropped
    (["85290000001", "85290000002", "85290000002", "85290000003"], ["85290000001", "85290000002", "85290000003"]),
    # ascending but for a repeat far from its first occurrence
    (["85290000001", "85290000002", "85290000003", "85290000001"], ["85290000001", "85290000002", "85290000003"]),
    # descending and unordered: first occurrences, in the caller's order
    (["85290000003", "85290000002", "85290000001", "85290000002"], ["85290000003", "85290000002", "85290000001"]),
    # numerically ascending is not ascending as text: nothing dropped, order kept
    (["8529000009", "85290000010", "85290000011"], ["8529000009", "85290000010", "85290000011"]),
])
@responses.activate
def test_super_message_duplicates_dropped_in_any_order(phones, expected):
    responses.post(SUPER_URL, json={"code": 0, "message": "Success", "data": {}})
    (result,) = run("nxcloud_send_super_message", {"appkey": "a", "phones": phones, "message": SUPER_TYPES["text"]})
    assert result["recipients"] == expected
    assert json.loads(responses.calls[0].request.body)["phones"] == expected


@pytest.mark.parametrize("code,words", [
    (1003, "signature does not match"), (1001, "authentication failed"), (9000, "request parameter error"),
    (9010, "rate limit"), (1102, "insufficient balance"), (14001, "channel is not opened"),
    (-1, "failure"), (9999, "unknown error"),
])
@responses.activate
def test_vendor_codes_are_failures_that_keep_the_body(code, words):
    body = {"code": code, "message": "vendor says no", "traceId": "t"}
    responses.post(LINE_URL, json=body)
    with pytest.raises(ActionError) as exc:
        run("nxcloud_send_line", LINE_TYPES["text"])
    (result,) = exc.value.output
    assert result["status_code"] == 200 and result["json_body"] == body and result["ok"] is False
    assert result["vendor_code"] == code and words in result["note"]
    assert len(responses.calls) == 1


@responses.activate
def test_http_500_is_not_retried():
    responses.post(LINE_URL, status=500, body="<html>oops</html>")
    with pytest.raises(ActionError) as exc:
        run("nxcloud_send_line", LINE_TYPES["text"])
    (result,) = exc.value.output
    assert result["raw_body"] == "<html>oops</html>" and len(responses.calls) == 1


@responses.activate
def test_connection_refused_is_retried_but_a_timeout_is_not():
    refused = requests.exceptions.ConnectionError(NewConnectionError(None, "Connection refused"))
    responses.post(LINE_URL, body=refused)
    responses.post(LINE_URL, json=OK)
    (result,) = run("nxcloud_send_line", LINE_TYPES["text"])
    assert result["ok"] and result["attempts"] == 2

    responses.reset()
    responses.post(LINE_URL, body=requests.exceptions.ReadTimeout("read timed out"))
    with pytest.raises(ActionError) as exc:
        run("nxcloud_send_line", LINE_TYPES["text"])
    (result,) = exc.value.output
    assert result["attempts"] == 1 and result["delivery"] == "unknown" and "outcome unknown" in result["note"]


@pytest.mark.parametrize("action,inputs,path", [
    ("nxcloud_send_line", dict(LINE_TYPES["text"], content=None), "inputs.content"),
    ("nxcloud_send_line", {k: v for k, v in LINE_TYPES["text"].items() if k != "content"}, "inputs.content"),
    ("nxcloud_send_line", {k: v for k, v in LINE_TYPES["video"].items() if k != "previewImageUrl"}, "inputs.previewImageUrl"),
    ("nxcloud_send_line", {k: v for k, v in LINE_TYPES["voice"].items() if k != "duration"}, "inputs.duration"),
    ("nxcloud_send_line", {k: v for k, v in LINE_TYPES["image"].items() if k != "filename"}, "inputs.filename"),
    ("nxcloud_send_line", dict(LINE_TYPES["text"], type=2), "inputs.type"),
    ("nxcloud_send_line", dict(LINE_TYPES["text"], tenant_id="123"), "inputs.tenant_id"),
    ("nxcloud_send_viber", dict(VIBER_TYPES["text"], to="+86 137"), "inputs.to"),
    ("nxcloud_send_viber", {k: v for k, v in VIBER_TYPES["text_button"].items() if k != "viber_video_button_info"},
     "inputs.viber_video_button_info"),
    ("nxcloud_send_viber", {k: v for k, v in VIBER_TYPES["text_image"].items() if k != "fileUrl"}, "inputs.fileUrl"),
    ("nxcloud_send_viber", dict(VIBER_TYPES["text_button"], viber_video_button_info={"button_text": "x"}),
     "inputs.viber_video_button_info.button_link"),
    ("nxcloud_send_super_message", {"appkey": "a", "phones": ["1"], "message": SUPER_TYPES["text"]}, "inputs.phones[0]"),
    ("nxcloud_send_super_message", {"appkey": "a", "phones": ["85290000630"],
                                    "message": dict(SUPER_TYPES["text"], **SUPER_TYPES["image"])}, "inputs.message"),
    ("nxcloud_send_super_message", {"appkey": "a", "phones": ["85290000630"], "message": {}}, "inputs.message"),
    ("nxcloud_send_super_message", {"appkey": "a", "phones": ["85290000630"], "message": SUPER_TYPES["image"],
                                    "priority": ["SMS"]}, "inputs.message"),
    ("nxcloud_send_super_message", {"appkey": "a", "phones": ["85290000630"], "message": {"mediaMessage": {
        "video": {"url": IMG, "thumbnailUrl": IMG, "videoSize": "209715201", "duration": "10"}}}},
     "inputs.message.mediaMessage.video.videoSize"),
    ("nxcloud_send_super_message", {"appkey": "a", "phones": ["85290000630"], "message": {"mediaMessage": {
        "video": {"url": IMG, "thumbnailUrl": IMG, "videoSize": "10", "duration": "601"}}}},
     "inputs.message.mediaMessage.video.duration"),
    ("nxcloud_send_super_message", {"appkey": "a", "phones": ["85290000630"], "message": SUPER_TYPES["text"],
                                    "priority": ["SMS", "EMAIL"]}, "inputs.priority[1]"),
    ("nxcloud_send_super_message", {"appkey": "a", "phones": [], "message": SUPER_TYPES["text"]}, "inputs.phones"),
])
@responses.activate
def test_bad_inputs_name_the_field_and_send_nothing(action, inputs, path):
    inputs = {k: v for k, v in inputs.items() if v is not None}
    with pytest.raises(InputError) as exc:
        run(action, inputs)
    assert path in [d["path"] for d in exc.value.details], exc.value.details
    assert len(responses.calls) == 0


def test_sms_only_rule_says_why():
    with pytest.raises(InputError) as exc:
        run("nxcloud_send_super_message", {"appkey": "a", "phones": ["85290000630"],
                                           "message": SUPER_TYPES["card"], "priority": ["SMS"]})
    assert "SMS carries text only" in exc.value.details[0]["message"]


def test_text_only_to_sms_is_fine_and_dry_run_masks_the_sign():
    (request,) = run_action("nxcloud_send_super_message", ASSET, {"appkey": "a", "phones": ["85290000630"],
                            "message": SUPER_TYPES["text"], "priority": ["SMS"]}, dry_run=True)
    assert request["headers"]["sign"] == "***" and request["headers"]["bizType"] == "8"
    assert ASSET["access_secret"] not in json.dumps(request)
