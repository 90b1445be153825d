"""Sandbox emulation of LINE's profiles, followers, groups and rooms, mark as
read and insight endpoints, with demo data the docs examples and tests use.

What a caller sees is LINE's (developers.line.biz/en/reference/messaging-api/,
and the response schemas of LINE's OpenAPI, messaging-api.yml/insight.yml):

* profiles (#get-profile) only for friends of the account; anyone else, or
  an ID that is not one, is 404 ``{"message": "Not found"}``;
* follower IDs (#get-follower-ids): ``limit`` 1..1000 (300 when omitted),
  ``next`` while more remain, an opaque token sent back as ``start``; a bad
  ``limit`` or ``start`` is a 400 naming the parameter. The endpoint is for
  verified or premium accounts only: with ``state.followers_api_available``
  set to False (an unverified account) it answers 403 as LINE does. The demo
  account is verified, so the docs example works;
* group and room endpoints (#get-group-summary, #get-members-group-count,
  #get-group-member-user-ids (100 IDs a page), #get-group-member-profile,
  #leave-group, and the room forms): 404 for a chat the bot is not in, left
  chats included, and for a user who is not a member; leaving answers
  200 ``{}``, and leaving again 404;
* mark as read (#mark-as-read): 200 ``{}`` for a token the bot received, 400
  for any other; a body without the token is 400 with details;
* insight (#get-number-of-followers, #get-number-of-delivery-messages): date
  yyyyMMdd in UTC+9; today and later ``unready``, before the first counted
  day ``out_of_service``, past days ``ready`` with counts (the delivery
  counts include what was sent through the sandbox that day);
  #get-message-event answers for the demo narrowcast and for any narrowcast
  or broadcast sent to the sandbox, 404 for an unknown request ID;
  #get-demographic answers percentages per tile.

Demo data (module constants, so examples and tests name the same IDs):
``DEMO_FOLLOWERS`` (1,200 friends, ``DEMO_USER_ID`` first), ``DEMO_GROUP_ID``
(a named group with ``DEMO_GROUP_SIZE`` members), ``DEMO_ROOM_ID``,
``DEMO_MARK_AS_READ_TOKEN``, ``DEMO_INSIGHT_DATE`` and the demo narrowcast
``DEMO_NARROWCAST_ID`` of line.py.
"""
import base64
import datetime
import hashlib
import re

from .server import Reply

DEMO_USER_ID = "U4af4980629a0b1c2d3e4f5a6b7c8d9e0"
DEMO_USER_NAME = "LINE taro"


def _demo_id(prefix, label):
    return prefix + hashlib.sha256(label.encode("ascii")).hexdigest()[:32]


#: the account's friends: enough for several pages at LINE's default limit (300)
DEMO_FOLLOWER_COUNT = 1200
DEMO_FOLLOWERS = tuple([DEMO_USER_ID] + [_demo_id("U", "follower-%d" % i) for i in range(1, DEMO_FOLLOWER_COUNT)])
DEMO_GROUP_ID = _demo_id("C", "demo-group")
DEMO_GROUP_NAME = "Incident Response Team"
DEMO_GROUP_PICTURE = "https://profile.line-scdn.net/0hdemo-group-picture"
DEMO_GROUP_SIZE = 250
#: a member of the demo group who is not a friend (member profiles work for them, #get-group-member-profile)
DEMO_NON_FRIEND_MEMBER = _demo_id("U", "group-member-not-a-friend")
DEMO_ROOM_ID = _demo_id("R", "demo-room")
DEMO_ROOM_SIZE = 5
DEMO_MARK_AS_READ_TOKEN = "30yhdy232dhSBQi7XLo0zSpEbmNqTeUFQx6JkW"
#: a past day with insight figures (the demo narrowcast's day, line.DEMO_NARROWCAST)
DEMO_INSIGHT_DATE = "20260105"

MEMBER_PAGE = 100               # MembersIdsResponse: memberIds maxItems 100
FOLLOWERS_DEFAULT_LIMIT = 300   # #get-follower-ids: limit default 300
FOLLOWERS_MAX_LIMIT = 1000      # #get-follower-ids: limit maximum 1000
#: first days LINE has insight figures for; earlier dates answer out_of_service
FIRST_FOLLOWERS_DAY = "20161101"
FIRST_DELIVERIES_DAY = "20170301"

