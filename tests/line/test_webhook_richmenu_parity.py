"""Webhook endpoint settings, rich menu reads, aliases and batch control
(SPEC 14): against the sandbox, LINE's OpenAPI and the official SDK.

Reference: developers.line.biz/en/reference/messaging-api/ #set-webhook-endpoint-url
(HTTPS, max 500 characters), #create-rich-menu-alias (richMenuAliasId
^[a-z0-9_-]{1,32}$), #batch-control-rich-menus-of-users (at most 1000
operations; 202, progress by request ID).
"""
import base64
import json

import pytest
import requests
import responses

from helpers import USER
from line_connector import ActionError, InputError, run_action
from line_connector.http import HttpClient
from line_connector.sandbox import Sandbox
from line_connector.sandbox.line_channel import DEMO_ALIAS_ID, DEMO_BATCH_REQUEST_ID
from line_connector.sandbox.line_richmenu import DEMO_EMPTY_RICH_MENU_ID, DEMO_LINKED_USER_ID, DEMO_RICH_MENU_ID
from openapi import validator

TOKEN = {"token": "t" * 20}
LINE = "https://api.line.me"


@pytest.fixture
def sb():
    with Sandbox() as sandbox:
        yield sandbox


def run(sb, name, inputs):
    return run_action(name, sb.demo_assets()["line_channel_access_token"], inputs)


def upload_menu(sb):
    """A second rich menu with an image (the demo one is the first)."""
    from line_connector.sandbox.line_richmenu import DEMO_IMAGE_PATH, DEMO_MENU

    (created,) = run(sb, "line_create_rich_menu", dict(DEMO_MENU, name="second"))
    menu_id = created["json_body"]["richMenuId"]
    run(sb, "line_upload_rich_menu_image", {"richMenuId": menu_id, "image_path": DEMO_IMAGE_PATH})
    return menu_id


# ------------------------------------------------------------ webhook endpoint

def test_set_get_and_test_the_webhook_endpoint(sb):
    run(sb, "line_set_webhook_endpoint", {"endpoint": "https://bot.example.org/hook?v=2"})
    (got,) = run(sb, "line_get_webhook_endpoint", {})
    assert got["json_body"] == {"endpoint": "https://bot.example.org/hook?v=2", "active": True}
    (tested,) = run(sb, "line_test_webhook_endpoint", {})
    assert tested["json_body"]["success"] is True and tested["json_body"]["statusCode"] == 200
    run(sb, "line_test_webhook_endpoint", {"endpoint": "https://other.example.org/x"})
    assert sb.line.webhook_tests == ["https://bot.example.org/hook?v=2", "https://other.example.org/x"]


@pytest.mark.parametrize("endpoint", ["http://bot.example.org/hook", "https://" + "a" * 493 + ".example", "",
                                      "https://bot.example.org/a b"])
def test_a_webhook_url_breaking_lines_rules_is_refused_before_sending(sb, endpoint):
    with pytest.raises(InputError) as exc:
        run(sb, "line_set_webhook_endpoint", {"endpoint": endpoint})
    assert exc.value.details[0]["path"] == "inputs.endpoint"
    assert sb.requests == 0


@responses.activate
def test_setting_the_webhook_is_resent_as_a_read(monkeypatch):
    url = LINE + "/v2/bot/channel/webhook/endpoint"
    responses.add(responses.PUT, url, body=requests.exceptions.ReadTimeout("read timed out"))
    responses.add(responses.PUT, url, json={})
    (result,) = run_action("line_set_webhook_endpoint", TOKEN, {"endpoint": "https://x.example/h"},
                           client=HttpClient(sleep=lambda s: None))
    assert result["ok"] and len(responses.calls) == 2


# ------------------------------------------------------------ rich menu reads

