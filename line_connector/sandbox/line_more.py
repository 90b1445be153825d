"""Emulation of content previews, aggregation units, link tokens,
mark-as-read by user ID, LINE notification messages by phone (PNP) and
memberships (developers.line.biz/en/reference/messaging-api/ and
/en/reference/partner-docs/; the anchors are in actions/line/messaging_more.py
and membership.py).

Bodies are judged by the pack's input schemas, as line.py does. Demo data:
two aggregation units used this month, the coupon ``DEMO_COUPON_ID``
(running), the membership plan
``DEMO_MEMBERSHIP_ID`` with the demo user (``line_users.DEMO_USER_ID``)
subscribed and 3 members, and a preview for each demo image or video message.
"""
import datetime
import re
import secrets

from .server import Reply

DEMO_AGGREGATION_UNITS = ["promotion_a", "promotion_b"]
DEMO_MEMBERSHIP_ID = 3189
DELIVERY_TAG_RE = re.compile(r"^[\x21-\x7e]{16,100}$")
USER_RE = re.compile(r"^U[0-9a-f]{32}$")


def install(state):
    from .line_users import DEMO_FOLLOWERS, DEMO_USER_ID

    state.aggregation_units = list(DEMO_AGGREGATION_UNITS)
    state.link_tokens = {}            # token -> userId
    state.marked_read_users = []      # user IDs marked read, in order
    state.pnp_deliveries = []         # {"to", "messages", "delivery_tag"}
    state.memberships = {DEMO_MEMBERSHIP_ID: {
        "membershipId": DEMO_MEMBERSHIP_ID, "title": "Gold", "description": "Members-only coupons",
        "benefits": ["Monthly coupon"], "price": 500.0, "currency": "JPY", "memberCount": 3,
        "memberLimit": 1000, "isInAppPurchase": False, "isPublished": True}}
    state.membership_users = {DEMO_MEMBERSHIP_ID: [DEMO_USER_ID] + list(DEMO_FOLLOWERS[1:3])}
    state.coupons = {DEMO_COUPON_ID: demo_coupon(DEMO_COUPON_ID, "Friends-only coupon", "RUNNING")}


