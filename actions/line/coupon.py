"""Coupons: list, read, discontinue (developers.line.biz/en/reference/messaging-api/:
#get-coupons-list, #get-coupon, #discontinue-coupon).

Listing pages with ``next`` (``all_pages``); ``status`` is a repeated query
parameter. Discontinuing is final: a repeat after the first took effect is
refused with 410 Gone, so it is resent like a delete, and a 410 after a lost
answer is reported as most likely the first attempt's doing.
"""
from .base import LineAction, LinePagedAction


class ListCoupons(LinePagedAction):
    path = "/v2/bot/coupon"
    fields = ("status", "start", "limit")
    page_items = "items"


class GetCoupon(LineAction):
    path = "/v2/bot/coupon/{couponId}"


class CloseCoupon(LineAction):
    method = "PUT"
    path = "/v2/bot/coupon/{couponId}/close"
    idempotent = True
    destructive = True
    gone_on_repeat = (410, "the coupon is already discontinued", "discontinued it")

    def judge(self, request, result):
        # LINE answers 200 with no body (messaging-api.yml: "OK", no content)
        from .audience import DeleteAudience

        return DeleteAudience.judge_empty_ok(super().judge(request, result), result)
