"""Chat actions."""
from .base import LineAction


class DisplayLoadingAnimation(LineAction):
    """POST /v2/bot/chat/loading/start (answered 202). Showing it again is
    harmless, so it is safe to retry."""
    method = "POST"
    path = "/v2/bot/chat/loading/start"
    fields = ("chatId", "loadingSeconds")
    idempotent = True