def test_rich_menu_reads(sb, tmp_path):
    (menu,) = run(sb, "line_get_rich_menu", {"richMenuId": DEMO_RICH_MENU_ID})
    assert menu["json_body"]["richMenuId"] == DEMO_RICH_MENU_ID
    (default,) = run(sb, "line_get_default_rich_menu", {})
    assert default["json_body"] == {"richMenuId": DEMO_RICH_MENU_ID}
    (linked,) = run(sb, "line_get_user_rich_menu", {"userId": DEMO_LINKED_USER_ID})
    assert linked["json_body"] == {"richMenuId": DEMO_RICH_MENU_ID}
    with pytest.raises(ActionError) as exc:
        run(sb, "line_get_user_rich_menu", {"userId": USER})
    assert exc.value.output[0]["status_code"] == 404
    target = tmp_path / "menu.png"
    (image,) = run(sb, "line_download_rich_menu_image", {"richMenuId": DEMO_RICH_MENU_ID, "save_to": str(target)})
    data = sb.line.richmenus[DEMO_RICH_MENU_ID]["image"][1]
    assert target.read_bytes() == data and image["size"] == len(data) and image["content_type"] == "image/png"
    (inline,) = run(sb, "line_download_rich_menu_image", {"richMenuId": DEMO_RICH_MENU_ID})
    assert base64.b64decode(inline["content_base64"]) == data


@pytest.mark.parametrize("bad", ["richmenu-../../v2/bot/info", "RICHMENU-5a1b2c3d4e5f60718293a4b5c6d7e8f9", "x"])
def test_ids_in_paths_are_checked(sb, bad):
    with pytest.raises(InputError) as exc:
        run(sb, "line_get_rich_menu", {"richMenuId": bad})
    assert exc.value.details[0]["path"] == "inputs.richMenuId"
    assert sb.requests == 0


# ------------------------------------------------------------ aliases

def test_alias_lifecycle(sb):
    second = upload_menu(sb)
    run(sb, "line_create_rich_menu_alias", {"richMenuAliasId": "tab-b", "richMenuId": second})
    (got,) = run(sb, "line_get_rich_menu_alias", {"richMenuAliasId": "tab-b"})
    assert got["json_body"] == {"richMenuAliasId": "tab-b", "richMenuId": second}
    with pytest.raises(ActionError) as exc:  # the ID is taken
        run(sb, "line_create_rich_menu_alias", {"richMenuAliasId": "tab-b", "richMenuId": second})
    assert exc.value.output[0]["status_code"] == 400
    run(sb, "line_update_rich_menu_alias", {"richMenuAliasId": "tab-b", "richMenuId": DEMO_RICH_MENU_ID})
    (listed,) = run(sb, "line_list_rich_menu_aliases", {})
    assert {"richMenuAliasId": "tab-b", "richMenuId": DEMO_RICH_MENU_ID} in listed["json_body"]["aliases"]
    run(sb, "line_delete_rich_menu_alias", {"richMenuAliasId": "tab-b"})
    with pytest.raises(ActionError):
        run(sb, "line_get_rich_menu_alias", {"richMenuAliasId": "tab-b"})
    with pytest.raises(ActionError) as exc:  # no image: LINE refuses to point an alias at it
        run(sb, "line_create_rich_menu_alias", {"richMenuAliasId": "tab-c", "richMenuId": DEMO_EMPTY_RICH_MENU_ID})
    assert exc.value.output[0]["status_code"] == 400


@pytest.mark.parametrize("alias", ["Tab-A", "a" * 33, "tab/../x", "tab a", ""])
def test_alias_ids_follow_lines_pattern(sb, alias):
    for name, extra in (("line_get_rich_menu_alias", {}), ("line_create_rich_menu_alias",
                                                           {"richMenuId": DEMO_RICH_MENU_ID})):
        with pytest.raises(InputError) as exc:
            run(sb, name, dict(extra, richMenuAliasId=alias))
        assert exc.value.details[0]["path"] == "inputs.richMenuAliasId"
    assert sb.requests == 0


