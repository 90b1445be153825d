"""LINE webhooks: signature verification and event normalization.

``x-line-signature`` is base64(HMAC-SHA256(channel secret, raw body bytes)),
compared in constant time and exactly as received: no whitespace is trimmed,
as LINE's own SDK (``linebot.v3.SignatureValidator``) compares it, so a header
the SDK refuses is refused here too. Events are normalized to one flat shape for every
type in LINE's webhook spec; unknown types are kept (``known: false``), never
dropped, since LINE adds event types over time. Sobot forwards LINE-format
events, so the same parser reads them.
"""
import base64
import hashlib
import hmac
import json

from line_connector.action import Action

#: event type -> the key of its type-specific object (webhook.yml, and the
#: types the official SDK ``linebot.v3.webhooks`` knows beyond that file:
#: ``messageEdited``, LINE's "edit event", carries the edited message)
EVENT_DATA = {
    "message": "message", "messageEdited": "message", "unsend": "unsend", "follow": "follow", "unfollow": None, "join": None,
    "leave": None, "memberJoined": "joined", "memberLeft": "left", "postback": "postback",
    "videoPlayComplete": "videoPlayComplete", "beacon": "beacon", "accountLink": "link",
    "membership": "membership", "module": "module", "activated": "chatControl",
    "deactivated": "chatControl", "botSuspended": None, "botResumed": None, "delivery": "delivery",
}
SOURCE_ID = {"user": "userId", "group": "groupId", "room": "roomId"}


def signature(body, channel_secret):
    """The x-line-signature LINE would send for ``body`` (str or bytes)."""
    raw = body.encode("utf-8") if isinstance(body, str) else body
    digest = hmac.new(channel_secret.encode("utf-8"), raw, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def verify(body, given, channel_secret):
    """True only for the exact signature of ``body``: same bytes, nothing trimmed."""
    if not given or not isinstance(given, str):
        return False
    return hmac.compare_digest(signature(body, channel_secret).encode("ascii"), given.encode("utf-8"))


def normalize(event):
    if not isinstance(event, dict):
        return {"type": None, "known": False, "raw": event}
    kind = event.get("type")
    source = event.get("source") if isinstance(event.get("source"), dict) else {}
    source_type = source.get("type")
    delivery = event.get("deliveryContext") if isinstance(event.get("deliveryContext"), dict) else {}
    data_key = EVENT_DATA.get(kind)
    return {
        "type": kind,
        "known": kind in EVENT_DATA,
        "mode": event.get("mode"),
        "timestamp": event.get("timestamp"),
        "webhookEventId": event.get("webhookEventId"),
        "isRedelivery": bool(delivery.get("isRedelivery", False)),
        "source_type": source_type,
        "source_id": source.get(SOURCE_ID.get(source_type, ""), None),
        "user_id": source.get("userId"),
        "replyToken": event.get("replyToken"),
        "message": event.get("message") if data_key == "message" else None,
        "data": event.get(data_key) if data_key and data_key != "message" else None,
        "raw": event,
    }


def parse(body, given_signature, channel_secret, allow_unsigned=False):
    """(output, ok). A wrong signature, or a missing one unless
    ``allow_unsigned``, gives ok False and no events."""
    if given_signature or not allow_unsigned:
        if not given_signature:
            return {"verified": False, "error": "missing x-line-signature: refusing unverified events",
                    "events": []}, False
        if not verify(body, given_signature, channel_secret):
            return {"verified": False, "error": "x-line-signature does not match the body "
                    "(wrong channel secret, or the body was altered)", "events": []}, False
    try:
        doc = json.loads(body)
    except ValueError as exc:
        return {"verified": bool(given_signature), "error": "body is not JSON: %s" % exc, "events": []}, False
    if not isinstance(doc, dict) or not isinstance(doc.get("events"), list):
        return {"verified": bool(given_signature), "error": "body has no events list", "events": []}, False
    events = [normalize(e) for e in doc["events"]]
    return {"verified": bool(given_signature), "destination": doc.get("destination"),
            "count": len(events), "events": events}, True


class ParseWebhook(Action):
    """Verify and parse a webhook body; makes no HTTP request."""
    local = True

    def execute(self, inputs):
        return parse(inputs["body"], inputs.get("signature"), self.asset["channel_secret"],
                     inputs.get("allow_unsigned", False))
