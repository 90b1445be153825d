"""Every operation of LINE's official OpenAPI files is an action (SPEC 14).

The list of operations is derived from the four files in
tests/fixtures/line-openapi (messaging-api, insight, manage-audience,
channel-access-token), so a new LINE operation shows up here as a failure.
Each operation is either mapped to the action that performs it, or named in
``NOT_YET_BUILT``: the operations of SPEC 14 still to build, printed by the
test so the gap stays visible. An operation in neither list fails; so does
one in both, and one whose action is missing from the manifest or whose
class does not send that method and path.
"""
import inspect
import os
import re

import yaml

from line_connector.manifest import manifest
from openapi import SPEC_DIR

FILES = ("messaging-api.yml", "insight.yml", "manage-audience.yml", "channel-access-token.yml")

#: operationId -> the action that performs it
BUILT = {
    # messages
    "pushMessage": "line_send_push", "replyMessage": "line_send_reply", "multicast": "line_send_multicast",
    "broadcast": "line_send_broadcast", "narrowcast": "line_send_narrowcast",
    "getNarrowcastProgress": "line_get_narrowcast_progress",
    "validatePush": "line_validate_push", "validateReply": "line_validate_reply",
    "validateMulticast": "line_validate_multicast", "validateNarrowcast": "line_validate_narrowcast",
    "validateBroadcast": "line_validate_broadcast",
    "getMessageQuota": "line_get_quota", "getMessageQuotaConsumption": "line_get_consumption",
    "getNumberOfSentReplyMessages": "line_get_sent_reply_count",
    "getNumberOfSentPushMessages": "line_get_sent_push_count",
    "getNumberOfSentMulticastMessages": "line_get_sent_multicast_count",
    "getNumberOfSentBroadcastMessages": "line_get_sent_broadcast_count",
    "showLoadingAnimation": "line_display_loading_animation",
    "markMessagesAsReadByToken": "line_mark_as_read",
    "getMessageContent": "line_get_message_content",
    "getMessageContentTranscodingByMessageId": "line_get_content_transcoding",
    # bot, users, groups, rooms
    "getBotInfo": "line_get_bot_info", "getProfile": "line_get_profile", "getFollowers": "line_get_followers",
    "getGroupSummary": "line_get_group_summary",
    "getGroupMemberCount": "line_get_member_count", "getRoomMemberCount": "line_get_member_count",
    "getGroupMembersIds": "line_get_member_ids", "getRoomMembersIds": "line_get_member_ids",
    "getGroupMemberProfile": "line_get_member_profile", "getRoomMemberProfile": "line_get_member_profile",
    "leaveGroup": "line_leave_chat", "leaveRoom": "line_leave_chat",
    # webhook endpoint
    "getWebhookEndpoint": "line_get_webhook_endpoint", "setWebhookEndpoint": "line_set_webhook_endpoint",
    "testWebhookEndpoint": "line_test_webhook_endpoint",
    # rich menus
    "createRichMenu": "line_create_rich_menu", "validateRichMenuObject": "line_validate_rich_menu",
    "setRichMenuImage": "line_upload_rich_menu_image", "getRichMenuImage": "line_download_rich_menu_image",
    "getRichMenu": "line_get_rich_menu", "deleteRichMenu": "line_delete_rich_menu",
    "getRichMenuList": "line_list_rich_menus", "setDefaultRichMenu": "line_set_default_rich_menu",
    "getDefaultRichMenuId": "line_get_default_rich_menu", "cancelDefaultRichMenu": "line_cancel_default_rich_menu",
    "getRichMenuIdOfUser": "line_get_user_rich_menu",
    "linkRichMenuIdToUser": "line_link_rich_menu", "linkRichMenuIdToUsers": "line_link_rich_menu",
    "unlinkRichMenuIdFromUser": "line_unlink_rich_menu", "unlinkRichMenuIdFromUsers": "line_unlink_rich_menu",
    "createRichMenuAlias": "line_create_rich_menu_alias", "getRichMenuAlias": "line_get_rich_menu_alias",
    "updateRichMenuAlias": "line_update_rich_menu_alias", "deleteRichMenuAlias": "line_delete_rich_menu_alias",
    "getRichMenuAliasList": "line_list_rich_menu_aliases",
    "richMenuBatch": "line_rich_menu_batch", "validateRichMenuBatchRequest": "line_validate_rich_menu_batch",
    "getRichMenuBatchProgress": "line_get_rich_menu_batch_progress",
    # previews, aggregation units, link tokens, mark as read by user, PNP, memberships
    "getMessageContentPreview": "line_get_message_content_preview",
    "getAggregationUnitUsage": "line_get_aggregation_unit_usage",
    "getAggregationUnitNameList": "line_list_aggregation_units",
    "issueLinkToken": "line_issue_link_token",
    "markMessagesAsRead": "line_mark_as_read_by_user",
    "pushMessagesByPhone": "line_send_pnp_push",
    "getPNPMessageStatistics": "line_get_pnp_sent_count",
    "getMembershipSubscription": "line_get_membership_subscription",
    "getMembershipList": "line_list_memberships",
    "getJoinedMembershipUsers": "line_get_membership_users",
    # coupons
    "createCoupon": "line_create_coupon",
    "listCoupon": "line_list_coupons",
    "getCouponDetail": "line_get_coupon",
    "closeCoupon": "line_close_coupon",
    # insight
    "getFriendsDemographics": "line_get_demographics", "getNumberOfMessageDeliveries": "line_get_delivery_stats",
    "getNumberOfFollowers": "line_get_followers_stats", "getMessageEvent": "line_get_message_event_stats",
    "getStatisticsPerUnit": "line_get_unit_stats",
    "getRichMenuInsightSummary": "line_get_rich_menu_stats",
    "getRichMenuInsightDaily": "line_get_rich_menu_daily_stats",
    # audiences
    "createAudienceGroup": "line_create_audience", "addAudienceToAudienceGroup": "line_add_audience_users",
    "deleteAudienceGroup": "line_delete_audience", "getAudienceData": "line_get_audience",
    "getAudienceGroups": "line_list_audiences",
    "createAudienceForUploadingUserIds": "line_create_audience_from_file",
    "addUserIdsToAudience": "line_add_audience_users_from_file",
    "createClickBasedAudienceGroup": "line_create_click_audience",
    "createImpBasedAudienceGroup": "line_create_impression_audience",
    "updateAudienceGroupDescription": "line_update_audience_description",
    "getSharedAudienceData": "line_get_shared_audience",
    "getSharedAudienceGroups": "line_list_shared_audiences",
    # channel access tokens
    "issueStatelessChannelToken": "line_issue_stateless_channel_token",
    "issueChannelTokenByJWT": "line_issue_channel_token_jwt",
    "verifyChannelTokenByJWT": "line_verify_channel_token_jwt",
    "revokeChannelTokenByJWT": "line_revoke_channel_token_jwt",
    "getsAllValidChannelAccessTokenKeyIds": "line_list_channel_token_key_ids",
    "issueChannelToken": "line_issue_channel_token", "verifyChannelToken": "line_verify_channel_token",
    "revokeChannelToken": "line_revoke_channel_token",
}

