"""The nine rich menu actions.

Rules from LINE's reference (developers.line.biz/en/reference/messaging-api/):
#rich-menu-object (size, selected, name max 300 characters, chatBarText max
14 characters, areas max 20), #size-object (width 800-2500, height at least
250, width/height at least 1.45), #bounds-object, #upload-rich-menu-image
(JPEG or PNG, at most 1 MB, the same dimension rules), #link-rich-menu-to-users
and #unlink-rich-menu-from-users (at most 500 user IDs per request). Request
bodies are judged by LINE's OpenAPI (tests/fixtures/line-openapi/messaging-api.yml:
RichMenuRequest, RichMenuBulkLinkRequest, RichMenuBulkUnlinkRequest), and
the official line-bot-sdk v3 talks to the sandbox.
"""
import json
import os
import struct
import threading

import pytest
import requests
import responses

from helpers import LINE, TOKEN_ASSET, USER, USER2, run_cli
from line_connector import ActionError, InputError, run_action
from line_connector.http import HttpClient
from line_connector.sandbox import Sandbox
from line_connector.sandbox.line_richmenu import (ALREADY_UPLOADED, DEMO_EMPTY_RICH_MENU_ID, DEMO_IMAGE_PATH,
                                                  DEMO_RICH_MENU_ID, NO_IMAGE, demo_png, make_png)
from line_connector.actions.line import richmenu
from openapi import validator

DATA = "https://api-data.line.me"
RM = "richmenu-" + "a1" * 16
MENU = {
    "size": {"width": 2500, "height": 843}, "selected": False, "name": "Support", "chatBarText": "Tap here",
    "areas": [{"bounds": {"x": 0, "y": 0, "width": 1250, "height": 843},
               "action": {"type": "message", "label": "Help", "text": "help"}},
              {"bounds": {"x": 1250, "y": 0, "width": 1250, "height": 843},
               "action": {"type": "postback", "label": "Start", "data": "action=start"}}],
}


def run(name, inputs, **kw):
    return run_action(name, TOKEN_ASSET, inputs, client=HttpClient(sleep=lambda s: None), **kw)


def users(n):
    return ["U%032x" % i for i in range(1, n + 1)]


def jpeg(width, height, with_sof=True):
    """A JPEG's header as LINE's server would read it: SOI, APP0 (JFIF), a
    DQT, then SOF0 with the dimensions (or straight to SOS), then EOI."""
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    dqt = b"\xff\xdb" + struct.pack(">H", 67) + b"\x00" + bytes(range(64))
    sof = b"\xff\xc0" + struct.pack(">HBHHB", 17, 8, height, width, 3) + b"\x01\x22\x00\x02\x11\x01\x03\x11\x01"
    sos = b"\xff\xda" + struct.pack(">H", 12) + b"\x03\x01\x00\x02\x11\x03\x11\x00\x3f\x00"
    return b"\xff\xd8" + app0 + dqt + (sof if with_sof else b"") + sos + b"\x00" * 100 + b"\xff\xd9"


@pytest.fixture(scope="module")
def sandbox():
    with Sandbox() as sb:
        yield sb


