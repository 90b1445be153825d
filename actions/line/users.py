"""Users, followers, groups and rooms: who is this user, who follows the
account, which group is this and who is in it; leave a chat; mark as read.

Every class is data for the engine in base.py: IDs in the path are checked
against LINE's formats and percent-quoted there, ``paths`` picks the group or
the room form, LinePagedAction follows ``next`` tokens.
(developers.line.biz/en/reference/messaging-api/: #get-profile,
#get-follower-ids, #get-group-summary, #get-members-group-count,
#get-group-member-user-ids, #get-group-member-profile, #leave-group,
#leave-room, #mark-as-read, and the room variants.)
"""
from .base import LineAction, LinePagedAction

GROUP_OR_ROOM = "/v2/bot/group/{groupId}", "/v2/bot/room/{roomId}"


def _both(suffix):
    return tuple(prefix + suffix for prefix in GROUP_OR_ROOM)


class GetProfile(LineAction):
    """GET /v2/bot/profile/{userId}: a friend's display name, picture,
    status message and language (404 when the user is not a friend)."""
    path = "/v2/bot/profile/{userId}"


class GetFollowers(LinePagedAction):
    """GET /v2/bot/followers/ids?start&limit: the user IDs of the account's
    friends, a page at a time (``next`` continues)."""
    path = "/v2/bot/followers/ids"
    fields = ("start", "limit")
    page_items = "userIds"


class GetGroupSummary(LineAction):
    """GET /v2/bot/group/{groupId}/summary: the group's name and picture."""
    path = "/v2/bot/group/{groupId}/summary"


class GetMemberCount(LineAction):
    """GET /v2/bot/{group|room}/{id}/members/count (the bot not counted)."""
    paths = _both("/members/count")


class GetMemberIds(LinePagedAction):
    """GET /v2/bot/{group|room}/{id}/members/ids?start: member user IDs, up
    to 100 a page (``next`` continues)."""
    paths = _both("/members/ids")
    fields = ("start",)
    page_items = "memberIds"


class GetMemberProfile(LineAction):
    """GET /v2/bot/{group|room}/{id}/member/{userId}: a member's name and
    picture, whether or not they are a friend of the account."""
    paths = _both("/member/{userId}")


class _RepeatableWrite(LineAction):
    """A POST whose repetition changes nothing more (leaving a chat the bot
    already left, marking read what is read), so it is resent like a read
    when its answer was lost (LineAction's note on an unknown outcome then
    says a repeat is safe)."""
    method = "POST"
    idempotent = True


class LeaveChat(_RepeatableWrite):
    """POST /v2/bot/{group|room}/{id}/leave, without a body.

    Retry policy: resent like a read (5xx, timeouts). Leaving is a state the
    bot ends up in, not something delivered: a second leave cannot leave
    twice, LINE just answers 404 because the bot is no longer in the chat
    (OpenAPI leaveGroup: 200, 400, 404). So when an earlier attempt's answer
    was lost, a 404 on the resend most likely means that attempt left, and
    the note says so without claiming it is known.
    """
    paths = _both("/leave")
    destructive = True  # the bot cannot rejoin by itself
    gone_on_repeat = (404, "the bot is not in this chat (any more)", "left it")


class MarkAsRead(_RepeatableWrite):
    """POST /v2/bot/chat/markAsRead {markAsReadToken}: marks the user's
    messages up to that event as read. Marking read twice is harmless, so
    it is retried like a read."""
    path = "/v2/bot/chat/markAsRead"
    fields = ("markAsReadToken",)
