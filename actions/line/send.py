"""LINE send actions: push, reply, multicast, broadcast, narrowcast.

Push, multicast, broadcast and narrowcast carry ``X-Line-Retry-Key`` and are
retried (5xx, timeouts, dropped connections) with the same key: LINE answers
a repeat with 409 + ``x-line-accepted-request-id``, which counts as success.
Reply has no retry key (LINE rejects one), so it is resent only when the
connection was never made.
"""
import uuid

from line_connector.action import ChunkedAction

from .base import LineAction

MULTICAST_CHUNK = 500


class SendPush(LineAction):
    """POST /v2/bot/message/push: one recipient, 1-5 messages."""
    method = "POST"
    path = "/v2/bot/message/push"
    fields = ("to", "messages", "notificationDisabled", "customAggregationUnits")
    retry_key = True


class SendReply(LineAction):
    """POST /v2/bot/message/reply: answer a webhook event's reply token."""
    method = "POST"
    path = "/v2/bot/message/reply"
    fields = ("replyToken", "messages", "notificationDisabled")
    idempotent = False


class SendBroadcast(LineAction):
    """POST /v2/bot/message/broadcast: every friend of the account."""
    method = "POST"
    path = "/v2/bot/message/broadcast"
    fields = ("messages", "notificationDisabled")
    retry_key = True


class SendNarrowcast(LineAction):
    """POST /v2/bot/message/narrowcast: answered 202; the result's
    ``request_id`` is what line_get_narrowcast_progress needs."""
    method = "POST"
    path = "/v2/bot/message/narrowcast"
    fields = ("messages", "recipient", "filter", "limit", "notificationDisabled")
    retry_key = True


def chunk_key(base, index):
    """The retry key of chunk ``index`` (0-based): the caller's key for the
    first chunk, a UUID derived from it for the others, a fresh UUID when the
    caller gave none. Deriving (not drawing) keys means a caller who resends
    the same multicast with the same ``retry_key`` reuses every chunk's key."""
    if base is None:
        return str(uuid.uuid4())
    if index == 0:
        return base
    return str(uuid.uuid5(uuid.UUID(base), "multicast-chunk-%d" % index))


class SendMulticast(ChunkedAction, LineAction):
    """POST /v2/bot/message/multicast, in chunks of 500 user IDs.

    Accepts any number of IDs; drops duplicates (first occurrence kept, so the
    order is the caller's) and sends ceil(n/500) requests. Each result says
    which chunk it was and which IDs it carried (``recipients``), so a caller
    can resend exactly the chunks that failed.
    """
    method = "POST"
    path = "/v2/bot/message/multicast"
    retry_key = True
    chunk_size = MULTICAST_CHUNK
    shared_fields = ("messages", "notificationDisabled", "customAggregationUnits")

    def items(self, inputs):
        return inputs["to"]

    def chunk_request(self, inputs, index, chunk, total):
        shared = {k: inputs[k] for k in self.shared_fields if k in inputs}
        return self.line_request(body=dict(to=chunk, **shared), key=chunk_key(inputs.get("retry_key"), index),
                                 extra=self.chunk_extra(index, chunk, total))