# ------------------------------------------------------------ request shapes (responses)
SHAPES = [
    ("line_create_rich_menu", MENU, "POST", LINE + "/v2/bot/richmenu", MENU),
    ("line_validate_rich_menu", MENU, "POST", LINE + "/v2/bot/richmenu/validate", MENU),
    ("line_list_rich_menus", {}, "GET", LINE + "/v2/bot/richmenu/list", None),
    ("line_delete_rich_menu", {"richMenuId": RM}, "DELETE", LINE + "/v2/bot/richmenu/" + RM, None),
    ("line_set_default_rich_menu", {"richMenuId": RM}, "POST", LINE + "/v2/bot/user/all/richmenu/" + RM, None),
    ("line_cancel_default_rich_menu", {}, "DELETE", LINE + "/v2/bot/user/all/richmenu", None),
    ("line_link_rich_menu", {"richMenuId": RM, "userId": USER}, "POST",
     LINE + "/v2/bot/user/%s/richmenu/%s" % (USER, RM), None),
    ("line_unlink_rich_menu", {"userId": USER}, "DELETE", LINE + "/v2/bot/user/%s/richmenu" % USER, None),
    ("line_link_rich_menu", {"richMenuId": RM, "userIds": [USER, USER2]}, "POST", LINE + "/v2/bot/richmenu/bulk/link",
     {"richMenuId": RM, "userIds": [USER, USER2]}),
    ("line_unlink_rich_menu", {"userIds": [USER, USER2]}, "POST", LINE + "/v2/bot/richmenu/bulk/unlink",
     {"userIds": [USER, USER2]}),
]
OPENAPI_BODY = {"/v2/bot/richmenu": "RichMenuRequest", "/v2/bot/richmenu/validate": "RichMenuRequest",
                "/v2/bot/richmenu/bulk/link": "RichMenuBulkLinkRequest",
                "/v2/bot/richmenu/bulk/unlink": "RichMenuBulkUnlinkRequest"}


@pytest.mark.parametrize("name,inputs,method,url,body", SHAPES, ids=["%s-%d" % (s[0], i) for i, s in enumerate(SHAPES)])
@responses.activate
def test_request_shape_and_openapi_body(name, inputs, method, url, body):
    responses.add(method, url, json={}, headers={"X-Line-Request-Id": "rid-1"})
    (result,) = run(name, inputs)
    assert result["ok"] and result["request_id"] == "rid-1"
    sent = responses.calls[0].request
    assert sent.method == method and sent.url == url
    if body is None:
        assert sent.body is None  # LINE's reference shows no body for these
    else:
        assert json.loads(sent.body) == body and sent.headers["Content-Type"] == "application/json"
        path = url[len(LINE):]
        errors = list(validator(OPENAPI_BODY[path]).iter_errors(json.loads(sent.body)))
        assert errors == [], errors
    assert "X-Line-Retry-Key" not in sent.headers


@responses.activate
def test_refusal_keeps_vendor_status_headers_body():
    responses.add("DELETE", LINE + "/v2/bot/richmenu/" + RM, status=404, json={"message": "Not found"},
                  headers={"X-Line-Request-Id": "rid-404"})
    with pytest.raises(ActionError) as info:
        run("line_delete_rich_menu", {"richMenuId": RM})
    (result,) = info.value.output
    assert result["status_code"] == 404 and result["json_body"] == {"message": "Not found"}
    assert result["request_id"] == "rid-404" and not result["ok"]


# ------------------------------------------------------------ rich menu rules
BAD_MENUS = [
    ("width below 800 (#size-object)", {"size": {"width": 799, "height": 250}}, "inputs.size.width"),
    ("width above 2500", {"size": {"width": 2501, "height": 843}}, "inputs.size.width"),
    ("height below 250", {"size": {"width": 2500, "height": 249}}, "inputs.size.height"),
    ("aspect below 1.45", {"size": {"width": 2500, "height": 1725}}, "inputs.size.height"),
    ("name over 300 characters", {"name": "n" * 301}, "inputs.name"),
    ("chatBarText over 14 characters", {"chatBarText": "c" * 15}, "inputs.chatBarText"),
    ("more than 20 areas", {"areas": [MENU["areas"][0]] * 21}, "inputs.areas"),
    ("negative bounds", {"areas": [{"bounds": {"x": -1, "y": 0, "width": 10, "height": 10},
                                    "action": {"type": "message", "label": "x", "text": "x"}}]},
     "inputs.areas[0].bounds.x"),
    ("unknown action type", {"areas": [{"bounds": {"x": 0, "y": 0, "width": 10, "height": 10},
                                        "action": {"type": "teleport"}}]}, "inputs.areas[0].action"),
    ("selected missing", {"selected": None}, "inputs"),
]


