"""LineAction: what every LINE Messaging API action shares.

A LINE action is mostly data: ``method``, ``path``, which inputs go in the
body or the query, and whether it carries ``X-Line-Retry-Key``. Subclasses
override ``build`` only when one call becomes several requests (chunking).

Paths may name inputs: ``/v2/bot/profile/{userId}``. Such a value is checked
against LINE's ID format for that name (``PATH_ID_RULES``) and percent-quoted
before it goes into the URL, so no input can add a path segment, a query or
another host; it never goes in the body or the query as well. ``paths``
lists alternatives (a group or a room): the one whose names are all given is
used. ``base_field = "data_url"`` sends to LINE's content host instead.
"""
import re
import uuid
from functools import cached_property
from urllib.parse import quote

from line_connector import ratelimit
from line_connector.action import Action
from line_connector.http import SAFE_RETRY, UNSENT_ONLY, Request, json_bytes

from .auth import line_auth

MAX_BODY_BYTES = 2 * 1024 * 1024
RETRY_KEY_HEADER = "X-Line-Retry-Key"
ACCEPTED_HEADER = "x-line-accepted-request-id"
REQUEST_ID_HEADER = "x-line-request-id"
DEFAULT_DATA_URL = "https://api-data.line.me"

#: LINE's ID formats, for inputs that go into a URL path (Messaging API
#: reference: "user ID", "group ID", "room ID" are U/C/R + 32 hex digits;
#: rich menu IDs "richmenu-" + 32 hex digits; message IDs and audience group
#: IDs are decimal numbers). Input schemas carry the same patterns; this is
#: the engine's own guard, so no class can put an unchecked value in a path.
PATH_ID_RULES = {
    "userId": (re.compile(r"U[0-9a-f]{32}\Z"), "a user ID: U followed by 32 lower-case hex digits"),
    "groupId": (re.compile(r"C[0-9a-f]{32}\Z"), "a group ID: C followed by 32 lower-case hex digits"),
    "roomId": (re.compile(r"R[0-9a-f]{32}\Z"), "a room ID: R followed by 32 lower-case hex digits"),
    "richMenuId": (re.compile(r"richmenu-[0-9a-f]{32}\Z"),
                   "a rich menu ID: richmenu- followed by 32 lower-case hex digits"),
    "messageId": (re.compile(r"[0-9]{1,32}\Z"), "a message ID: decimal digits"),
    "audienceGroupId": (re.compile(r"[1-9][0-9]{0,18}\Z"), "an audience group ID: a positive integer"),
    # #get-membership-user-ids: membershipId is an integer
    "membershipId": (re.compile(r"[1-9][0-9]{0,18}\Z"), "a membership plan ID: a positive integer"),
    # #get-coupon: LINE's coupon IDs are ULIDs (26 characters, e.g. 01JYNW8JMQVFBNWF1APF8Z3FS7,
    # docs/messaging-api/send-coupons-to-users); letters, digits, _ and - are let through
    "couponId": (re.compile(r"[0-9A-Za-z_-]{1,64}\Z"), "a coupon ID: 1-64 letters, digits, _ or -"),
    # #create-rich-menu-alias: richMenuAliasId ^[a-z0-9_-]{1,32}$
    "richMenuAliasId": (re.compile(r"[a-z0-9_-]{1,32}\Z"),
                        "a rich menu alias ID: 1-32 of a-z, 0-9, _ and -"),
}
_PLACEHOLDER = re.compile(r"\{([A-Za-z]+)\}")


