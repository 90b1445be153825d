"""Insight (issue 15): followers and deliveries per day, interaction
statistics of a narrowcast/broadcast, friend demographics. Each action from
the CLI against the sandbox and with ``responses``, success and failure;
requests and the sandbox's answers judged by LINE's OpenAPI (insight.yml)
and by the official SDK's insight models.

Rules are LINE's (developers.line.biz/en/reference/messaging-api/):
#get-number-of-followers and #get-number-of-delivery-messages (date
yyyyMMdd in UTC+9; status ready / unready / out_of_service),
#get-message-event (requestId: the X-Line-Request-Id of a narrowcast or
broadcast, #response-headers), #get-demographic."""
import datetime
import json
import re

import pytest
import responses

from helpers import LINE, TEXT, TOKEN, TOKEN_ASSET
from line_connector import ActionError, InputError, run_action
from line_connector.http import HttpClient
from line_connector.sandbox import DEMO_NARROWCAST_ID, Sandbox
from line_connector.sandbox.line_users import DEMO_INSIGHT_DATE
from line_users_openapi import answer_problems, request_problems

KST = datetime.timezone(datetime.timedelta(hours=9))
INSIGHT = "insight.yml"

CASES = [
    # action, inputs, path, query LINE must see
    ("line_get_followers_stats", {"date": DEMO_INSIGHT_DATE}, "/v2/bot/insight/followers", {"date": DEMO_INSIGHT_DATE}),
    ("line_get_delivery_stats", {"date": DEMO_INSIGHT_DATE}, "/v2/bot/insight/message/delivery",
     {"date": DEMO_INSIGHT_DATE}),
    ("line_get_message_event_stats", {"requestId": DEMO_NARROWCAST_ID}, "/v2/bot/insight/message/event",
     {"requestId": DEMO_NARROWCAST_ID}),
    ("line_get_demographics", {}, "/v2/bot/insight/demographic", {}),
]
IDS = [c[0] for c in CASES]


def run(name, inputs, **kw):
    return run_action(name, TOKEN_ASSET, inputs, client=HttpClient(sleep=lambda s: None), **kw)


def asset_of(sandbox):
    return sandbox.demo_assets()["line_channel_access_token"]


# ------------------------------------------------------------ responses
@pytest.mark.parametrize("name,inputs,path,query", CASES, ids=IDS)
@responses.activate
def test_request_is_what_lines_openapi_declares(name, inputs, path, query):
    from urllib.parse import parse_qsl, urlsplit

    responses.get(LINE + path, json={"status": "ready"}, headers={"X-Line-Request-Id": "rid-1"})
    (result,) = run(name, inputs)
    assert result["ok"] and result["request_id"] == "rid-1"
    sent = responses.calls[0].request
    assert request_problems("GET", sent.url, sent.body, INSIGHT) == []
    assert dict(parse_qsl(urlsplit(sent.url).query)) == query and sent.body is None


@pytest.mark.parametrize("name,inputs,path,query", CASES, ids=IDS)
@responses.activate
def test_reads_are_retried_and_a_refusal_keeps_lines_answer(name, inputs, path, query):
    responses.get(LINE + path, status=500, json={"message": "Internal error"})
    responses.get(LINE + path, status=400, json={"message": "The request body has 1 error(s)",
                                                 "details": [{"message": "invalid", "property": "date"}]},
                  headers={"X-Line-Request-Id": "rid-400"})
    with pytest.raises(ActionError) as exc:
        run(name, inputs)
    (result,) = exc.value.output
    assert result["attempts"] == 2 and result["status_code"] == 400
    assert result["json_body"]["details"] == [{"message": "invalid", "property": "date"}]
    assert result["response_headers"]["X-Line-Request-Id"] == "rid-400" == result["request_id"]


@pytest.mark.parametrize("name,inputs,field", [
    ("line_get_followers_stats", {}, "inputs.date"),
    ("line_get_followers_stats", {"date": "2026-01-05"}, "inputs.date"),
    ("line_get_followers_stats", {"date": "20260230"}, "inputs.date"),   # not a calendar day
    ("line_get_delivery_stats", {"date": 20260105}, "inputs.date"),
    ("line_get_delivery_stats", {"date": "2026010"}, "inputs.date"),
    ("line_get_message_event_stats", {}, "inputs.requestId"),
    ("line_get_message_event_stats", {"requestId": ""}, "inputs.requestId"),
    ("line_get_message_event_stats", {"requestId": "../../v2/bot/info"}, "inputs.requestId"),
    ("line_get_message_event_stats", {"requestId": "d5a3c1e2&date=1"}, "inputs.requestId"),
    ("line_get_demographics", {"date": DEMO_INSIGHT_DATE}, "inputs.date"),
])
@responses.activate
def test_bad_inputs_are_refused_before_anything_is_sent(name, inputs, field):
    with pytest.raises(InputError) as exc:
        run(name, inputs)
    assert field in [d["path"] for d in exc.value.details], exc.value.details
    assert len(responses.calls) == 0