@pytest.mark.parametrize("why,change,path", BAD_MENUS, ids=[b[0] for b in BAD_MENUS])
@pytest.mark.parametrize("name", ["line_create_rich_menu", "line_validate_rich_menu"])
@responses.activate
def test_bad_rich_menu_refused_before_sending(name, why, change, path):
    menu = {k: v for k, v in dict(MENU, **change).items() if v is not None}
    with pytest.raises(InputError) as info:
        run(name, menu)
    assert any(d["path"].startswith(path) for d in info.value.details), info.value.details
    assert len(responses.calls) == 0


def test_aspect_ratio_boundary_is_accepted(sandbox):
    # 2500 / 1724 = 1.4501: the smallest height-to-width LINE allows at 2500 wide
    run_action("line_validate_rich_menu", {}, dict(MENU, size={"width": 2500, "height": 1724}, areas=[]),
               sandbox=sandbox)


def test_sandbox_refuses_what_the_pack_refuses_with_details(sandbox):
    """A body sent past the pack (plain requests) gets LINE's 400 with details."""
    asset = sandbox.demo_assets()["line_channel_access_token"]
    bad = dict(MENU, size={"width": 2500, "height": 2000}, chatBarText="x" * 15)
    resp = requests.post(sandbox.url + "/v2/bot/richmenu", json=bad, timeout=10,
                         headers={"Authorization": "Bearer " + asset["token"]})
    assert resp.status_code == 400 and resp.headers["X-Line-Request-Id"]
    props = {d["property"] for d in resp.json()["details"]}
    assert "chatBarText" in props


# ------------------------------------------------------------ create: no retry key
@responses.activate
def test_create_not_resent_once_it_may_have_arrived():
    responses.add("POST", LINE + "/v2/bot/richmenu", body=requests.exceptions.ReadTimeout("read timed out"))
    with pytest.raises(ActionError) as info:
        run("line_create_rich_menu", MENU)
    (result,) = info.value.output
    assert len(responses.calls) == 1 and result["delivery"] == "unknown"
    assert "line_list_rich_menus" in result["note"] and "outcome unknown" in result["note"]


@responses.activate
def test_create_resent_when_the_connection_was_never_made():
    responses.add("POST", LINE + "/v2/bot/richmenu", body=requests.exceptions.ConnectTimeout("connect timed out"))
    responses.add("POST", LINE + "/v2/bot/richmenu", json={"richMenuId": RM})
    (result,) = run("line_create_rich_menu", MENU)
    assert result["ok"] and result["attempts"] == 2 and result["json_body"] == {"richMenuId": RM}


@responses.activate
def test_create_5xx_is_not_resent():
    responses.add("POST", LINE + "/v2/bot/richmenu", status=500, json={"message": "error"})
    with pytest.raises(ActionError):
        run("line_create_rich_menu", MENU)
    assert len(responses.calls) == 1


# ------------------------------------------------------------ image upload
def _write(tmp_path, name, data):
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


@responses.activate
def test_upload_sends_the_checked_bytes_with_their_real_type(tmp_path):
    data = jpeg(2500, 1686)
    received = []

    def answer(request):
        received.append((type(request.body), bytes(request.body)))
        return 200, {}, "{}"

    responses.add_callback("POST", DATA + "/v2/bot/richmenu/%s/content" % RM, callback=answer)
    # named .png but a JPEG: the Content-Type follows the bytes
    (result,) = run("line_upload_rich_menu_image", {"richMenuId": RM, "image_path": _write(tmp_path, "m.png", data)})
    sent = responses.calls[0].request
    assert sent.headers["Content-Type"] == "image/jpeg" and int(sent.headers["Content-Length"]) == len(data)
    ((kind, body),) = received
    assert issubclass(kind, bytes)  # read once (at most 1 MB), the checked bytes themselves
    assert body == data
    assert result["image"] == {"content_type": "image/jpeg", "bytes": len(data), "width": 2500, "height": 1686}


