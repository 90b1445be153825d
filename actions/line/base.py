"""LineAction: what every LINE Messaging API action shares.

A LINE action is mostly data: ``method``, ``path``, which inputs go in the
body or the query, and whether it carries ``X-Line-Retry-Key``. Subclasses
override ``build`` only when one call becomes several requests (chunking).
"""
import uuid
from functools import cached_property

from line_connector.action import Action
from line_connector.http import SAFE_RETRY, UNSENT_ONLY, Request, json_bytes

from .auth import line_auth

MAX_BODY_BYTES = 2 * 1024 * 1024
RETRY_KEY_HEADER = "X-Line-Retry-Key"
ACCEPTED_HEADER = "x-line-accepted-request-id"
REQUEST_ID_HEADER = "x-line-request-id"


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

    @cached_property
    def auth(self):
        return line_auth(self.asset_name, self.asset, self.redactor)

    def build(self, inputs):
        picked = {k: inputs[k] for k in self.fields if k in inputs}
        if self.method == "GET":
            return [self.line_request(params=picked or None)]
        return [self.line_request(body=picked, key=inputs.get("retry_key"))]

    def line_request(self, body=None, params=None, key=None, extra=None, path=None):
        """One LINE request. ``key``: the caller's retry key (a fresh UUID if
        None). Raises InputError before sending if the body passes 2 MB."""
        headers, extra = {}, dict(extra or {})
        data = None
        if body is not None:
            data = json_bytes(body)
            if len(data) > MAX_BODY_BYTES:
                raise self.input_error("messages",
                                       "make a request body of %d bytes; LINE accepts at most 2 MB (%d)" % (len(data), MAX_BODY_BYTES))
            headers["Content-Type"] = "application/json"
        if self.retry_key:
            key = key or str(uuid.uuid4())
            headers[RETRY_KEY_HEADER] = key
            extra["retry_key"] = key
        idempotent = self.idempotent if self.idempotent is not None else (self.method == "GET" or self.retry_key)
        return Request(self.method, self.url(path or self.path), params=params, headers=headers, body=data,
                       retry=SAFE_RETRY if idempotent else UNSENT_ONLY, auth=self.auth, extra=extra)

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
        if status == 429:
            result["note"] = ("rate limit or monthly message quota exceeded (LINE sends no Retry-After; "
                              "see json_body.message, and line_get_quota / line_get_consumption)")
        elif status == 401:
            result["note"] = "authentication failed: check the channel access token or client credentials"
        if result.get("delivery") == "unknown":
            if self.retry_key:
                result["note"] = ("outcome unknown: the request may have reached LINE; resending with the same "
                                  "retry_key (%s) is safe: LINE delivers it at most once" % result.get("retry_key"))
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
