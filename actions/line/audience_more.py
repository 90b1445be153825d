"""Click and impression audiences, audience renaming, shared audiences
(developers.line.biz/en/reference/messaging-api/: #create-click-audience-group,
#create-imp-audience-group, #set-description-audience-group,
#get-shared-audience, #get-shared-audience-list).

Retry rules: creating an audience is sent once (a repeat creates a second
audience of the same name); renaming sets the same name again, so it is
resent; the reads are resent.
"""
from .audience import DeleteAudience, ListAudiences
from .base import LineAction


class CreateClickAudience(LineAction):
    """POST /v2/bot/audienceGroup/click: users who opened a URL of a
    broadcast or narrowcast sent in the last 60 days (202)."""
    method = "POST"
    path = "/v2/bot/audienceGroup/click"
    fields = ("description", "requestId", "clickUrl")


class CreateImpressionAudience(LineAction):
    """POST /v2/bot/audienceGroup/imp: users who saw a broadcast or
    narrowcast sent in the last 60 days (202)."""
    method = "POST"
    path = "/v2/bot/audienceGroup/imp"
    fields = ("description", "requestId")


class UpdateAudienceDescription(LineAction):
    """PUT /v2/bot/audienceGroup/{audienceGroupId}/updateDescription {description}."""
    method = "PUT"
    path = "/v2/bot/audienceGroup/{audienceGroupId}/updateDescription"
    fields = ("description",)
    idempotent = True

    def judge(self, request, result):
        # LINE answers an empty 200 (manage-audience.yml: no content), as for a delete
        return DeleteAudience.judge_empty_ok(super().judge(request, result), result)


class GetSharedAudience(LineAction):
    """GET /v2/bot/audienceGroup/shared/{audienceGroupId}: an audience shared
    from Business Manager, its jobs and its owner."""
    path = "/v2/bot/audienceGroup/shared/{audienceGroupId}"


class ListSharedAudiences(ListAudiences):
    """GET /v2/bot/audienceGroup/shared/list, page by page (``page``/``hasNextPage``)."""
    path = "/v2/bot/audienceGroup/shared/list"
    fields = ("page", "size", "description", "status", "createRoute", "includesOwnedAudienceGroups")
