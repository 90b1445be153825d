"""Our LINE schemas and request bodies against LINE's official OpenAPI, so
the two cannot drift apart silently."""
import json

import pytest

from helpers import USER
from line_connector import run_action
from line_connector.validation import iter_errors, load_schema_file
from message_corpus import INVALID_BOTH, INVALID_OURS, VALID
from openapi import discriminator_values, enum, validator

OURS = "line/messages.json"


def ours_errors(message):
    return list(iter_errors("line/validate.input.json", {"messages": [message]}))


def openapi_errors(message):
    return list(validator("Message").iter_errors(message))


@pytest.mark.parametrize("name", sorted(VALID))
def test_valid_messages_pass_both(name):
    assert ours_errors(VALID[name]) == []
    assert openapi_errors(VALID[name]) == []


@pytest.mark.parametrize("name", sorted(INVALID_BOTH))
def test_invalid_messages_fail_both(name):
    assert ours_errors(INVALID_BOTH[name]), "our schema accepts %s" % name
    assert openapi_errors(INVALID_BOTH[name]), "LINE's OpenAPI accepts %s" % name


@pytest.mark.parametrize("name", sorted(INVALID_OURS))
def test_documented_limits_beyond_the_openapi_fail_ours(name):
    assert ours_errors(INVALID_OURS[name]), "our schema accepts %s" % name


def test_message_and_action_types_match_the_openapi():
    defs = load_schema_file(OURS)["$defs"]
    assert set(defs["message"]["properties"]["type"]["enum"]) == discriminator_values("Message")
    assert set(defs["action"]["properties"]["type"]["enum"]) == discriminator_values("Action")
    assert set(defs["imagemapAction"]["properties"]["type"]["enum"]) == discriminator_values("ImagemapAction")
    assert set(defs["flexComponent"]["properties"]["type"]["enum"]) == discriminator_values("FlexComponent")
    template = defs["template"]["properties"]["template"]["properties"]["type"]["enum"]
    assert set(template) == discriminator_values("Template")


def test_narrowcast_enums_match_the_openapi():
    defs = load_schema_file("line/common.json")["$defs"]
    assert defs["ageFilter"]["properties"]["gte"]["enum"] == enum("AgeDemographic")
    assert defs["subscriptionPeriodFilter"]["properties"]["lt"]["enum"] == enum("SubscriptionPeriodDemographic")
    assert defs["areaFilter"]["properties"]["oneOf"]["items"]["enum"] == enum("AreaDemographic")
    assert defs["genderFilter"]["properties"]["oneOf"]["items"]["enum"] == enum("GenderDemographic")
    assert defs["appTypeFilter"]["properties"]["oneOf"]["items"]["enum"] == enum("AppTypeDemographic")
    assert set(defs["recipient"]["properties"]["type"]["enum"]) == discriminator_values("Recipient")
    assert set(defs["demographicFilter"]["properties"]["type"]["enum"]) == discriminator_values("DemographicFilter")


FIVE = [VALID[n] for n in ("text_emoji", "flex_bubble", "buttons", "imagemap", "quick_reply_and_sender")]
NARROWCAST = {"recipient": {"type": "operator", "and": [{"type": "audience", "audienceGroupId": 5614991017776},
                                                        {"type": "operator", "not": {"type": "redelivery",
                                                                                     "requestId": "5b59509c"}}]},
              "filter": {"demographic": {"type": "operator", "or": [
                  {"type": "age", "gte": "age_20", "lt": "age_40"}, {"type": "gender", "oneOf": ["female"]},
                  {"type": "area", "oneOf": ["jp_01", "jp_13"]}, {"type": "subscriptionPeriod", "gte": "day_7"},
                  {"type": "appType", "oneOf": ["ios"]}]}},
              "limit": {"max": 100, "upToRemainingQuota": True}}
BODIES = [
    ("line_send_push", {"to": USER, "messages": FIVE, "notificationDisabled": True,
                        "customAggregationUnits": ["unit_1"]}, "PushMessageRequest"),
    ("line_send_reply", {"replyToken": "r-token", "messages": FIVE}, "ReplyMessageRequest"),
    ("line_send_multicast", {"to": [USER], "messages": FIVE}, "MulticastRequest"),
    ("line_send_broadcast", {"messages": FIVE, "notificationDisabled": False}, "BroadcastRequest"),
    ("line_send_narrowcast", dict(NARROWCAST, messages=FIVE), "NarrowcastRequest"),
    ("line_display_loading_animation", {"chatId": USER, "loadingSeconds": 25}, "ShowLoadingAnimationRequest"),
] + [("line_validate_" + k, {"messages": FIVE}, "ValidateMessageRequest")
     for k in ("push", "reply", "multicast", "narrowcast", "broadcast")]


@pytest.mark.parametrize("action,inputs,request_schema", BODIES, ids=[b[0] for b in BODIES])
def test_request_bodies_conform_to_the_openapi(action, inputs, request_schema):
    (request,) = run_action(action, {"token": "t" * 20}, inputs, dry_run=True)
    errors = [e.message for e in validator(request_schema).iter_errors(request["body"])]
    assert errors == []
    assert json.dumps(request["body"], sort_keys=True) == json.dumps(
        {k: v for k, v in inputs.items() if k != "retry_key"}, sort_keys=True)