def routes(emulator):
    from .line import body_error, checked_body, count_date, error

    state = emulator.state
    a = emulator.authed

    def body_by(schema, req):
        return checked_body(emulator, schema, req)

    def preview(req):
        with state.lock:
            entry = state.contents.get(req.params["messageId"])
        if entry is None or not entry["content_type"].startswith(("image/", "video/")):
            return error(404, "Not found")
        if entry["content_type"].startswith("image/"):
            return Reply(200, entry["data"], content_type=entry["content_type"])
        from .line_richmenu import demo_photo
        return Reply(200, demo_photo(), content_type="image/png")  # a video's preview is an image

    def aggregation_info(req):
        with state.lock:
            return Reply(200, {"numOfCustomAggregationUnits": len(state.aggregation_units)})

    def paged(items, req, default, most):
        """One page of ``items`` and its ``next`` (the offset as a token)."""
        try:
            limit = min(int(req.arg("limit", default)), most)
            start = int(req.arg("start", "0"))
        except ValueError:
            return None, None, body_error([("limit", "invalid")])
        if limit < 1 or start < 0:
            return None, None, body_error([("limit", "invalid")])
        page = items[start:start + limit]
        return page, (str(start + limit) if start + limit < len(items) else None), None

    def aggregation_list(req):
        with state.lock:
            units = list(state.aggregation_units)
        page, nxt, bad = paged(units, req, 100, 100)
        if bad:
            return bad
        body = {"customAggregationUnits": page}
        if nxt:
            body["next"] = nxt
        return Reply(200, body)

    def link_token(req):
        user_id = req.params["userId"]
        if not USER_RE.match(user_id):
            return error(400, "The value for the 'userId' parameter is invalid")
        token = secrets.token_urlsafe(24)
        with state.lock:
            state.link_tokens[token] = user_id
        return Reply(200, {"linkToken": token})

    def mark_read_by_user(req):
        body, bad = emulator.parse(req)
        if bad:
            return bad
        chat = body.get("chat")
        if set(body) != {"chat"} or not isinstance(chat, dict) or set(chat) != {"userId"} \
                or not isinstance(chat["userId"], str) or not USER_RE.match(chat["userId"]):
            return body_error([("chat.userId", "must be a user ID")])
        with state.lock:
            state.marked_read_users.append(chat["userId"])
        return Reply(200, {})

    def pnp_push(req):
        tag = req.header("x-line-delivery-tag")
        if tag is not None and not DELIVERY_TAG_RE.match(tag):
            return error(400, "The X-Line-Delivery-Tag header must be 16 to 100 characters")
        body, bad = body_by("line/pnp_push.input.json", req)
        if bad:
            return bad
        if "deliveryTag" in body:  # the pack's field: LINE takes it as a header only
            return body_error([("deliveryTag", "The property, deliveryTag, in the request body is invalid")])
        with state.lock:
            state.pnp_deliveries.append({"to": body["to"], "messages": len(body["messages"]), "delivery_tag": tag})
            state.daily[("pnp", state.today())] += len(body["messages"])
        return Reply(200, {})

    def pnp_count(req):
        date, bad = count_date(req)
        if bad:
            return bad
        if date >= state.today():
            return Reply(200, {"status": "unready"})
        with state.lock:
            return Reply(200, {"status": "ready", "success": state.daily[("pnp", date)]})

    def subscription(req):
        user_id = req.params["userId"]
        if not USER_RE.match(user_id):
            return error(400, "The value for the 'userId' parameter is invalid")
        with state.lock:
            subs = [{"membership": {k: plan[k] for k in ("membershipId", "title", "description", "benefits",
                                                          "price", "currency")},
                     "user": {"membershipNo": users.index(user_id) + 1, "joinedTime": 1767225600,
                              "nextBillingDate": "2027-01-01", "totalSubscriptionMonths": 11}}
                    for plan_id, plan in state.memberships.items()
                    for users in [state.membership_users.get(plan_id, [])] if user_id in users]
        if not subs:
            return error(404, "Not found")
        return Reply(200, {"subscriptions": subs})

    def membership_list(req):
        with state.lock:
            plans = [dict(plan) for plan in state.memberships.values()]
        return Reply(200, {"memberships": plans})

    def membership_users(req):
        try:
            plan_id = int(req.params["membershipId"])
        except ValueError:
            return error(400, "The value for the 'membershipId' parameter is invalid")
        with state.lock:
            users = state.membership_users.get(plan_id)
        if users is None:
            return error(404, "Not found")
        page, nxt, bad = paged(list(users), req, 300, 1000)
        if bad:
            return bad
        body = {"userIds": page}
        if nxt:
            body["next"] = nxt
        return Reply(200, body)

    return {
        **stats_routes(emulator),
        **coupon_routes(emulator),
        ("GET", "/v2/bot/message/{messageId}/content/preview"): a(preview),
        ("GET", "/v2/bot/message/aggregation/info"): a(aggregation_info),
        ("GET", "/v2/bot/message/aggregation/list"): a(aggregation_list),
        ("POST", "/v2/bot/user/{userId}/linkToken"): a(link_token),
        ("POST", "/v2/bot/message/markAsRead"): a(mark_read_by_user),
        ("POST", "/bot/pnp/push"): a(pnp_push),
        ("GET", "/v2/bot/message/delivery/pnp"): a(pnp_count),
        ("GET", "/v2/bot/membership/subscription/{userId}"): a(subscription),
        ("GET", "/v2/bot/membership/list"): a(membership_list),
        ("GET", "/v2/bot/membership/{membershipId}/users/ids"): a(membership_users),
    }


# ------------------------------------------------------------ statistics per unit, rich menu statistics