def _lying_png():
    data = bytearray(make_png(2500, 843))
    data[16:20] = struct.pack(">I", 800)  # width edited, CRC left as it was
    return bytes(data)


BAD_IMAGES = [
    ("gif magic", b"GIF89a" + b"\x00" * 100, "JPEG or PNG"),
    ("text named .png", b"hello", "JPEG or PNG"),
    ("over 1 MB", make_png(2500, 843) + b"\x00" * (1024 * 1024), "1 MB"),
    ("png too narrow", make_png(799, 250), "width must be 800 to 2500"),
    ("png too wide", make_png(2501, 843), "width must be 800 to 2500"),
    ("png too short", make_png(800, 249), "height must be at least 250"),
    ("png aspect below 1.45", make_png(1000, 700), "aspect ratio"),
    ("jpeg aspect below 1.45", jpeg(2500, 2500), "aspect ratio"),
    ("png with lying header", _lying_png(), "checksum"),
    ("jpeg without a frame header", jpeg(2500, 843, with_sof=False), "SOF"),
    ("png cut inside its header", make_png(2500, 843)[:20], "IHDR"),
]


@pytest.mark.parametrize("why,data,rule", BAD_IMAGES, ids=[b[0] for b in BAD_IMAGES])
@responses.activate
def test_bad_image_refused_before_sending(tmp_path, why, data, rule):
    with pytest.raises(InputError) as info:
        run("line_upload_rich_menu_image", {"richMenuId": RM, "image_path": _write(tmp_path, "i.png", data)})
    (detail,) = info.value.details
    assert detail["path"] == "inputs.image_path" and rule in detail["message"], detail
    assert len(responses.calls) == 0


@responses.activate
def test_missing_file_and_directory_refused(tmp_path):
    for path, rule in ((str(tmp_path / "none.png"), "cannot be read"), (str(tmp_path), "")):
        with pytest.raises(InputError) as info:
            run("line_upload_rich_menu_image", {"richMenuId": RM, "image_path": path})
        assert info.value.details[0]["path"] == "inputs.image_path" and rule in info.value.details[0]["message"]
    assert len(responses.calls) == 0


def test_bad_image_from_the_cli_is_exit_2_naming_the_rule(tmp_path):
    path = _write(tmp_path, "small.png", make_png(640, 480))
    code, out, err = run_cli("run", "line_upload_rich_menu_image", "--sandbox",
                             stdin={"inputs": {"richMenuId": DEMO_EMPTY_RICH_MENU_ID, "image_path": path}})
    assert code == 2 and "Traceback" not in err
    detail = json.loads(err or out)["details"][0]
    assert detail["path"] == "inputs.image_path" and "width must be 800 to 2500" in detail["message"]


def test_upload_against_the_sandbox_then_again(tmp_path):
    with Sandbox() as sb:
        path = _write(tmp_path, "menu.png", demo_png())
        (result,) = run_action("line_upload_rich_menu_image", {},
                               {"richMenuId": DEMO_EMPTY_RICH_MENU_ID, "image_path": path}, sandbox=sb)
        assert result["ok"] and sb.line.richmenus[DEMO_EMPTY_RICH_MENU_ID]["image"] == ("image/png", demo_png())
        with pytest.raises(ActionError) as info:
            run_action("line_upload_rich_menu_image", {},
                       {"richMenuId": DEMO_EMPTY_RICH_MENU_ID, "image_path": path}, sandbox=sb)
        assert info.value.output[0]["status_code"] == 400
        assert info.value.output[0]["json_body"]["message"] == ALREADY_UPLOADED
        with pytest.raises(ActionError) as info:
            run_action("line_upload_rich_menu_image", {}, {"richMenuId": RM, "image_path": path}, sandbox=sb)
        assert info.value.output[0]["status_code"] == 404


def test_demo_image_path_exists_for_the_docs_example(sandbox):
    with open(DEMO_IMAGE_PATH, "rb") as fh:
        assert fh.read() == demo_png()


