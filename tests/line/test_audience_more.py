"""Click and impression audiences, renaming, shared audiences (SPEC 14):
sandbox, LINE's OpenAPI (manage-audience.yml) and the official SDK.

Reference: developers.line.biz/en/reference/messaging-api/#create-click-audience-group
(description max 120, requestId of a broadcast or narrowcast of the last 60
days, clickUrl max 2000), #create-imp-audience-group,
#set-description-audience-group, #get-shared-audience, #get-shared-audience-list.
"""
import pytest
import requests
import responses

from helpers import TEXT
from line_connector import ActionError, InputError, run_action
from line_connector.http import HttpClient
from line_connector.sandbox import DEMO_NARROWCAST_ID, Sandbox
from line_connector.sandbox.line_audience import DEMO_AUDIENCE_ID, DEMO_SHARED_AUDIENCE_ID
from openapi import validator

SPEC = "manage-audience.yml"
TOKEN = {"token": "t" * 20}


@pytest.fixture
def sb():
    with Sandbox() as sandbox:
        yield sandbox


def run(sb, name, inputs):
    return run_action(name, sb.demo_assets()["line_channel_access_token"], inputs)


def test_click_and_impression_audiences_from_a_broadcast(sb):
    (sent,) = run(sb, "line_send_broadcast", {"messages": TEXT})
    request_id = sent["request_id"]
    (click,) = run(sb, "line_create_click_audience", {"description": "clicked", "requestId": request_id,
                                                      "clickUrl": "https://example.com/sale"})
    assert click["status_code"] == 202 and click["json_body"]["type"] == "CLICK"
    assert [e.message for e in validator("CreateClickBasedAudienceGroupResponse", SPEC)
            .iter_errors(click["json_body"])] == []
    (imp,) = run(sb, "line_create_impression_audience", {"description": "saw", "requestId": DEMO_NARROWCAST_ID})
    assert [e.message for e in validator("CreateImpBasedAudienceGroupResponse", SPEC)
            .iter_errors(imp["json_body"])] == []
    (got,) = run(sb, "line_get_audience", {"audienceGroupId": click["json_body"]["audienceGroupId"]})
    assert got["json_body"]["audienceGroup"]["clickUrl"] == "https://example.com/sale"
    with pytest.raises(ActionError) as exc:  # no such message: LINE's 400
        run(sb, "line_create_impression_audience", {"description": "x",
                                                    "requestId": "00000000-0000-4000-8000-000000000000"})
    assert exc.value.output[0]["status_code"] == 400


@pytest.mark.parametrize("inputs,path", [
    ({"description": "x" * 121, "requestId": DEMO_NARROWCAST_ID}, "inputs.description"),
    ({"description": "ok", "requestId": "not-a-request-id"}, "inputs.requestId"),
    ({"description": "ok", "requestId": DEMO_NARROWCAST_ID, "clickUrl": "https://e.x/" + "a" * 2000},
     "inputs.clickUrl"),
])
def test_rules_are_checked_before_sending(sb, inputs, path):
    with pytest.raises(InputError) as exc:
        run(sb, "line_create_click_audience", inputs)
    assert any(d["path"] == path for d in exc.value.details)
    assert sb.requests == 0


@responses.activate
def test_creating_an_audience_is_sent_once():
    responses.add(responses.POST, "https://api.line.me/v2/bot/audienceGroup/imp",
                  body=requests.exceptions.ReadTimeout("read timed out"))
    with pytest.raises(ActionError) as exc:
        run_action("line_create_impression_audience", TOKEN, {"description": "d", "requestId": DEMO_NARROWCAST_ID},
                   client=HttpClient(sleep=lambda s: None))
    assert len(responses.calls) == 1 and exc.value.output[0]["delivery"] == "unknown"


def test_rename_and_shared_audiences(sb):
    (renamed,) = run(sb, "line_update_audience_description", {"audienceGroupId": DEMO_AUDIENCE_ID,
                                                             "description": "renamed"})
    assert renamed["ok"] and sb.line.audiences[DEMO_AUDIENCE_ID]["description"] == "renamed"
    (shared,) = run(sb, "line_get_shared_audience", {"audienceGroupId": DEMO_SHARED_AUDIENCE_ID})
    assert [e.message for e in validator("GetSharedAudienceDataResponse", SPEC).iter_errors(shared["json_body"])] == []
    assert shared["json_body"]["owner"]["name"]
    results = run(sb, "line_list_shared_audiences", {"includesOwnedAudienceGroups": True, "size": 1,
                                                     "all_pages": True})
    assert len(results) == 2 and len(results[-1]["all_items"]) == 2
    assert [e.message for e in validator("GetSharedAudienceGroupsResponse", SPEC)
            .iter_errors(results[0]["json_body"])] == []


def test_request_bodies_conform_to_the_openapi():
    for action, inputs, schema in [
            ("line_create_click_audience", {"description": "d", "requestId": DEMO_NARROWCAST_ID,
                                            "clickUrl": "https://e.x/a"}, "CreateClickBasedAudienceGroupRequest"),
            ("line_create_impression_audience", {"description": "d", "requestId": DEMO_NARROWCAST_ID},
             "CreateImpBasedAudienceGroupRequest"),
            ("line_update_audience_description", {"audienceGroupId": 5, "description": "d"},
             "UpdateAudienceGroupDescriptionRequest")]:
        (request,) = run_action(action, TOKEN, inputs, dry_run=True)
        assert [e.message for e in validator(schema, SPEC).iter_errors(request["body"])] == []
    (request,) = run_action("line_list_shared_audiences", TOKEN, {"includesOwnedAudienceGroups": True},
                            dry_run=True)
    assert request["params"] == {"page": 1, "includesOwnedAudienceGroups": "true"}


def test_the_sdk_drives_them_against_the_sandbox(sb):
    from linebot.v3.audience import (ApiClient, Configuration, CreateClickBasedAudienceGroupRequest,
                                     CreateClickBasedAudienceGroupResponse, CreateImpBasedAudienceGroupRequest,
                                     CreateImpBasedAudienceGroupResponse, GetSharedAudienceDataResponse,
                                     GetSharedAudienceGroupsResponse, ManageAudience,
                                     UpdateAudienceGroupDescriptionRequest)

    config = Configuration(host=sb.url, access_token=sb.credentials["token"])
    with ApiClient(config) as client:
        api = ManageAudience(client)
        click = api.create_click_based_audience_group(CreateClickBasedAudienceGroupRequest(
            description="sdk click", request_id=DEMO_NARROWCAST_ID))
        assert isinstance(click, CreateClickBasedAudienceGroupResponse)
        imp = api.create_imp_based_audience_group(CreateImpBasedAudienceGroupRequest(
            description="sdk imp", request_id=DEMO_NARROWCAST_ID))
        assert isinstance(imp, CreateImpBasedAudienceGroupResponse)
        api.update_audience_group_description(click.audience_group_id,
                                              UpdateAudienceGroupDescriptionRequest(description="sdk renamed"))
        assert sb.line.audiences[click.audience_group_id]["description"] == "sdk renamed"
        assert isinstance(api.get_shared_audience_data(DEMO_SHARED_AUDIENCE_ID), GetSharedAudienceDataResponse)
        assert isinstance(api.get_shared_audience_groups(page=1), GetSharedAudienceGroupsResponse)
