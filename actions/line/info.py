"""LINE bot information (the asset's connectivity test)."""
from .base import LineAction


class GetBotInfo(LineAction):
    """GET /v2/bot/info."""
    method = "GET"
    path = "/v2/bot/info"
