"""Coupons: create, list, read, discontinue (developers.line.biz/en/reference/messaging-api/:
#create-coupon,
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


class CreateCoupon(LineAction):
    """POST /v2/bot/coupon: a coupon, answered with its couponId. A repeat
    creates a second coupon (and coupons cannot be edited or deleted, only
    discontinued), so it is sent once and never resent blindly; after an
    unknown outcome, line_list_coupons shows whether it was created."""
    method = "POST"
    path = "/v2/bot/coupon"
    fields = ("title", "description", "usageCondition", "imageUrl", "barcodeImageUrl", "couponCode",
              "startTimestamp", "endTimestamp", "maxUseCountPerTicket", "visibility", "timezone",
              "acquisitionCondition", "reward")

    def build(self, inputs):
        if inputs["endTimestamp"] <= inputs["startTimestamp"]:
            raise self.input_error("endTimestamp", "must come after startTimestamp (%d)" % inputs["startTimestamp"])
        return super().build(inputs)

    def judge(self, request, result):
        ok = super().judge(request, result)
        if result.get("delivery") == "unknown":
            result["note"] = ("outcome unknown: the request may have reached LINE and created the coupon; it was "
                              "not resent. Check line_list_coupons before creating it again (a coupon cannot be "
                              "deleted, only discontinued)")
        return ok
