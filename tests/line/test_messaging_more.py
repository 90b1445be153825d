"""Content previews, aggregation units, link tokens, mark-as-read by user,
PNP and memberships (SPEC 14): sandbox, LINE's OpenAPI and the official SDK.

Reference: developers.line.biz/en/reference/messaging-api/ #get-image-or-video-preview,
#get-a-list-of-unit-names-assigned-during-this-month (limit at most 100),
#issue-link-token, #mark-as-read, #get-membership-user-ids (limit 1..1000);
/en/reference/partner-docs/#send-line-notification-message (to: SHA-256 of
the E.164 number; X-Line-Delivery-Tag 16-100 characters; no retry key).
"""
import base64
import hashlib
import json

import pytest
import requests
import responses

from helpers import TEXT, USER
from line_connector import ActionError, InputError, run_action
from line_connector.http import HttpClient
from line_connector.sandbox import Sandbox
from line_connector.sandbox.line_more import DEMO_MEMBERSHIP_ID
from line_connector.sandbox.line_richmenu import DEMO_IMAGE_MESSAGE_ID
from openapi import validator

TOKEN = {"token": "t" * 20}
LINE = "https://api.line.me"
PHONE = hashlib.sha256(b"+819012345678").hexdigest()


@pytest.fixture
def sb():
    with Sandbox() as sandbox:
        yield sandbox


def run(sb, name, inputs):
    return run_action(name, sb.demo_assets()["line_channel_access_token"], inputs)


def test_preview_is_streamed_as_content_is(sb, tmp_path):
    target = tmp_path / "p.png"
    (result,) = run(sb, "line_get_message_content_preview", {"messageId": DEMO_IMAGE_MESSAGE_ID,
                                                             "save_to": str(target)})
    assert target.read_bytes() == sb.line.contents[DEMO_IMAGE_MESSAGE_ID]["data"]
    assert result["size"] == target.stat().st_size and result["path"] == str(target)
    (inline,) = run(sb, "line_get_message_content_preview", {"messageId": DEMO_IMAGE_MESSAGE_ID})
    assert base64.b64decode(inline["content_base64"]) == target.read_bytes()
    with pytest.raises(InputError):
        run(sb, "line_get_message_content_preview", {"messageId": "../info"})


def test_aggregation_units_every_page(sb):
    sb.line.aggregation_units = ["unit_%03d" % i for i in range(7)]
    (usage,) = run(sb, "line_get_aggregation_unit_usage", {})
    assert usage["json_body"] == {"numOfCustomAggregationUnits": 7}
    results = run(sb, "line_list_aggregation_units", {"limit": 3, "all_pages": True})
    assert len(results) == 3 and results[-1]["all_items"] == sb.line.aggregation_units
    with pytest.raises(InputError):
        run(sb, "line_list_aggregation_units", {"limit": 101})


def test_link_token_and_mark_as_read_by_user(sb):
    (issued,) = run(sb, "line_issue_link_token", {"userId": USER})
    assert sb.line.link_tokens[issued["json_body"]["linkToken"]] == USER
    run(sb, "line_mark_as_read_by_user", {"userId": USER})
    assert sb.line.marked_read_users == [USER]
    with pytest.raises(InputError) as exc:
        run(sb, "line_issue_link_token", {"userId": "U123/../../v2/bot/info"})
    assert exc.value.details[0]["path"] == "inputs.userId"


def test_pnp_push_carries_the_delivery_tag_and_is_counted(sb):
    run(sb, "line_send_pnp_push", {"to": PHONE, "messages": TEXT, "deliveryTag": "order-2026-000123"})
    assert sb.line.pnp_deliveries == [{"to": PHONE, "messages": 1, "delivery_tag": "order-2026-000123"}]
    run(sb, "line_send_pnp_push", {"to": PHONE, "messages": TEXT})
    assert sb.line.pnp_deliveries[-1]["delivery_tag"] is None
    (count,) = run(sb, "line_get_pnp_sent_count", {"date": "20261122"})
    assert count["json_body"]["status"] in ("ready", "unready")


@pytest.mark.parametrize("inputs,path", [
    ({"to": "+819012345678", "messages": TEXT}, "inputs.to"),             # not hashed
    ({"to": PHONE.upper(), "messages": TEXT}, "inputs.to"),
    ({"to": PHONE, "messages": TEXT * 6}, "inputs.messages"),
    ({"to": PHONE, "messages": TEXT, "deliveryTag": "short"}, "inputs.deliveryTag"),
    ({"to": PHONE, "messages": TEXT, "deliveryTag": "x" * 101}, "inputs.deliveryTag"),
])
def test_pnp_rules_are_checked_before_sending(sb, inputs, path):
    with pytest.raises(InputError) as exc:
        run(sb, "line_send_pnp_push", inputs)
    assert any(d["path"] == path for d in exc.value.details), exc.value.details
    assert sb.requests == 0


@responses.activate
def test_pnp_is_never_resent_blindly():
    responses.add(responses.POST, LINE + "/bot/pnp/push", body=requests.exceptions.ReadTimeout("read timed out"))
    with pytest.raises(ActionError) as exc:
        run_action("line_send_pnp_push", TOKEN, {"to": PHONE, "messages": TEXT}, client=HttpClient(sleep=lambda s: None))
    assert len(responses.calls) == 1
    (result,) = exc.value.output
    assert result["delivery"] == "unknown" and "not resent" in result["note"]


