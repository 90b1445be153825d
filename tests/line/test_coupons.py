"""Coupons: list, get, discontinue (SPEC 14): sandbox, LINE's OpenAPI and
the official SDK. Reference: developers.line.biz/en/reference/messaging-api/
#get-coupons-list (status filter, limit 1..100, ``next``), #get-coupon,
#discontinue-coupon (410 Gone once discontinued)."""
import pytest
import requests
import responses

from line_connector import ActionError, InputError, run_action
from line_connector.http import HttpClient
from line_connector.sandbox import Sandbox
from line_connector.sandbox.line_more import DEMO_COUPON_ID, demo_coupon
from openapi import validator

TOKEN = {"token": "t" * 20}


@pytest.fixture
def sb():
    with Sandbox() as sandbox:
        sandbox.line.coupons.update({"C%02d" % i: demo_coupon("C%02d" % i, "draft %d" % i, "DRAFT") for i in range(5)})
        yield sandbox


def run(sb, name, inputs):
    return run_action(name, sb.demo_assets()["line_channel_access_token"], inputs)


def test_list_filter_page_get_and_close(sb):
    results = run(sb, "line_list_coupons", {"status": ["DRAFT"], "limit": 2, "all_pages": True})
    assert len(results) == 3 and [c["couponId"] for c in results[-1]["all_items"]] == ["C%02d" % i for i in range(5)]
    assert [e.message for e in validator("MessagingApiPagerCouponListResponse").iter_errors(results[0]["json_body"])] == []
    (one,) = run(sb, "line_get_coupon", {"couponId": DEMO_COUPON_ID})
    assert [e.message for e in validator("CouponResponse").iter_errors(one["json_body"])] == []
    (closed,) = run(sb, "line_close_coupon", {"couponId": DEMO_COUPON_ID})
    assert closed["ok"] and sb.line.coupons[DEMO_COUPON_ID]["status"] == "CLOSED"
    with pytest.raises(ActionError) as exc:
        run(sb, "line_close_coupon", {"couponId": DEMO_COUPON_ID})
    assert exc.value.output[0]["status_code"] == 410


def test_the_status_filter_is_a_repeated_query_parameter(sb):
    seen = []
    original = sb.dispatch
    sb.dispatch = lambda incoming: seen.append(incoming) or original(incoming)
    run(sb, "line_list_coupons", {"status": ["DRAFT", "CLOSED"]})
    assert seen[-1].query["status"] == ["DRAFT", "CLOSED"]


@pytest.mark.parametrize("inputs,path", [({"couponId": "../../v2/bot/info"}, "inputs.couponId"),
                                         ({"couponId": "a" * 65}, "inputs.couponId")])
def test_coupon_ids_in_paths_are_checked(sb, inputs, path):
    with pytest.raises(InputError) as exc:
        run(sb, "line_get_coupon", inputs)
    assert exc.value.details[0]["path"] == path and sb.requests == 0


@responses.activate
def test_closing_is_resent_and_a_410_after_a_lost_answer_is_explained():
    url = "https://api.line.me/v2/bot/coupon/%s/close" % DEMO_COUPON_ID
    responses.add(responses.PUT, url, body=requests.exceptions.ReadTimeout("read timed out"))
    responses.add(responses.PUT, url, status=410, json={"message": "gone"})
    with pytest.raises(ActionError) as exc:
        run_action("line_close_coupon", TOKEN, {"couponId": DEMO_COUPON_ID}, client=HttpClient(sleep=lambda s: None))
    assert len(responses.calls) == 2 and "discontinued it" in exc.value.output[0]["note"]


def test_the_sdk_drives_them_against_the_sandbox(sb):
    from linebot.v3.messaging import (ApiClient, Configuration, CouponResponse, MessagingApi,
                                      MessagingApiPagerCouponListResponse)

    config = Configuration(host=sb.url, access_token=sb.credentials["token"])
    with ApiClient(config) as client:
        api = MessagingApi(client)
        page = api.list_coupon(status=["DRAFT"], limit=2)
        assert isinstance(page, MessagingApiPagerCouponListResponse) and page.next and len(page.items) == 2
        assert isinstance(api.get_coupon_detail(DEMO_COUPON_ID), CouponResponse)
        api.close_coupon(DEMO_COUPON_ID)
    assert sb.line.coupons[DEMO_COUPON_ID]["status"] == "CLOSED"


