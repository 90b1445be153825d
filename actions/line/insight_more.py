"""Statistics per aggregation unit and rich menu statistics (reads; resent
as reads are): developers.line.biz/en/reference/messaging-api/
#get-statistics-per-unit, #get-rich-menu-insight-summary,
#get-rich-menu-insight-daily. Dates are yyyyMMdd in UTC+9; a period whose
``to`` comes before its ``from`` is refused before anything is sent.
"""
from .base import LineAction


class _Period(LineAction):
    def build(self, inputs):
        if inputs["to"] < inputs["from"]:
            raise self.input_error("to", "must not be before from (%s)" % inputs["from"])
        return super().build(inputs)


class GetUnitStats(_Period):
    """GET /v2/bot/insight/message/event/aggregation?customAggregationUnit&from&to."""
    path = "/v2/bot/insight/message/event/aggregation"
    fields = ("customAggregationUnit", "from", "to")


class GetRichMenuStats(_Period):
    """GET /v2/bot/insight/richmenu/{richMenuId}/summary?from&to: impressions
    and clicks per area over the period."""
    path = "/v2/bot/insight/richmenu/{richMenuId}/summary"
    fields = ("from", "to")


class GetRichMenuDailyStats(_Period):
    """GET /v2/bot/insight/richmenu/{richMenuId}/daily?from&to: the same, per day."""
    path = "/v2/bot/insight/richmenu/{richMenuId}/daily"
    fields = ("from", "to")
