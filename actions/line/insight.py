"""Insight: followers and deliveries per day, interaction statistics of a
narrowcast or broadcast, friend demographics (reads; retried as reads).

Dates are yyyyMMdd in UTC+9 and the answers carry LINE's ``status``
(ready, unready, out_of_service): developers.line.biz/en/reference/messaging-api/
#get-number-of-followers, #get-number-of-delivery-messages,
#get-message-event, #get-demographic.
"""
from .base import LineAction


class GetFollowersStats(LineAction):
    """GET /v2/bot/insight/followers?date: followers, targeted reaches and
    blocks as of that day."""
    path = "/v2/bot/insight/followers"
    fields = ("date",)


class GetDeliveryStats(LineAction):
    """GET /v2/bot/insight/message/delivery?date: messages sent that day,
    per kind (broadcast, targeting, apiPush, ...)."""
    path = "/v2/bot/insight/message/delivery"
    fields = ("date",)


class GetMessageEventStats(LineAction):
    """GET /v2/bot/insight/message/event?requestId: impressions and clicks of
    a narrowcast or broadcast, by the request ID of its send."""
    path = "/v2/bot/insight/message/event"
    fields = ("requestId",)


class GetDemographics(LineAction):
    """GET /v2/bot/insight/demographic: friends by age, gender, area, OS and
    friendship duration (percentages)."""
    path = "/v2/bot/insight/demographic"