#: operations not built yet (operationId -> the action name it will get): empty
#: since every operation has its action; a new LINE operation goes here or in BUILT
NOT_YET_BUILT = {}


def operations():
    """{operationId: (METHOD, path)} of the four OpenAPI files."""
    out = {}
    for name in FILES:
        with open(os.path.join(SPEC_DIR, name), encoding="utf-8") as fh:
            spec = yaml.safe_load(fh)
        for path, item in spec["paths"].items():
            for method, op in item.items():
                if method in ("get", "post", "put", "delete", "patch"):
                    out[op["operationId"]] = (method.upper(), path)
    return out


def test_the_four_files_describe_100_operations_101_request_forms():
    """Issue 24 counts 101: the files hold 100 operations, one of which
    (issueStatelessChannelToken) takes two request bodies (``oneOf``: the
    channel secret or a JWT assertion). line_issue_stateless_channel_token
    sends either, by the asset it is given; test_channel_tokens checks both."""
    ops = operations()
    assert len(ops) == 100
    with open(os.path.join(SPEC_DIR, "channel-access-token.yml"), encoding="utf-8") as fh:
        stateless = yaml.safe_load(fh)["paths"]["/oauth2/v3/token"]["post"]
    forms = stateless["requestBody"]["content"]["application/x-www-form-urlencoded"]["schema"]["oneOf"]
    assert len(ops) - 1 + len(forms) == 101


def test_every_operation_is_built_or_named_as_not_yet_built():
    ops = operations()
    unaccounted = sorted(set(ops) - set(BUILT) - set(NOT_YET_BUILT))
    assert unaccounted == [], "LINE operations with no action and not listed as not yet built: %s" % unaccounted
    assert not set(BUILT) & set(NOT_YET_BUILT)
    assert sorted((set(BUILT) | set(NOT_YET_BUILT)) - set(ops)) == []  # no stale names
    print("\nLINE OpenAPI operations with an action: %d/%d" % (len(BUILT), len(ops)))
    if NOT_YET_BUILT:
        print("not yet built (%d): %s" % (len(NOT_YET_BUILT), ", ".join(
            "%s (%s %s -> %s)" % (op, ops[op][0], ops[op][1], NOT_YET_BUILT[op]) for op in sorted(NOT_YET_BUILT))))


def test_not_yet_built_actions_are_really_absent():
    actions = set(manifest().actions)
    assert sorted(set(NOT_YET_BUILT.values()) & actions) == [], "built: move them to BUILT"


def test_each_built_operation_is_what_its_action_sends():
    """The action exists, and its class (or its module, for the classes
    that build several requests) names the operation's path and method."""
    ops = operations()
    actions = manifest().actions
    for op_id, action in sorted(BUILT.items()):
        assert action in actions, "%s: action %s is not in the manifest" % (op_id, action)
        cls = actions[action].load_class()
        method, path = ops[op_id]
        declared = set(getattr(cls, "paths", ()) or ()) | {getattr(cls, "path", None)}
        if path in declared:
            assert cls.method == method, "%s: %s sends %s, LINE's operation is %s" % (op_id, action, cls.method, method)
        else:
            source = inspect.getsource(inspect.getmodule(cls))
            assert re.search(re.escape(path) + r"['\"]", source), "%s: %s never names %s" % (op_id, action, path)