class LineAction(Action):
    method = "GET"
    path = ""
    #: input names copied into the JSON body (POST) or the query (GET)
    fields = ()
    #: send X-Line-Retry-Key (push, multicast, narrowcast, broadcast only)
    retry_key = False
    #: True when resending cannot duplicate an effect (reads, validation);
    #: sends with a retry key are safe too, because LINE deduplicates them.
    idempotent = None
    #: alternative paths (e.g. a group's or a room's); the one whose
    #: ``{names}`` are all in the inputs is used
    paths = ()
    #: for a write resent like a read whose repeat is refused once the first
    #: attempt took effect (delete, leave): (LINE's status for "gone", what
    #: that answer means, what the first attempt did). After an attempt whose
    #: answer was lost, that refusal most likely means the first one worked;
    #: the note says so, never claiming it is known.
    gone_on_repeat = None
    #: the asset field holding the base URL: "url" (api.line.me) or
    #: "data_url" (api-data.line.me: content and rich menu images)
    base_field = "url"

    @cached_property
    def auth(self):
        return line_auth(self.asset_name, self.asset, self.redactor)

    @cached_property
    def channel(self):
        """Whose rate limits a request counts against (line_connector.ratelimit)."""
        return ratelimit.channel_digest(self.asset)

    def build(self, inputs):
        path = self.path_for(inputs)
        picked = {k: inputs[k] for k in self.fields if k in inputs}
        if self.method in ("GET", "DELETE"):
            return [self.line_request(params=picked or None, path=path)]
        # an endpoint without body fields (leave a group, set the default
        # rich menu) gets no body at all, as LINE's reference shows it
        body = picked if self.fields else None
        return [self.line_request(body=body, key=inputs.get("retry_key"), path=path)]

    # ------------------------------------------------------------ paths
    def path_for(self, inputs, template=None):
        """The request path with its ``{names}`` filled from ``inputs``:
        each value checked against LINE's ID format and percent-quoted.
        Raises InputError (nothing sent) naming the field and the rule."""
        if template is None:
            candidates = self.paths or (self.path,)
            usable = [p for p in candidates if all(n in inputs for n in _PLACEHOLDER.findall(p))]
            if len(usable) != 1:
                names = sorted({n for p in candidates for n in _PLACEHOLDER.findall(p)})
                raise self.input_error("", "give exactly one of %s" % ", ".join(names))
            template = usable[0]

        def fill(match):
            name = match.group(1)
            value = inputs.get(name)
            text = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
            rule = PATH_ID_RULES.get(name)
            if not isinstance(text, str) or rule is None or not rule[0].match(text):
                raise self.input_error(name, "must be %s" % (rule[1] if rule else "a known path parameter"))
            return quote(text, safe="")

        return _PLACEHOLDER.sub(fill, template)

    def url(self, path, base_field=None):
        field = base_field or self.base_field
        base = self.asset.get(field) or (DEFAULT_DATA_URL if field == "data_url" else None)
        if base is None:
            return super().url(path, field)
        return base.rstrip("/") + path

    def line_request(self, body=None, params=None, key=None, extra=None, path=None, data=None,
                     content_type=None, field="messages", method=None, audience=None):
        """One LINE request. ``key``: the caller's retry key (a fresh UUID if
        None). ``body``: JSON (refused before sending past 2 MB, naming the
        input ``field`` that makes it large); ``data``: raw bytes or a file
        object sent as is, with ``content_type``. ``method``: another than
        the action's (its rate-limit bucket is that method's endpoint's).
        ``audience``: the audienceGroupId a request adds IDs to (a JSON
        body's own ``audienceGroupId`` when not given), whose concurrency
        slot the request holds while in flight (ratelimit.AudienceLimiter)."""
        method = method or self.method
        headers, extra = {}, dict(extra or {})
        if data is not None:
            headers["Content-Type"] = content_type or "application/octet-stream"
        if body is not None:
            data = json_bytes(body)
            if len(data) > MAX_BODY_BYTES:
                raise self.input_error(field,
                                       "make a request body of %d bytes; LINE accepts at most 2 MB (%d)" % (len(data), MAX_BODY_BYTES))
            headers["Content-Type"] = "application/json"
        if self.retry_key:
            key = key or str(uuid.uuid4())
            headers[RETRY_KEY_HEADER] = key
            extra["retry_key"] = key
        idempotent = self.idempotent if self.idempotent is not None else (method == "GET" or self.retry_key)
        if audience is None and isinstance(body, dict):
            audience = body.get("audienceGroupId")
        limiter = ratelimit.limiter_for(self.channel, method, path or self.path,
                                        self.asset.get("rate_limit_factor", ratelimit.DEFAULT_FACTOR),
                                        audience=audience, base_url=self.asset.get("url", ""),
                                        store=self.state_store)
        return Request(method, self.url(path or self.path), params=params, headers=headers, body=data,
                       retry=SAFE_RETRY if idempotent else UNSENT_ONLY, auth=self.auth, extra=extra,
                       limiter=limiter)

    def judge(self, request, result):
        status = result["status_code"]
        headers = {k.lower(): v for k, v in result["response_headers"].items()}
        if REQUEST_ID_HEADER in headers:
            result["request_id"] = headers[REQUEST_ID_HEADER]
        if 200 <= status < 300:
            if not isinstance(result["json_body"], dict):  # LINE always answers a JSON object
                result["note"] = "malformed answer: LINE's %d response is not a JSON object" % status
                return False
            return True
        if status == 409 and ACCEPTED_HEADER in headers:
            result["accepted_request_id"] = headers[ACCEPTED_HEADER]
            if not self.accepted_is_ours(request, result):
                # LINE answers 409 whatever a repeat carries: this content may never have been delivered
                result["delivery"] = "unknown"
                result["note"] = (
                    "LINE has already accepted a request with this retry key (request id %s), but this pack "
                    "has no record that it carried this content, so this message may not have been "
                    "delivered; use a new retry_key to send it" % headers[ACCEPTED_HEADER])
                return False
            result.pop("delivery", None)  # the 409 settles what an earlier attempt left unknown
            result["note"] = ("already accepted: LINE accepted a request with this retry key before "
                              "(request id %s); nothing was sent twice" % headers[ACCEPTED_HEADER])
            return True
        if status == 429:  # LINE processed nothing; the note says the cause and what to do
            result["note"] = ratelimit.note_for_429(result)
        elif status == 401:
            result["note"] = "authentication failed: check the channel access token or client credentials"
        if result.get("delivery") == "unknown":
            gone = self.gone_on_repeat
            if gone and status == gone[0]:
                result["note"] = ("LINE answers %d: %s. An earlier attempt of this call may have reached LINE and %s, "
                                  "its answer lost; that is the likely reason, but it is not known" % gone)
            elif self.retry_key:
                result["note"] = ("outcome unknown: the request may have reached LINE; resending with the same "
                                  "retry_key (%s) is safe: LINE delivers it at most once" % result.get("retry_key"))
            elif request is not None and request.retry.retry_maybe_sent:
                # a read (or validation): resent like any request a repeat cannot harm,
                # so the note says how often, never "it was not resent"
                attempts = result.get("attempts", 1)
                result["note"] = ("outcome unknown: the request may have reached LINE; it was sent %d time%s "
                                  "without an answer; sending it again is safe: a repeat has no second effect"
                                  % (attempts, "" if attempts == 1 else "s"))
            else:
                result["note"] = ("outcome unknown: the request may have reached LINE; it was not resent "
                                  "because this endpoint has no retry key")
        return False

    def accepted_is_ours(self, request, result):
        """Whether a 409 + x-line-accepted-request-id is known to be the
        acceptance of this very content. LINE answers 409 to any request
        reusing an accepted key, whatever it carries, so the 409 alone proves
        nothing; here: only when it answers a retry within this call (an
        earlier attempt may have been processed). Sends that remember their
        keys' content know more (actions/line/send.py)."""
        return result.get("delivery") == "unknown" and result.get("attempts", 1) > 1

    def auth_rejected(self, result):
        return result["status_code"] == 401


