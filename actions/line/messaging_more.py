"""Content previews, aggregation units, link tokens, mark-as-read by user ID
and LINE notification messages by phone (PNP)
(developers.line.biz/en/reference/messaging-api/: #get-image-or-video-preview,
#get-the-number-of-unit-name-types-assigned-during-this-month,
#get-a-list-of-unit-names-assigned-during-this-month, #issue-link-token,
#mark-as-read, and /en/reference/partner-docs/: #send-line-notification-message,
#get-number-of-sent-line-notification-messages).

Retry rules: reads are resent. A link token is single-use and valid 10
minutes: issuing another on a repeat is harmless, so it is resent. Marking as
read twice changes nothing: resent. A PNP push has no retry key at LINE, so
it is sent once and never resent blindly: a repeat could notify the user twice.
"""
from .account import _SentCount
from .base import LineAction, LinePagedAction
from .content import GetMessageContent

DELIVERY_TAG_HEADER = "X-Line-Delivery-Tag"


class GetMessageContentPreview(GetMessageContent):
    """GET {data_url}/v2/bot/message/{messageId}/content/preview: the
    preview image of an image or video, streamed as content is."""
    path = "/v2/bot/message/{messageId}/content/preview"


class GetAggregationUnitUsage(LineAction):
    path = "/v2/bot/message/aggregation/info"


class ListAggregationUnits(LinePagedAction):
    """GET /v2/bot/message/aggregation/list?limit&start: this month's unit
    names, a page at a time (``next`` continues)."""
    path = "/v2/bot/message/aggregation/list"
    fields = ("start", "limit")
    page_items = "customAggregationUnits"


class IssueLinkToken(LineAction):
    """POST /v2/bot/user/{userId}/linkToken (no body)."""
    method = "POST"
    path = "/v2/bot/user/{userId}/linkToken"
    idempotent = True  # another single-use token; the first simply expires


class MarkAsReadByUser(LineAction):
    """POST /v2/bot/message/markAsRead {chat: {userId}}: LINE's older
    mark-as-read, for partners (line_mark_as_read uses a token)."""
    method = "POST"
    path = "/v2/bot/message/markAsRead"
    idempotent = True

    def build(self, inputs):
        return [self.line_request(body={"chat": {"userId": inputs["userId"]}})]


class SendPnpPush(LineAction):
    """POST /bot/pnp/push {to: SHA-256 of the E.164 number, messages}, with
    the optional X-Line-Delivery-Tag (returned in the delivery webhook)."""
    method = "POST"
    path = "/bot/pnp/push"
    fields = ("to", "messages", "notificationDisabled")

    def build(self, inputs):
        (request,) = super().build(inputs)
        if "deliveryTag" in inputs:
            request.headers[DELIVERY_TAG_HEADER] = inputs["deliveryTag"]
        return [request]


class GetPnpSentCount(_SentCount):
    path = "/v2/bot/message/delivery/pnp"