# ------------------------------------------------------------ sandbox
@pytest.mark.parametrize("name,inputs,path,query", CASES, ids=IDS)
def test_every_action_runs_from_the_cli_against_the_sandbox(cli, name, inputs, path, query):
    with Sandbox() as sb:
        code, out, err = cli("run", name, stdin={"asset": asset_of(sb), "inputs": inputs})
        assert code == 0, err
        (result,) = json.loads(out)
        assert result["ok"] and result["status_code"] == 200 and result["request_id"]
        assert answer_problems("GET", LINE + path, 200, result["json_body"], INSIGHT) == []
        if "date" in inputs:
            assert result["json_body"]["status"] == "ready"
        assert TOKEN not in out + err

        bad = dict(asset_of(sb), token="revoked-token-123")
        code, out, err = cli("run", name, stdin={"asset": bad, "inputs": inputs})
        assert code == 1 and json.loads(out)[0]["status_code"] == 401 and "revoked-token-123" not in out + err


def test_an_unknown_request_id_is_a_404_from_the_cli(cli, line_sandbox):
    code, out, err = cli("run", "line_get_message_event_stats",
                         stdin={"asset": asset_of(line_sandbox), "inputs": {"requestId": "0" * 8 + "-0000-4000-8000-" + "0" * 12}})
    assert code == 1, err
    (result,) = json.loads(out)
    assert result["status_code"] == 404 and result["json_body"] == {"message": "Not found"}
    assert result["response_headers"]["X-Line-Request-Id"]


@pytest.mark.parametrize("name", ["line_get_followers_stats", "line_get_delivery_stats"])
def test_days_are_lines_utc_plus_9_days_with_their_status(line_sandbox, name):
    """Today (UTC+9) and later are unready, far past days out_of_service,
    earlier days ready; every answer fits the OpenAPI schema."""
    today = datetime.datetime.now(KST)
    path = "/v2/bot/insight/followers" if name == "line_get_followers_stats" else "/v2/bot/insight/message/delivery"
    for date, status in ((today.strftime("%Y%m%d"), "unready"),
                         ((today + datetime.timedelta(days=3)).strftime("%Y%m%d"), "unready"),
                         ("20160101", "out_of_service"),
                         ((today - datetime.timedelta(days=2)).strftime("%Y%m%d"), "ready")):
        (result,) = run_action(name, {}, {"date": date}, sandbox=line_sandbox)
        body = result["json_body"]
        assert body["status"] == status, date
        assert (len(body) > 1) == (status == "ready")   # counts only when ready
        assert answer_problems("GET", LINE + path, 200, body, INSIGHT) == []


def test_delivery_counts_include_what_the_sandbox_sent_that_day(line_sandbox):
    run_action("line_send_push", {}, {"to": "U" + "1" * 32, "messages": TEXT * 2}, sandbox=line_sandbox)
    run_action("line_send_broadcast", {}, {"messages": TEXT}, sandbox=line_sandbox)
    day = line_sandbox.line.today()
    real_clock = line_sandbox.line.clock
    line_sandbox.line.clock = lambda: real_clock() + 86400   # the next day: the sent day is counted
    (result,) = run_action("line_get_delivery_stats", {}, {"date": day}, sandbox=line_sandbox)
    body = result["json_body"]
    assert body["status"] == "ready" and body["apiPush"] == 2
    assert body["apiBroadcast"] == line_sandbox.line.friends


def test_message_event_for_a_narrowcast_sent_to_the_sandbox(line_sandbox):
    (sent,) = run_action("line_send_narrowcast", {}, {"messages": TEXT, "limit": {"max": 40}}, sandbox=line_sandbox)
    (stats,) = run_action("line_get_message_event_stats", {}, {"requestId": sent["request_id"]}, sandbox=line_sandbox)
    body = stats["json_body"]
    assert body["overview"]["requestId"] == sent["request_id"] and body["overview"]["delivered"] == 40
    assert answer_problems("GET", LINE + "/v2/bot/insight/message/event", 200, body, INSIGHT) == []


def test_the_official_sdk_reads_the_sandboxs_insight_into_its_models():
    insight = pytest.importorskip("linebot.v3.insight")
    with Sandbox() as sb:
        config = insight.Configuration(host=sb.url, access_token=sb.credentials["token"])
        with insight.ApiClient(config) as client:
            api = insight.Insight(client)
            followers = api.get_number_of_followers(var_date=DEMO_INSIGHT_DATE)
            assert isinstance(followers, insight.GetNumberOfFollowersResponse) and followers.status == "ready"
            assert followers.followers > followers.blocks > 0
            deliveries = api.get_number_of_message_deliveries(var_date=DEMO_INSIGHT_DATE)
            assert isinstance(deliveries, insight.GetNumberOfMessageDeliveriesResponse)
            assert deliveries.api_narrowcast == 1000
            event = api.get_message_event(request_id=DEMO_NARROWCAST_ID)
            assert isinstance(event, insight.GetMessageEventResponse) and event.overview.delivered == 1000
            demo = api.get_friends_demographics()
            assert isinstance(demo, insight.GetFriendsDemographicsResponse) and demo.available
            assert abs(sum(t.percentage for t in demo.genders) - 100) < 0.01
            with pytest.raises(insight.ApiException) as exc:
                api.get_number_of_followers(var_date="20260230")  # 8 digits, no such day
            assert exc.value.status == 400
            assert [d["property"] for d in json.loads(exc.value.body)["details"]] == ["date"]
            assert re.fullmatch(r"[0-9a-f-]{36}", exc.value.headers["X-Line-Request-Id"])
