"""Account reads: quota, consumption, sent-message counts, narrowcast progress."""
from .base import LineAction


class GetQuota(LineAction):
    """GET /v2/bot/message/quota: the monthly target limit."""
    path = "/v2/bot/message/quota"


class GetConsumption(LineAction):
    """GET /v2/bot/message/quota/consumption: messages sent this month."""
    path = "/v2/bot/message/quota/consumption"


class _SentCount(LineAction):
    """GET /v2/bot/message/delivery/{kind}?date=yyyyMMdd (UTC+9)."""
    fields = ("date",)


class GetSentPushCount(_SentCount):
    path = "/v2/bot/message/delivery/push"


class GetSentReplyCount(_SentCount):
    path = "/v2/bot/message/delivery/reply"


class GetSentMulticastCount(_SentCount):
    path = "/v2/bot/message/delivery/multicast"


class GetSentBroadcastCount(_SentCount):
    path = "/v2/bot/message/delivery/broadcast"


class GetNarrowcastProgress(LineAction):
    """GET /v2/bot/message/progress/narrowcast?requestId=..."""
    path = "/v2/bot/message/progress/narrowcast"
    fields = ("requestId",)