@responses.activate
def test_create_alias_is_sent_once_and_a_later_400_is_explained():
    url = LINE + "/v2/bot/richmenu/alias"
    responses.add(responses.POST, url, body=requests.exceptions.ReadTimeout("read timed out"))
    with pytest.raises(ActionError) as exc:
        run_action("line_create_rich_menu_alias", TOKEN, {"richMenuAliasId": "a", "richMenuId": DEMO_RICH_MENU_ID},
                   client=HttpClient(sleep=lambda s: None))
    assert len(responses.calls) == 1 and exc.value.output[0]["delivery"] == "unknown"


@responses.activate
def test_deleting_an_alias_is_resent_and_a_400_after_a_lost_answer_says_why():
    url = LINE + "/v2/bot/richmenu/alias/tab-a"
    responses.add(responses.DELETE, url, body=requests.exceptions.ReadTimeout("read timed out"))
    responses.add(responses.DELETE, url, status=400, json={"message": "richmenu alias not found"})
    with pytest.raises(ActionError) as exc:
        run_action("line_delete_rich_menu_alias", TOKEN, {"richMenuAliasId": "tab-a"},
                   client=HttpClient(sleep=lambda s: None))
    (result,) = exc.value.output
    assert len(responses.calls) == 2 and "deleted it" in result["note"] and "not known" in result["note"]


# ------------------------------------------------------------ batch

def test_batch_relinks_every_user_and_reports_progress(sb):
    second = upload_menu(sb)
    run(sb, "line_link_rich_menu", {"richMenuId": DEMO_RICH_MENU_ID, "userIds": [USER]})
    ops = {"operations": [{"type": "link", "from": DEMO_RICH_MENU_ID, "to": second}]}
    assert run(sb, "line_validate_rich_menu_batch", ops)[0]["ok"]
    (accepted,) = run(sb, "line_rich_menu_batch", ops)
    assert accepted["status_code"] == 202
    assert sb.line.user_richmenus == {USER: second, DEMO_LINKED_USER_ID: second}
    request_id = accepted["request_id"]
    phases = [run(sb, "line_get_rich_menu_batch_progress", {"requestId": request_id})[0]["json_body"]["phase"]
              for _ in range(2)]
    assert phases == ["ongoing", "succeeded"]


def test_batch_unlink_all(sb):
    """A test of its own (its own sandbox: another channel): LINE allows 3
    batches an hour per channel, and the pack's limiter, at the default
    rate_limit_factor, lets one through at once (README, LINE's rate limits)."""
    run(sb, "line_link_rich_menu", {"richMenuId": DEMO_RICH_MENU_ID, "userIds": [USER]})
    assert sb.line.user_richmenus
    run(sb, "line_rich_menu_batch", {"operations": [{"type": "unlinkAll"}]})
    assert sb.line.user_richmenus == {}


@pytest.mark.parametrize("ops,path", [
    ([], "inputs.operations"),
    ([{"type": "link", "from": DEMO_RICH_MENU_ID}], "inputs.operations[0]"),
    ([{"type": "unlinkAll", "from": DEMO_RICH_MENU_ID}], "inputs.operations[0]"),
    ([{"type": "move", "from": DEMO_RICH_MENU_ID}], "inputs.operations[0].type"),
    ([{"type": "unlinkAll"}] * 1001, "inputs.operations"),
])
def test_batch_rules_are_checked_before_sending(sb, ops, path):
    with pytest.raises(InputError) as exc:
        run(sb, "line_rich_menu_batch", {"operations": ops})
    assert any(d["path"].startswith(path) for d in exc.value.details), exc.value.details
    assert sb.requests == 0


def test_validate_batch_refuses_an_unknown_menu_as_line_does(sb):
    with pytest.raises(ActionError) as exc:
        run(sb, "line_validate_rich_menu_batch",
            {"operations": [{"type": "unlink", "from": "richmenu-" + "0" * 32}]})
    assert exc.value.output[0]["json_body"]["details"][0]["property"] == "operations[0].from"