def stats_routes(emulator):
    """GET /v2/bot/insight/message/event/aggregation and the rich menu
    insight: fixed demo figures (the sandbox records no impressions), in
    LINE's shapes; a unit this month never used answers its zeros."""
    from .line import body_error, day_arg, error

    state = emulator.state
    a = emulator.authed

    def period(req):
        dates = {}
        for name in ("from", "to"):  # LINE's 400 names the first bad date
            dates[name], bad = day_arg(req, name)
            if bad:
                return None, bad
        if dates["to"] < dates["from"]:
            return None, body_error([("to", "must not be before from")])
        return dates, None

    def unit_stats(req):
        unit = req.arg("customAggregationUnit", "")
        if not re.fullmatch(r"[a-zA-Z0-9_]{1,30}", unit):
            return body_error([("customAggregationUnit", "invalid")])
        _, bad = period(req)
        if bad:
            return bad
        with state.lock:
            used = unit in state.aggregation_units
        n = 100 if used else 0
        return Reply(200, {"overview": {"uniqueImpression": n, "uniqueClick": n // 4, "uniqueMediaPlayed": 0,
                                        "uniqueMediaPlayed100Percent": 0},
                           "messages": [{"seq": 1, "impression": n, "uniqueImpression": n}] if used else [],
                           "clicks": [{"seq": 1, "url": "https://example.com/sale", "click": n // 4,
                                       "uniqueClick": n // 4, "uniqueClickOfRequest": n // 4}] if used else []})

    def menu_areas(menu_id):
        with state.lock:
            entry = state.richmenus.get(menu_id)
        return None if entry is None else [area["bounds"] for area in entry["menu"].get("areas", [])]

    def days(dates):
        first = datetime.datetime.strptime(dates["from"], "%Y%m%d")
        last = datetime.datetime.strptime(dates["to"], "%Y%m%d")
        count = min((last - first).days + 1, 31)
        return [(first + datetime.timedelta(days=i)).strftime("%Y%m%d") for i in range(count)]

    def summary(req):
        dates, bad = period(req)
        if bad:
            return bad
        areas = menu_areas(req.params["richMenuId"])
        if areas is None:
            return error(404, "Not found")
        span = len(days(dates))
        return Reply(200, {"richMenuId": req.params["richMenuId"], "metricsFrom": dates["from"],
                           "metricsTo": dates["to"],
                           "impression": {"metrics": {"count": 50 * span, "uniqueUsers": 20 * span}},
                           "clicks": [{"bounds": b, "metrics": {"count": 5 * span, "uniqueUsers": 2 * span}}
                                      for b in areas]})

    def daily(req):
        dates, bad = period(req)
        if bad:
            return bad
        areas = menu_areas(req.params["richMenuId"])
        if areas is None:
            return error(404, "Not found")
        each = days(dates)
        return Reply(200, {"richMenuId": req.params["richMenuId"], "metricsFrom": dates["from"],
                           "metricsTo": dates["to"],
                           "impression": {"metrics": [{"date": d, "count": 50, "uniqueUsers": 20} for d in each]},
                           "clicks": [{"bounds": b, "metrics": [{"date": d, "count": 5, "uniqueUsers": 2}
                                                                for d in each]} for b in areas]})

    return {
        ("GET", "/v2/bot/insight/message/event/aggregation"): a(unit_stats),
        ("GET", "/v2/bot/insight/richmenu/{richMenuId}/summary"): a(summary),
        ("GET", "/v2/bot/insight/richmenu/{richMenuId}/daily"): a(daily),
    }


# ------------------------------------------------------------ coupons

DEMO_COUPON_ID = "01JYNW8JMQVFBNWF1APF8Z3FS7"  # the form of LINE's own example (a ULID)


def demo_coupon(coupon_id, title, status):
    return {"couponId": coupon_id, "title": title, "status": status, "createdTimestamp": 1767571200,
            "description": "Show this screen to the staff.", "startTimestamp": 0, "endTimestamp": 1924959599,
            "timezone": "ASIA_TOKYO", "visibility": "UNLISTED", "maxUseCountPerTicket": 1,
            "acquisitionCondition": {"type": "normal"},
            "reward": {"type": "discount", "priceInfo": {"type": "fixed", "fixedAmount": 100}}}


def coupon_routes(emulator):
    """GET /v2/bot/coupon (status filter, limit 1..100, ``next``), GET and
    PUT .../close (410 once closed, as LINE answers)."""
    from .line import body_error, error, schema_problems

    state = emulator.state
    a = emulator.authed

    def listing(req):
        statuses = req.query.get("status") or []
        if any(s not in ("DRAFT", "RUNNING", "CLOSED") for s in statuses):
            return body_error([("status", "must be DRAFT, RUNNING or CLOSED")])
        try:
            limit, start = int(req.arg("limit", "20")), int(req.arg("start", "0"))
        except ValueError:
            return body_error([("limit", "invalid")])
        if not 1 <= limit <= 100 or start < 0:
            return body_error([("limit", "must be between 1 and 100")])
        with state.lock:
            found = [{"couponId": c["couponId"], "title": c["title"]} for c in state.coupons.values()
                     if not statuses or c["status"] in statuses]
        body = {"items": found[start:start + limit]}
        if start + limit < len(found):
            body["next"] = str(start + limit)
        return Reply(200, body)

    def get_one(req):
        with state.lock:
            coupon = state.coupons.get(req.params["couponId"])
        return Reply(200, dict(coupon)) if coupon else error(404, "Not found")

    def close(req):
        with state.lock:
            coupon = state.coupons.get(req.params["couponId"])
            if coupon is None:
                return error(404, "Not found")
            if coupon["status"] == "CLOSED":
                return error(410, "The coupon has already been discontinued")
            coupon["status"] = "CLOSED"
        return Reply(200, b"", content_type="text/plain")

    def create(req):
        body, bad = emulator.parse(req)
        if bad:
            return bad
        details = schema_problems("line/create_coupon.input.json", body)
        if not details and body["endTimestamp"] <= body["startTimestamp"]:
            details.append(("endTimestamp", "must be after startTimestamp"))
        if details:
            return body_error(details)
        alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # a ULID, as LINE's IDs are
        coupon_id = "".join(secrets.choice(alphabet) for _ in range(26))
        with state.lock:
            coupon = dict(body, couponId=coupon_id, status="RUNNING", createdTimestamp=int(state.clock()))
            state.coupons[coupon_id] = coupon
        return Reply(200, {"couponId": coupon_id})

    return {
        ("POST", "/v2/bot/coupon"): a(create),
        ("GET", "/v2/bot/coupon"): a(listing),
        ("GET", "/v2/bot/coupon/{couponId}"): a(get_one),
        ("PUT", "/v2/bot/coupon/{couponId}/close"): a(close),
    }