# ------------------------------------------------------------ sandbox flows
def test_create_list_default_link_delete_against_the_sandbox(tmp_path):
    with Sandbox() as sb:
        (created,) = run_action("line_create_rich_menu", {}, MENU, sandbox=sb)
        new_id = created["json_body"]["richMenuId"]
        (listed,) = run_action("line_list_rich_menus", {}, {}, sandbox=sb)
        ids = [m["richMenuId"] for m in listed["json_body"]["richmenus"]]
        assert new_id in ids and DEMO_RICH_MENU_ID in ids
        assert sb.line.default_richmenu == DEMO_RICH_MENU_ID
        # no image yet: LINE refuses to make it the default or link it
        with pytest.raises(ActionError) as info:
            run_action("line_set_default_rich_menu", {}, {"richMenuId": new_id}, sandbox=sb)
        assert info.value.output[0]["json_body"]["message"] == NO_IMAGE
        run_action("line_upload_rich_menu_image", {}, {"richMenuId": new_id,
                                                      "image_path": _write(tmp_path, "m.png", demo_png())},
                   sandbox=sb)
        run_action("line_set_default_rich_menu", {}, {"richMenuId": new_id}, sandbox=sb)
        assert sb.line.default_richmenu == new_id
        run_action("line_cancel_default_rich_menu", {}, {}, sandbox=sb)
        assert sb.line.default_richmenu is None
        run_action("line_link_rich_menu", {}, {"richMenuId": new_id, "userId": USER}, sandbox=sb)
        assert sb.line.user_richmenus[USER] == new_id
        run_action("line_unlink_rich_menu", {}, {"userId": USER}, sandbox=sb)
        assert USER not in sb.line.user_richmenus
        run_action("line_delete_rich_menu", {}, {"richMenuId": new_id}, sandbox=sb)
        with pytest.raises(ActionError) as info:
            run_action("line_delete_rich_menu", {}, {"richMenuId": new_id}, sandbox=sb)
        assert info.value.output[0]["status_code"] == 404


def test_bulk_link_1200_users_is_three_requests_of_500_500_200():
    with Sandbox() as sb:
        ids = users(1200)
        results = run_action("line_link_rich_menu", {}, {"richMenuId": DEMO_RICH_MENU_ID, "userIds": ids + ids[:7]},
                             sandbox=sb)
        assert sb.line.bulk_requests == [("link", 500), ("link", 500), ("link", 200)]
        assert [len(r["recipients"]) for r in results] == [500, 500, 200]
        assert [r["recipients"] for r in results] == [ids[:500], ids[500:1000], ids[1000:]]
        assert [(r["chunk"], r["chunks"], r["status_code"]) for r in results] == [(1, 3, 202), (2, 3, 202), (3, 3, 202)]
        assert all(sb.line.user_richmenus[u] == DEMO_RICH_MENU_ID for u in ids)
        results = run_action("line_unlink_rich_menu", {}, {"userIds": ids}, sandbox=sb)
        assert len(results) == 3 and sb.line.user_richmenus == {}
        assert sb.line.bulk_requests[3:] == [("unlink", 500), ("unlink", 500), ("unlink", 200)]


@responses.activate
def test_bulk_bodies_conform_to_openapi_and_a_failed_chunk_stays_visible():
    responses.add("POST", LINE + "/v2/bot/richmenu/bulk/link", json={}, status=202)
    responses.add("POST", LINE + "/v2/bot/richmenu/bulk/link", json={"message": "bad"}, status=400)
    responses.add("POST", LINE + "/v2/bot/richmenu/bulk/link", json={}, status=202)
    with pytest.raises(ActionError) as info:
        run("line_link_rich_menu", {"richMenuId": RM, "userIds": users(1200)})
    out = info.value.output
    assert [r["ok"] for r in out] == [True, False, True]
    bodies = [json.loads(c.request.body) for c in responses.calls]
    assert [len(b["userIds"]) for b in bodies] == [500, 500, 200]
    for body in bodies:
        assert list(validator("RichMenuBulkLinkRequest").iter_errors(body)) == []