NOT_FOUND = "Not found"
NOT_AVAILABLE = "Access to this API is not available for your account"
BAD_MARK_AS_READ = "An invalid markAsReadToken is specified"
_INT = re.compile(r"[0-9]{1,9}\Z")


def _demo_profile(user_id, index):
    if user_id == DEMO_USER_ID:
        return {"userId": user_id, "displayName": DEMO_USER_NAME, "pictureUrl": "https://profile.line-scdn.net/0hdemo-taro",
                "statusMessage": "Hello, LINE!", "language": "en"}
    profile = {"userId": user_id, "displayName": "Friend %04d" % index}
    if index % 3:  # LINE omits pictureUrl, statusMessage, language when the user has none
        profile["pictureUrl"] = "https://profile.line-scdn.net/0hdemo-%04d" % index
    if index % 2:
        profile["statusMessage"] = "status %d" % index
    if index % 5:
        profile["language"] = ("ja", "th", "zh-TW", "en")[index % 4]
    return profile


def install(state):
    """The demo friend list, group, room, mark-as-read token and insight."""
    state.followers = list(DEMO_FOLLOWERS)
    state.profiles = {uid: _demo_profile(uid, i) for i, uid in enumerate(DEMO_FOLLOWERS)}
    state.profiles[DEMO_NON_FRIEND_MEMBER] = {"userId": DEMO_NON_FRIEND_MEMBER, "displayName": "Guest member",
                                              "pictureUrl": "https://profile.line-scdn.net/0hdemo-guest"}
    group_members = [DEMO_USER_ID, DEMO_NON_FRIEND_MEMBER] + list(DEMO_FOLLOWERS[1:DEMO_GROUP_SIZE - 1])
    state.groups = {DEMO_GROUP_ID: {"groupName": DEMO_GROUP_NAME, "pictureUrl": DEMO_GROUP_PICTURE,
                                    "members": group_members}}
    state.rooms = {DEMO_ROOM_ID: {"members": list(DEMO_FOLLOWERS[:DEMO_ROOM_SIZE])}}
    state.left_chats = []                        # (kind, id) in the order the bot left them
    state.mark_as_read_tokens = {DEMO_MARK_AS_READ_TOKEN}
    state.marked_read = []                       # tokens used, in order
    state.followers_api_available = True         # False: an unverified account (403 for follower IDs)


# ------------------------------------------------------------------ helpers
def _param_error(name, message):
    from .line import body_error

    return body_error([(name, message)])


def _not_found():
    from .line import error

    return error(404, NOT_FOUND)


def _token(kind, offset):
    """An opaque continuation token (LINE's are opaque too)."""
    return base64.urlsafe_b64encode(("%s:%d" % (kind, offset)).encode("ascii")).decode("ascii").rstrip("=")


def _offset(kind, token):
    """The offset a token stands for, or None when it is not one of ours."""
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode("ascii")
    except (ValueError, UnicodeDecodeError):
        return None
    name, _, number = text.partition(":")
    return int(number) if name == kind and _INT.match(number) else None


def _page(req, kind, items, size):
    """(page body, None) or (None, 400 reply) for a ``start``-token list."""
    start = req.arg("start")
    offset = 0
    if start is not None:
        offset = _offset(kind, start)
        if offset is None or offset > len(items):
            return None, _param_error("start", "The value for the 'start' parameter is invalid")
    chunk = items[offset:offset + size]
    body = {"userIds" if kind == "followers" else "memberIds": chunk}
    if offset + size < len(items):
        body["next"] = _token(kind, offset + size)
    return body, None


def _date_status(req, state, first_day):
    """(date, None) for a past counted day, or (None, reply): 400 for a bad
    date, the status-only answer for unready and out_of_service days."""
    date = req.arg("date")
    if date is None:
        return None, _param_error("date", "The 'date' parameter is required")
    try:
        valid = bool(re.fullmatch(r"[0-9]{8}", date)) and bool(datetime.datetime.strptime(date, "%Y%m%d"))
    except ValueError:
        valid = False
    if not valid:
        return None, _param_error("date", "The value for the 'date' parameter is invalid")
    if date < first_day:
        return None, Reply(200, {"status": "out_of_service"})
    if date >= state.today():  # counted the next day (UTC+9)
        return None, Reply(200, {"status": "unready"})
    return date, None


