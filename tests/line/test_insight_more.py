"""Statistics per unit and rich menu statistics (SPEC 14): sandbox, LINE's
OpenAPI (insight.yml) and the official SDK (linebot.v3.insight).

Reference: developers.line.biz/en/reference/messaging-api/#get-statistics-per-unit
(customAggregationUnit ^[a-zA-Z0-9_]{1,30}$, from/to yyyyMMdd),
#get-rich-menu-insight-summary, #get-rich-menu-insight-daily.
"""
import pytest

from line_connector import InputError, run_action
from line_connector.sandbox import Sandbox
from line_connector.sandbox.line_richmenu import DEMO_RICH_MENU_ID
from openapi import validator

PERIOD = {"from": "20261101", "to": "20261107"}


@pytest.fixture
def sb():
    with Sandbox() as sandbox:
        yield sandbox


def run(sb, name, inputs):
    return run_action(name, sb.demo_assets()["line_channel_access_token"], inputs)


CASES = [
    ("line_get_unit_stats", dict(PERIOD, customAggregationUnit="promotion_a"), "GetStatisticsPerUnitResponse"),
    ("line_get_rich_menu_stats", dict(PERIOD, richMenuId=DEMO_RICH_MENU_ID), "GetRichMenuInsightSummaryResponse"),
    ("line_get_rich_menu_daily_stats", dict(PERIOD, richMenuId=DEMO_RICH_MENU_ID), "GetRichMenuInsightDailyResponse"),
]


@pytest.mark.parametrize("action,inputs,schema", CASES, ids=[c[0] for c in CASES])
def test_answers_conform_to_the_openapi_and_the_query_is_lines(sb, action, inputs, schema):
    (result,) = run(sb, action, inputs)
    assert [e.message for e in validator(schema, "insight.yml").iter_errors(result["json_body"])] == []
    (request,) = run_action(action, {"token": "t" * 20}, inputs, dry_run=True)
    assert request["params"] == {k: v for k, v in inputs.items() if k != "richMenuId"}


def test_daily_stats_have_one_entry_per_day(sb):
    (result,) = run(sb, "line_get_rich_menu_daily_stats", dict(PERIOD, richMenuId=DEMO_RICH_MENU_ID))
    assert [m["date"] for m in result["json_body"]["impression"]["metrics"]] == \
        ["202611%02d" % d for d in range(1, 8)]


@pytest.mark.parametrize("action,inputs,path", [
    ("line_get_unit_stats", dict(PERIOD, customAggregationUnit="promo-a"), "inputs.customAggregationUnit"),
    ("line_get_unit_stats", dict(PERIOD, customAggregationUnit="a" * 31), "inputs.customAggregationUnit"),
    ("line_get_unit_stats", {"customAggregationUnit": "u", "from": "20261107", "to": "20261101"}, "inputs.to"),
    ("line_get_rich_menu_stats", dict(PERIOD, richMenuId="richmenu-x/../../info"), "inputs.richMenuId"),
    ("line_get_rich_menu_daily_stats", {"richMenuId": DEMO_RICH_MENU_ID, "from": "2026-11-01", "to": "20261107"},
     "inputs.from"),
])
def test_rules_are_checked_before_sending(sb, action, inputs, path):
    with pytest.raises(InputError) as exc:
        run(sb, action, inputs)
    assert any(d["path"] == path for d in exc.value.details), exc.value.details
    assert sb.requests == 0


def test_the_sdk_reads_them_from_the_sandbox(sb):
    from linebot.v3.insight import (ApiClient, Configuration, GetRichMenuInsightDailyResponse,
                                    GetRichMenuInsightSummaryResponse, GetStatisticsPerUnitResponse, Insight)

    config = Configuration(host=sb.url, access_token=sb.credentials["token"])
    with ApiClient(config) as client:
        api = Insight(client)
        assert isinstance(api.get_statistics_per_unit("promotion_a", "20261101", "20261107"),
                          GetStatisticsPerUnitResponse)
        summary = api.get_rich_menu_insight_summary(DEMO_RICH_MENU_ID, "20261101", "20261107")
        assert isinstance(summary, GetRichMenuInsightSummaryResponse) and summary.clicks
        daily = api.get_rich_menu_insight_daily(DEMO_RICH_MENU_ID, "20261101", "20261107")
        assert isinstance(daily, GetRichMenuInsightDailyResponse) and len(daily.impression.metrics) == 7


@pytest.mark.parametrize("path", ["/v2/bot/insight/richmenu/%s/summary", "/v2/bot/insight/richmenu/%s/daily",
                                  "/v2/bot/insight/message/event/aggregation"])
@pytest.mark.parametrize("field,value", [("from", "00000000"), ("from", "２０２６１１０１"), ("to", "20261332")])
def test_the_sandbox_refuses_a_date_that_is_no_day_with_lines_400(sb, path, field, value):
    # found by the schemathesis run of LINE's insight.yml: "00000000" and
    # fullwidth digits passed a \d{8} check and crashed the day arithmetic (500);
    # LINE's rule (reference above): from/to are yyyyMMdd days, else 400
    import requests

    query = dict(PERIOD, customAggregationUnit="promotion_a", **{field: value})
    resp = requests.get(sb.url + (path % DEMO_RICH_MENU_ID if "%s" in path else path), params=query, timeout=10,
                        headers={"Authorization": "Bearer " + sb.credentials["token"]})
    assert resp.status_code == 400, resp.text
    assert resp.json()["details"][0]["property"] == field


@pytest.mark.parametrize("value", ["00000000", "２０２６１１０１"])
def test_the_pack_refuses_a_date_that_is_no_day_before_sending(sb, value):
    with pytest.raises(InputError) as exc:
        run(sb, "line_get_rich_menu_daily_stats", {"richMenuId": DEMO_RICH_MENU_ID, "from": value, "to": "20261107"})
    assert any(d["path"] == "inputs.from" for d in exc.value.details), exc.value.details
    assert sb.requests == 0