@pytest.mark.parametrize("inputs", [
    {"richMenuId": RM},                                          # neither userId nor userIds
    {"richMenuId": RM, "userId": USER, "userIds": [USER]},       # both
    {"richMenuId": "richmenu-../../x", "userId": USER},          # an ID that would add path segments
    {"richMenuId": RM, "userIds": []},
    {"richMenuId": RM, "userIds": ["not-a-user"]},
])
@responses.activate
def test_link_inputs_refused_before_sending(inputs):
    with pytest.raises(InputError):
        run("line_link_rich_menu", inputs)
    assert len(responses.calls) == 0


# ------------------------------------------------------------ the official SDK
def test_line_bot_sdk_v3_talks_to_the_sandbox(tmp_path):
    from linebot.v3.messaging import (ApiClient, ApiException, Configuration, MessagingApi, MessagingApiBlob,
                                      RichMenuBulkLinkRequest, RichMenuRequest)

    with Sandbox() as sb:
        token = sb.demo_assets()["line_channel_access_token"]["token"]
        config = Configuration(host=sb.url, access_token=token)
        with ApiClient(config) as client:
            api, blob = MessagingApi(client), MessagingApiBlob(client)
            listed = api.get_rich_menu_list()
            assert DEMO_RICH_MENU_ID in [m.rich_menu_id for m in listed.richmenus]
            assert api.get_default_rich_menu_id().rich_menu_id == DEMO_RICH_MENU_ID
            created = api.create_rich_menu(RichMenuRequest.from_dict(MENU))
            assert created.rich_menu_id.startswith("richmenu-")
            menu = api.get_rich_menu(created.rich_menu_id)
            assert menu.chat_bar_text == "Tap here" and menu.size.width == 2500
            api.validate_rich_menu_object(RichMenuRequest.from_dict(MENU))
            with pytest.raises(ApiException) as info:
                api.validate_rich_menu_object(RichMenuRequest.from_dict(dict(MENU, size={"width": 2500,
                                                                                        "height": 2000})))
            assert info.value.status == 400
            blob.set_rich_menu_image(created.rich_menu_id, demo_png(), _headers={"Content-Type": "image/png"})
            assert bytes(blob.get_rich_menu_image(created.rich_menu_id)) == demo_png()
            api.link_rich_menu_id_to_users(RichMenuBulkLinkRequest(rich_menu_id=created.rich_menu_id,
                                                                   user_ids=[USER, USER2]))
            assert api.get_rich_menu_id_of_user(USER2).rich_menu_id == created.rich_menu_id
            api.delete_rich_menu(created.rich_menu_id)
            with pytest.raises(ApiException) as info:
                api.get_rich_menu(created.rich_menu_id)
            assert info.value.status == 404


def test_dry_run_describes_the_upload_without_reading_it_all(tmp_path):
    path = _write(tmp_path, "m.png", demo_png())
    (described,) = run("line_upload_rich_menu_image", {"richMenuId": RM, "image_path": path}, dry_run=True)
    assert described["url"] == DATA + "/v2/bot/richmenu/%s/content" % RM
    assert described["headers"]["Content-Type"] == "image/png" and "body" not in described
    assert described["image"]["width"] == 2500


# ------------------------------------------------------------ review 15: FIFO, file changed after the check
@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs are POSIX")
@responses.activate
def test_fifo_image_path_is_refused_at_once_not_blocking(tmp_path):
    """open() of a FIFO without a writer blocks forever (past any deadline):
    it is opened non-blocking and refused as not a regular file."""
    fifo = str(tmp_path / "menu.png")
    os.mkfifo(fifo)
    outcome = []

    def attempt():
        try:
            run("line_upload_rich_menu_image", {"richMenuId": RM, "image_path": fifo})
        except InputError as exc:
            outcome.append(exc.details)

    worker = threading.Thread(target=attempt, daemon=True)
    worker.start()
    worker.join(20)  # generous: the refusal is immediate
    if worker.is_alive():  # unblock the stuck open() so the thread can end
        try:
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        except OSError:
            pass
        pytest.fail("line_upload_rich_menu_image blocked on a FIFO")
    ((detail,),) = outcome
    assert detail["path"] == "inputs.image_path" and "regular file" in detail["message"]
    assert len(responses.calls) == 0


