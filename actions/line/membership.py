"""Memberships: a user's subscription, the plans, the members
(developers.line.biz/en/reference/messaging-api/: #get-a-users-membership-subscription,
#get-membership-plans, #get-membership-user-ids). Reads: resent as reads are.
"""
from .base import LineAction, LinePagedAction


class GetMembershipSubscription(LineAction):
    path = "/v2/bot/membership/subscription/{userId}"


class ListMemberships(LineAction):
    path = "/v2/bot/membership/list"


class GetMembershipUsers(LinePagedAction):
    """GET /v2/bot/membership/{membershipId}/users/ids?start&limit (``next`` continues)."""
    path = "/v2/bot/membership/{membershipId}/users/ids"
    fields = ("start", "limit")
    page_items = "userIds"