@responses.activate
def test_a_batch_is_never_resent_blindly():
    responses.add(responses.POST, LINE + "/v2/bot/richmenu/batch",
                  body=requests.exceptions.ReadTimeout("read timed out"))
    with pytest.raises(ActionError) as exc:
        run_action("line_rich_menu_batch", TOKEN, {"operations": [{"type": "unlinkAll"}]},
                   client=HttpClient(sleep=lambda s: None))
    assert len(responses.calls) == 1
    assert "line_get_rich_menu_batch_progress" in exc.value.output[0]["note"]


# ------------------------------------------------------------ the sandbox's routes

def test_routes_line_has_answer_and_methods_it_lacks_are_404_or_405_never_501(sb):
    auth = {"Authorization": "Bearer " + sb.credentials["token"]}
    # a route template (/v2/bot/richmenu/{richMenuId}) no longer swallows these
    alias = requests.post(sb.url + "/v2/bot/richmenu/alias", headers=auth, timeout=10,
                          json={"richMenuAliasId": "zz", "richMenuId": DEMO_RICH_MENU_ID})
    assert alias.status_code == 200
    batch = requests.post(sb.url + "/v2/bot/richmenu/batch", headers=auth, json={"operations": [{"type": "unlinkAll"}]},
                          timeout=10)
    assert batch.status_code == 202
    for method in ("OPTIONS", "TRACE"):
        for path, expected in (("/v2/bot/info", 405), ("/v2/bot/nothing-here", 404)):
            answer = requests.request(method, sb.url + path, headers=auth, timeout=10)
            assert answer.status_code == expected, (method, path, answer.status_code)
    assert requests.put(sb.url + "/v2/bot/channel/webhook/test", headers=auth, timeout=10).status_code == 405


# ------------------------------------------------------------ LINE's OpenAPI judges

BODIES = [
    ("line_set_webhook_endpoint", {"endpoint": "https://x.example/h"}, "SetWebhookEndpointRequest"),
    ("line_test_webhook_endpoint", {"endpoint": "https://x.example/h"}, "TestWebhookEndpointRequest"),
    ("line_test_webhook_endpoint", {}, "TestWebhookEndpointRequest"),
    ("line_create_rich_menu_alias", {"richMenuAliasId": "a-1", "richMenuId": DEMO_RICH_MENU_ID},
     "CreateRichMenuAliasRequest"),
    ("line_update_rich_menu_alias", {"richMenuAliasId": "a-1", "richMenuId": DEMO_RICH_MENU_ID},
     "UpdateRichMenuAliasRequest"),
    ("line_rich_menu_batch", {"operations": [{"type": "link", "from": DEMO_RICH_MENU_ID, "to": DEMO_RICH_MENU_ID},
                                             {"type": "unlink", "from": DEMO_RICH_MENU_ID}, {"type": "unlinkAll"}],
                              "resumeRequestKey": "k_1"}, "RichMenuBatchRequest"),
    ("line_validate_rich_menu_batch", {"operations": [{"type": "unlinkAll"}]}, "RichMenuBatchRequest"),
]


@pytest.mark.parametrize("action,inputs,schema", BODIES, ids=["%s-%d" % (b[0], i) for i, b in enumerate(BODIES)])
def test_request_bodies_conform_to_the_openapi(action, inputs, schema):
    (request,) = run_action(action, TOKEN, inputs, dry_run=True)
    assert [e.message for e in validator(schema).iter_errors(request["body"])] == []
    sent = {k: v for k, v in inputs.items() if k != "richMenuAliasId" or action == "line_create_rich_menu_alias"}
    assert request["body"] == sent