@responses.activate
def test_file_growing_after_the_check_changes_nothing_sent(tmp_path, monkeypatch):
    """The bytes checked are the bytes sent: a file appended to (or swapped)
    between the check and the send must not add unchecked bytes or break
    the Content-Length framing."""
    data = make_png(2500, 843)
    path = _write(tmp_path, "m.png", data)
    checked = richmenu.image_info

    def check_then_grow(fh, size):
        answer = checked(fh, size)
        with open(path, "ab") as grow:  # someone appends after the check
            grow.write(b"\x00" * 4096 + b"unchecked")
        return answer

    monkeypatch.setattr(richmenu, "image_info", check_then_grow)
    responses.add("POST", DATA + "/v2/bot/richmenu/%s/content" % RM, json={})
    (result,) = run("line_upload_rich_menu_image", {"richMenuId": RM, "image_path": path})
    sent = responses.calls[0].request
    body = sent.body if isinstance(sent.body, bytes) else b"".join(sent.body)
    assert result["ok"] and body == data and int(sent.headers["Content-Length"]) == len(data)


@responses.activate
def test_image_over_the_limit_is_refused_reading_at_most_limit_plus_one(tmp_path):
    path = _write(tmp_path, "big.png", make_png(2500, 843) + b"\x00" * (3 * 1024 * 1024))
    assert len(richmenu.read_image(path)) == richmenu.MAX_IMAGE_BYTES + 1  # never the whole file
    with pytest.raises(InputError) as info:
        run("line_upload_rich_menu_image", {"richMenuId": RM, "image_path": path})
    assert info.value.details[0]["path"] == "inputs.image_path" and "1 MB" in info.value.details[0]["message"]
    assert len(responses.calls) == 0


# ------------------------------------------------------------ review 15: delete resent like delete audience
@pytest.mark.parametrize("name,inputs,url,status,body", [
    ("line_delete_rich_menu", {"richMenuId": RM}, LINE + "/v2/bot/richmenu/" + RM, 404, {"message": "Not found"}),
    # manage-audience.yml: an unknown audience is 400 AUDIENCE_GROUP_NOT_FOUND, not 404
    ("line_delete_audience", {"audienceGroupId": 42}, LINE + "/v2/bot/audienceGroup/42", 400,
     {"message": "audience group not found", "details": [{"message": "AUDIENCE_GROUP_NOT_FOUND"}]}),
])
@responses.activate
def test_delete_resent_after_a_lost_answer_and_gone_is_not_claimed_known(name, inputs, url, status, body):
    responses.add("DELETE", url, body=requests.exceptions.ReadTimeout("read timed out"))
    responses.add("DELETE", url, status=status, json=body)
    with pytest.raises(ActionError) as info:
        run(name, inputs)
    (result,) = info.value.output
    assert len(responses.calls) == 2 and result["status_code"] == status  # resent: deleting twice is harmless
    assert "likely" in result["note"] and "not known" in result["note"]


@responses.activate
def test_upload_result_keys_are_documented_in_http_results(tmp_path):
    import jsonschema
    with open(os.path.join(os.path.dirname(__file__), "..", "..", "schemas", "common", "http_results.json")) as fh:
        schema = json.load(fh)
    responses.add("POST", DATA + "/v2/bot/richmenu/%s/content" % RM, json={})
    output = run("line_upload_rich_menu_image", {"richMenuId": RM, "image_path": _write(tmp_path, "m.png",
                                                                                         demo_png())})
    jsonschema.validate(output, schema)
    assert set(output[0]) <= set(schema["$defs"]["result"]["properties"])