def _figure(date, salt, low, high):
    """A stable demo number for a day: the same date always reads the same."""
    digest = hashlib.sha256(("%s:%s" % (salt, date)).encode("ascii")).digest()
    return low + int.from_bytes(digest[:4], "big") % (high - low + 1)


# ------------------------------------------------------------------ routes
def routes(emulator):
    state = emulator.state

    def chat(kind, chat_id):
        table = state.groups if kind == "group" else state.rooms
        with state.lock:
            return table.get(chat_id)

    def profile(req):
        user_id = req.params["userId"]
        with state.lock:
            found = state.profiles.get(user_id) if user_id in state.followers else None
        return Reply(200, dict(found)) if found else _not_found()

    def followers(req):
        with state.lock:
            if not state.followers_api_available:
                from .line import error

                return error(403, NOT_AVAILABLE)
            items = list(state.followers)
        limit = req.arg("limit")
        size = FOLLOWERS_DEFAULT_LIMIT
        if limit is not None:
            if not _INT.match(limit) or not 1 <= int(limit) <= FOLLOWERS_MAX_LIMIT:
                return _param_error("limit", "The value for the 'limit' parameter is invalid: "
                                             "it must be between 1 and %d" % FOLLOWERS_MAX_LIMIT)
            size = int(limit)
        body, bad = _page(req, "followers", items, size)
        return bad or Reply(200, body)

    def group_summary(req):
        group_id = req.params["groupId"]
        found = chat("group", group_id)
        if not found:
            return _not_found()
        body = {"groupId": group_id, "groupName": found["groupName"]}
        if found.get("pictureUrl"):
            body["pictureUrl"] = found["pictureUrl"]
        return Reply(200, body)

    def member_count(kind):
        def handler(req):
            found = chat(kind, req.params[kind + "Id"])
            return Reply(200, {"count": len(found["members"])}) if found else _not_found()
        return handler

    def member_ids(kind):
        def handler(req):
            found = chat(kind, req.params[kind + "Id"])
            if not found:
                return _not_found()
            body, bad = _page(req, "members", list(found["members"]), MEMBER_PAGE)
            return bad or Reply(200, body)
        return handler

    def member_profile(kind):
        def handler(req):
            found = chat(kind, req.params[kind + "Id"])
            user_id = req.params["userId"]
            if not found or user_id not in found["members"]:
                return _not_found()
            with state.lock:
                full = state.profiles.get(user_id) or {"userId": user_id, "displayName": "Member"}
            # a member profile has no statusMessage or language (GroupUserProfileResponse)
            return Reply(200, {k: v for k, v in full.items() if k in ("userId", "displayName", "pictureUrl")})
        return handler

    def leave(kind):
        def handler(req):
            chat_id = req.params[kind + "Id"]
            table = state.groups if kind == "group" else state.rooms
            with state.lock:
                if table.pop(chat_id, None) is None:
                    return _not_found()
                state.left_chats.append((kind, chat_id))
            return Reply(200, {})
        return handler

    def mark_as_read(req):
        body, bad = emulator.parse(req)
        if bad:
            return bad
        from .line import body_error, error

        token = body.get("markAsReadToken")
        if not isinstance(token, str) or not token:
            return body_error([("markAsReadToken", "must be specified")])
        with state.lock:
            if token not in state.mark_as_read_tokens:
                return error(400, BAD_MARK_AS_READ)
            state.marked_read.append(token)
        return Reply(200, {})

    def followers_stats(req):
        date, answer = _date_status(req, state, FIRST_FOLLOWERS_DAY)
        if answer:
            return answer
        with state.lock:
            friends = len(state.followers)
        blocks = _figure(date, "blocks", 10, 120)
        return Reply(200, {"status": "ready", "followers": friends + blocks, "blocks": blocks,
                           "targetedReaches": friends * 3 // 4})

    def delivery_stats(req):
        date, answer = _date_status(req, state, FIRST_DELIVERIES_DAY)
        if answer:
            return answer
        with state.lock:
            sent = {kind: state.daily[(kind, date)] for kind in ("push", "reply", "multicast", "broadcast", "narrowcast")}
        body = {"status": "ready", "broadcast": _figure(date, "broadcast", 0, 5000),
                "targeting": _figure(date, "targeting", 0, 800), "autoResponse": _figure(date, "auto", 0, 50),
                "welcomeResponse": _figure(date, "welcome", 0, 20), "chat": _figure(date, "chat", 0, 30)}
        for kind, count in sent.items():
            body["api" + kind.capitalize()] = count
        if date == DEMO_INSIGHT_DATE:
            body["apiNarrowcast"] += 1000  # the demo narrowcast of that day (line.DEMO_NARROWCAST)
        return Reply(200, body)

    def message_event(req):
        request_id = req.arg("requestId")
        if not request_id:
            return _param_error("requestId", "The 'requestId' parameter is required")
        with state.lock:
            job = state.narrowcasts.get(request_id)
            broadcast = next((d for d in state.deliveries if d["request_id"] == request_id
                              and d["kind"] == "broadcast"), None)
        if job is None and broadcast is None:
            return _not_found()
        delivered = job["target"] if job else len(broadcast["to"])
        impressions = delivered * 3 // 5
        clicks = delivered // 4
        when = job["accepted"] if job else None
        timestamp = (int(datetime.datetime.fromisoformat(when).timestamp()) if when
                     else int(state.clock()))
        return Reply(200, {
            "overview": {"requestId": request_id, "timestamp": timestamp, "delivered": delivered,
                         "uniqueImpression": impressions, "uniqueClick": clicks, "uniqueMediaPlayed": 0,
                         "uniqueMediaPlayed100Percent": 0},
            "messages": [{"seq": 1, "impression": impressions + clicks, "mediaPlayed": 0,
                          "mediaPlayed25Percent": 0, "mediaPlayed50Percent": 0, "mediaPlayed75Percent": 0,
                          "mediaPlayed100Percent": 0, "uniqueMediaPlayed": 0, "uniqueMediaPlayed25Percent": 0,
                          "uniqueMediaPlayed50Percent": 0, "uniqueMediaPlayed75Percent": 0,
                          "uniqueMediaPlayed100Percent": 0}],
            "clicks": [{"seq": 1, "url": "https://line.me/", "click": clicks + 7, "uniqueClick": clicks,
                        "uniqueClickOfRequest": clicks}],
        })

    def demographics(req):
        return Reply(200, {
            "available": True,
            "genders": [{"gender": "unknown", "percentage": 37.6}, {"gender": "male", "percentage": 31.8},
                        {"gender": "female", "percentage": 30.6}],
            "ages": [{"age": "unknown", "percentage": 37.6}, {"age": "from20to24", "percentage": 21.4},
                     {"age": "from30to34", "percentage": 23.7}, {"age": "from50", "percentage": 17.3}],
            "areas": [{"area": "unknown", "percentage": 42.9}, {"area": "東京", "percentage": 38.5},
                      {"area": "大阪", "percentage": 18.6}],
            "appTypes": [{"appType": "ios", "percentage": 62.4}, {"appType": "android", "percentage": 27.7},
                         {"appType": "others", "percentage": 9.9}],
            "subscriptionPeriods": [{"subscriptionPeriod": "over365days", "percentage": 96.4},
                                    {"subscriptionPeriod": "within365days", "percentage": 3.6}],
        })

    table = {
        ("GET", "/v2/bot/profile/{userId}"): profile,
        ("GET", "/v2/bot/followers/ids"): followers,
        ("GET", "/v2/bot/group/{groupId}/summary"): group_summary,
        ("POST", "/v2/bot/chat/markAsRead"): mark_as_read,
        ("GET", "/v2/bot/insight/followers"): followers_stats,
        ("GET", "/v2/bot/insight/message/delivery"): delivery_stats,
        ("GET", "/v2/bot/insight/message/event"): message_event,
        ("GET", "/v2/bot/insight/demographic"): demographics,
    }
    for kind in ("group", "room"):
        base = "/v2/bot/%s/{%sId}" % (kind, kind)
        table[("GET", base + "/members/count")] = member_count(kind)
        table[("GET", base + "/members/ids")] = member_ids(kind)
        table[("GET", base + "/member/{userId}")] = member_profile(kind)
        table[("POST", base + "/leave")] = leave(kind)
    return {route: emulator.authed(handler) for route, handler in table.items()}