ANSWERS = [
    ("line_get_webhook_endpoint", {}, "GetWebhookEndpointResponse"),
    ("line_test_webhook_endpoint", {}, "TestWebhookEndpointResponse"),
    ("line_get_rich_menu", {"richMenuId": DEMO_RICH_MENU_ID}, "RichMenuResponse"),
    ("line_get_default_rich_menu", {}, "RichMenuIdResponse"),
    ("line_get_user_rich_menu", {"userId": DEMO_LINKED_USER_ID}, "RichMenuIdResponse"),
    ("line_get_rich_menu_alias", {"richMenuAliasId": DEMO_ALIAS_ID}, "RichMenuAliasResponse"),
    ("line_list_rich_menu_aliases", {}, "RichMenuAliasListResponse"),
    ("line_get_rich_menu_batch_progress", {"requestId": DEMO_BATCH_REQUEST_ID}, "RichMenuBatchProgressResponse"),
]


@pytest.mark.parametrize("action,inputs,schema", ANSWERS, ids=[a[0] for a in ANSWERS])
def test_sandbox_answers_conform_to_the_openapi(sb, action, inputs, schema):
    (result,) = run(sb, action, inputs)
    assert [e.message for e in validator(schema).iter_errors(result["json_body"])] == []


# ------------------------------------------------------------ the official SDK against the sandbox

def test_the_sdk_drives_every_new_endpoint_and_deserializes_the_answers(sb):
    from linebot.v3.messaging import (
        ApiClient, Configuration, CreateRichMenuAliasRequest, GetWebhookEndpointResponse, MessagingApi,
        MessagingApiBlob, RichMenuAliasListResponse, RichMenuAliasResponse, RichMenuBatchLinkOperation,
        RichMenuBatchProgressResponse, RichMenuBatchRequest, RichMenuIdResponse, RichMenuResponse,
        SetWebhookEndpointRequest, TestWebhookEndpointRequest, TestWebhookEndpointResponse,
        UpdateRichMenuAliasRequest)

    second = upload_menu(sb)
    config = Configuration(host=sb.url, access_token=sb.credentials["token"])
    with ApiClient(config) as client:
        api, blob = MessagingApi(client), MessagingApiBlob(client)
        api.set_webhook_endpoint(SetWebhookEndpointRequest(endpoint="https://sdk.example/hook"))
        got = api.get_webhook_endpoint()
        assert isinstance(got, GetWebhookEndpointResponse) and got.endpoint == "https://sdk.example/hook"
        tested = api.test_webhook_endpoint(TestWebhookEndpointRequest())
        assert isinstance(tested, TestWebhookEndpointResponse) and tested.success
        assert isinstance(api.get_rich_menu(DEMO_RICH_MENU_ID), RichMenuResponse)
        assert isinstance(api.get_default_rich_menu_id(), RichMenuIdResponse)
        assert api.get_rich_menu_id_of_user(DEMO_LINKED_USER_ID).rich_menu_id == DEMO_RICH_MENU_ID
        assert bytes(blob.get_rich_menu_image(DEMO_RICH_MENU_ID)) == sb.line.richmenus[DEMO_RICH_MENU_ID]["image"][1]
        api.create_rich_menu_alias(CreateRichMenuAliasRequest(rich_menu_alias_id="sdk-1", rich_menu_id=second))
        alias = api.get_rich_menu_alias("sdk-1")
        assert isinstance(alias, RichMenuAliasResponse) and alias.rich_menu_id == second
        api.update_rich_menu_alias("sdk-1", UpdateRichMenuAliasRequest(rich_menu_id=DEMO_RICH_MENU_ID))
        listed = api.get_rich_menu_alias_list()
        assert isinstance(listed, RichMenuAliasListResponse) and len(listed.aliases) == 2
        api.delete_rich_menu_alias("sdk-1")
        batch = RichMenuBatchRequest(operations=[RichMenuBatchLinkOperation(var_from=DEMO_RICH_MENU_ID, to=second)])
        api.validate_rich_menu_batch_request(batch)
        sent = api.rich_menu_batch_with_http_info(batch)
        assert sent.status_code == 202
        progress = api.get_rich_menu_batch_progress(sent.headers["X-Line-Request-Id"])
        assert isinstance(progress, RichMenuBatchProgressResponse) and progress.phase == "ongoing"
    assert sb.line.user_richmenus[DEMO_LINKED_USER_ID] == second