def test_memberships(sb):
    (subs,) = run(sb, "line_get_membership_subscription", {"userId": USER})
    assert subs["json_body"]["subscriptions"][0]["membership"]["membershipId"] == DEMO_MEMBERSHIP_ID
    (plans,) = run(sb, "line_list_memberships", {})
    assert [p["membershipId"] for p in plans["json_body"]["memberships"]] == [DEMO_MEMBERSHIP_ID]
    results = run(sb, "line_get_membership_users", {"membershipId": DEMO_MEMBERSHIP_ID, "limit": 2,
                                                    "all_pages": True})
    assert len(results) == 2 and results[-1]["all_items"] == sb.line.membership_users[DEMO_MEMBERSHIP_ID]
    with pytest.raises(ActionError) as exc:
        run(sb, "line_get_membership_users", {"membershipId": 1})
    assert exc.value.output[0]["status_code"] == 404
    with pytest.raises(InputError):
        run(sb, "line_get_membership_users", {"membershipId": 0})


# ------------------------------------------------------------ LINE's OpenAPI judges

BODIES = [
    ("line_mark_as_read_by_user", {"userId": USER}, "MarkMessagesAsReadRequest"),
    ("line_send_pnp_push", {"to": PHONE, "messages": TEXT, "notificationDisabled": True, "deliveryTag": "t" * 16},
     "PnpMessagesRequest"),
]


@pytest.mark.parametrize("action,inputs,schema", BODIES, ids=[b[0] for b in BODIES])
def test_request_bodies_conform_to_the_openapi(action, inputs, schema):
    (request,) = run_action(action, TOKEN, inputs, dry_run=True)
    assert [e.message for e in validator(schema).iter_errors(request["body"])] == []
    assert "deliveryTag" not in request["body"]
    if "deliveryTag" in inputs:
        assert request["headers"]["X-Line-Delivery-Tag"] == inputs["deliveryTag"]


ANSWERS = [
    ("line_get_aggregation_unit_usage", {}, "GetAggregationUnitUsageResponse"),
    ("line_list_aggregation_units", {"limit": 1}, "GetAggregationUnitNameListResponse"),
    ("line_issue_link_token", {"userId": USER}, "IssueLinkTokenResponse"),
    ("line_get_pnp_sent_count", {"date": "20261122"}, "NumberOfMessagesResponse"),
    ("line_get_membership_subscription", {"userId": USER}, "GetMembershipSubscriptionResponse"),
    ("line_list_memberships", {}, "MembershipListResponse"),
    ("line_get_membership_users", {"membershipId": DEMO_MEMBERSHIP_ID, "limit": 1},
     "GetJoinedMembershipUsersResponse"),
]


@pytest.mark.parametrize("action,inputs,schema", ANSWERS, ids=[a[0] for a in ANSWERS])
def test_sandbox_answers_conform_to_the_openapi(sb, action, inputs, schema):
    (result,) = run(sb, action, inputs)
    assert [e.message for e in validator(schema).iter_errors(result["json_body"])] == []


# ------------------------------------------------------------ the official SDK against the sandbox

def test_the_sdk_drives_every_new_endpoint_and_deserializes_the_answers(sb):
    from linebot.v3.messaging import (
        ApiClient, ChatReference, Configuration, GetAggregationUnitNameListResponse,
        GetAggregationUnitUsageResponse, GetJoinedMembershipUsersResponse, GetMembershipSubscriptionResponse,
        IssueLinkTokenResponse, MarkMessagesAsReadRequest, MembershipListResponse, MessagingApi, MessagingApiBlob,
        NumberOfMessagesResponse, PnpMessagesRequest, TextMessage)

    config = Configuration(host=sb.url, access_token=sb.credentials["token"])
    with ApiClient(config) as client:
        api, blob = MessagingApi(client), MessagingApiBlob(client)
        assert bytes(blob.get_message_content_preview(DEMO_IMAGE_MESSAGE_ID)) == \
            sb.line.contents[DEMO_IMAGE_MESSAGE_ID]["data"]
        assert isinstance(api.get_aggregation_unit_usage(), GetAggregationUnitUsageResponse)
        first = api.get_aggregation_unit_name_list(limit="1")
        assert isinstance(first, GetAggregationUnitNameListResponse) and first.next
        assert api.get_aggregation_unit_name_list(limit="1", start=first.next).custom_aggregation_units
        assert isinstance(api.issue_link_token(USER), IssueLinkTokenResponse)
        api.mark_messages_as_read(MarkMessagesAsReadRequest(chat=ChatReference(user_id=USER)))
        api.push_messages_by_phone(PnpMessagesRequest(to=PHONE, messages=[TextMessage(text="hi")]),
                                   x_line_delivery_tag="sdk-delivery-tag-0001")
        assert sb.line.pnp_deliveries[-1]["delivery_tag"] == "sdk-delivery-tag-0001"
        assert isinstance(api.get_pnp_message_statistics("20261122"), NumberOfMessagesResponse)
        assert isinstance(api.get_membership_subscription(USER), GetMembershipSubscriptionResponse)
        assert isinstance(api.get_membership_list(), MembershipListResponse)
        users = api.get_joined_membership_users(DEMO_MEMBERSHIP_ID, limit=2)
        assert isinstance(users, GetJoinedMembershipUsersResponse) and users.next
    assert json.dumps(sb.line.marked_read_users) == json.dumps([USER])