# ------------------------------------------------------------ create (#create-coupon)

COUPON = {"title": "Friends-only coupon", "description": "Show this screen to the staff.",
          "reward": {"type": "discount", "priceInfo": {"type": "fixed", "fixedAmount": 100}},
          "acquisitionCondition": {"type": "normal"}, "startTimestamp": 0, "endTimestamp": 1924959599,
          "timezone": "ASIA_TOKYO", "visibility": "UNLISTED", "maxUseCountPerTicket": 1}


def test_create_then_send_it_in_a_coupon_message(sb):
    (created,) = run(sb, "line_create_coupon", COUPON)
    coupon_id = created["json_body"]["couponId"]
    assert [e.message for e in validator("CouponCreateResponse").iter_errors(created["json_body"])] == []
    (got,) = run(sb, "line_get_coupon", {"couponId": coupon_id})
    assert got["json_body"]["title"] == COUPON["title"]
    (pushed,) = run(sb, "line_send_push", {"to": "U4af4980629a0b1c2d3e4f5a6b7c8d9e0",
                                           "messages": [{"type": "coupon", "couponId": coupon_id}]})
    assert pushed["ok"]


@pytest.mark.parametrize("change,path", [
    ({"title": "x" * 61}, "inputs.title"),
    ({"description": "x" * 1001}, "inputs.description"),
    ({"maxUseCountPerTicket": 2}, "inputs.maxUseCountPerTicket"),
    ({"visibility": "PRIVATE"}, "inputs.visibility"),
    ({"timezone": "Asia/Tokyo"}, "inputs.timezone"),
    ({"acquisitionCondition": {"type": "lottery", "lotteryProbability": 100, "maxAcquireCount": 10}},
     "inputs.acquisitionCondition"),
    ({"reward": {"type": "discount", "priceInfo": {"type": "percentage", "percentage": 0}}}, "inputs.reward"),
    ({"reward": {"type": "cashBack", "priceInfo": {"type": "explicit", "priceAfterDiscount": 1,
                                                    "originalPrice": 2}}}, "inputs.reward"),
    ({"endTimestamp": 0, "startTimestamp": 0}, "inputs.endTimestamp"),
    ({"imageUrl": "http://example.com/a.jpg"}, "inputs.imageUrl"),
])
def test_create_rules_are_checked_before_sending(sb, change, path):
    with pytest.raises(InputError) as exc:
        run(sb, "line_create_coupon", dict(COUPON, **change))
    assert any(d["path"].startswith(path) for d in exc.value.details), exc.value.details
    assert sb.requests == 0


@pytest.mark.parametrize("variant", [
    {"acquisitionCondition": {"type": "lottery", "lotteryProbability": 50, "maxAcquireCount": -1}},
    {"reward": {"type": "cashBack", "priceInfo": {"type": "percentage", "percentage": 10}}},
    {"reward": {"type": "discount", "priceInfo": {"type": "explicit", "priceAfterDiscount": 800,
                                                  "originalPrice": 1000}}},
    {"reward": {"type": "free"}, "maxUseCountPerTicket": -1, "visibility": "PUBLIC"},
])
def test_create_bodies_conform_to_the_openapi(variant):
    (request,) = run_action("line_create_coupon", TOKEN, dict(COUPON, **variant), dry_run=True)
    assert [e.message for e in validator("CouponCreateRequest").iter_errors(request["body"])] == []
    assert request["body"] == dict(COUPON, **variant)


@responses.activate
def test_create_is_never_resent_blindly():
    responses.add(responses.POST, "https://api.line.me/v2/bot/coupon",
                  body=requests.exceptions.ReadTimeout("read timed out"))
    with pytest.raises(ActionError) as exc:
        run_action("line_create_coupon", TOKEN, COUPON, client=HttpClient(sleep=lambda s: None))
    assert len(responses.calls) == 1 and "line_list_coupons" in exc.value.output[0]["note"]


def test_the_sdk_creates_a_coupon_in_the_sandbox(sb):
    from linebot.v3.messaging import ApiClient, Configuration, CouponCreateRequest, CouponCreateResponse, MessagingApi

    config = Configuration(host=sb.url, access_token=sb.credentials["token"])
    with ApiClient(config) as client:
        created = MessagingApi(client).create_coupon(CouponCreateRequest.from_dict(COUPON))
    assert isinstance(created, CouponCreateResponse) and created.coupon_id in sb.line.coupons