class LinePagedAction(LineAction):
    """A LINE read that answers one page at a time.

    One page by default (the caller's ``start``/``page`` as given); with
    ``all_pages`` the engine follows the pages itself, at most ``max_pages``
    (default 20), one result per page as usual, and the last result carries
    ``all_items`` (every page's ``page_items``, in order) and
    ``pages_fetched`` -- the same shape as Sobot's paged queries. A failed
    page ends the walk and the action fails; the output holds the result of
    every page before it and the failed one, which carries ``all_items`` of
    the pages before it and ``pages_fetched`` (how many of them succeeded),
    so what was read is not lost.

    Two styles, as LINE has both: a continuation token (``next`` in the
    answer, sent back as ``start``: followers, member IDs) or page numbers
    (``page`` in the query, ``hasNextPage`` in the answer: audience lists).
    """
    #: the list in each page's answer, e.g. "userIds"
    page_items = None
    #: "token" (next -> start) or "number" (page, hasNextPage)
    paging = "token"
    default_max_pages = 20

    def execute(self, inputs):
        if not inputs.get("all_pages"):
            return super().execute(inputs)
        path = self.path_for(inputs)
        params = {k: inputs[k] for k in self.fields if k in inputs}
        limit = inputs.get("max_pages", self.default_max_pages)
        results, items, more = [], [], False
        for _ in range(limit):
            result = self.send_one(self.line_request(params=dict(params), path=path))
            results.append(result)
            if not result["ok"]:
                result["all_items"] = items
                result["pages_fetched"] = len(results) - 1
                return results, False
            payload = result["json_body"]
            got = payload.get(self.page_items)
            items.extend(got if isinstance(got, list) else [])
            more = self.next_params(params, payload)
            if not more:
                break
        last = results[-1]
        last["all_items"] = items
        last["pages_fetched"] = len(results)
        if more:
            last["note"] = ("stopped after max_pages=%d; more pages remain: raise max_pages, or continue "
                            "from this page's answer" % limit)
        return results, True

    def next_params(self, params, payload):
        """Update ``params`` for the next page; False when this was the last."""
        if self.paging == "token":
            token = payload.get("next")
            if not isinstance(token, str) or not token:
                return False
            params["start"] = token
            return True
        if payload.get("hasNextPage") is not True:
            return False
        page = payload.get("page", params.get("page", 1))
        params["page"] = (page if isinstance(page, int) and not isinstance(page, bool) else params.get("page", 1)) + 1
        return True
