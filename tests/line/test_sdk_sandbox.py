"""The official LINE SDK (line-bot-sdk v3, ``linebot.v3.messaging``) pointed
at the sandbox: every LINE action of the pack that the SDK has a method for
is called through the SDK, and each answer must deserialize into the SDK's
own response model. Software no one here wrote is the judge of whether the
sandbox answers in LINE's shapes; a refused message must come back as the
SDK's ApiException with LINE's 400 body (details[].property)."""
import datetime
import json
import uuid

import pytest
from helpers import require_module

require_module("linebot.v3.messaging", "line-bot-sdk, a test dependency: the [test] extra")

from linebot.v3.messaging import (  # noqa: E402
    ApiClient, ApiException, BotInfoResponse, BroadcastRequest, Configuration, ImageMessage, MessagingApi,
    MessageQuotaResponse, MulticastRequest, NarrowcastProgressResponse, NarrowcastRequest, NumberOfMessagesResponse,
    PushMessageRequest, PushMessageResponse, QuotaConsumptionResponse, ReplyMessageRequest, ReplyMessageResponse,
    ShowLoadingAnimationRequest, StickerMessage, TextMessage, ValidateMessageRequest)
from linebot.v3.messaging.models import Message  # noqa: E402

from helpers import USER  # noqa: E402
from line_connector.manifest import manifest  # noqa: E402
from line_connector.sandbox import DEMO_NARROWCAST_ID, Sandbox  # noqa: E402
import message_corpus  # noqa: E402

KST = datetime.timezone(datetime.timedelta(hours=9))

#: pack action -> the SDK method that does the same request
SDK_METHOD = {
    "line_send_push": "push_message", "line_send_reply": "reply_message", "line_send_multicast": "multicast",
    "line_send_broadcast": "broadcast", "line_send_narrowcast": "narrowcast",
    "line_validate_push": "validate_push", "line_validate_reply": "validate_reply",
    "line_validate_multicast": "validate_multicast", "line_validate_narrowcast": "validate_narrowcast",
    "line_validate_broadcast": "validate_broadcast", "line_get_quota": "get_message_quota",
    "line_get_consumption": "get_message_quota_consumption",
    "line_get_sent_push_count": "get_number_of_sent_push_messages",
    "line_get_sent_reply_count": "get_number_of_sent_reply_messages",
    "line_get_sent_multicast_count": "get_number_of_sent_multicast_messages",
    "line_get_sent_broadcast_count": "get_number_of_sent_broadcast_messages",
    "line_get_narrowcast_progress": "get_narrowcast_progress",
    "line_display_loading_animation": "show_loading_animation", "line_get_bot_info": "get_bot_info",
}

#: the actions of SPEC 11 -> (SDK API class, its methods doing the same request: a group's and a
#: room's where the action takes either). Their calls through the SDK are in the actions' own
#: tests (test_users_groups, test_insight, test_content, test_richmenu, test_audience).
SDK_METHOD_MORE = {
    "line_get_profile": ("MessagingApi", ["get_profile"]),
    "line_get_followers": ("MessagingApi", ["get_followers"]),
    "line_get_group_summary": ("MessagingApi", ["get_group_summary"]),
    "line_get_member_count": ("MessagingApi", ["get_group_member_count", "get_room_member_count"]),
    "line_get_member_ids": ("MessagingApi", ["get_group_members_ids", "get_room_members_ids"]),
    "line_get_member_profile": ("MessagingApi", ["get_group_member_profile", "get_room_member_profile"]),
    "line_leave_chat": ("MessagingApi", ["leave_group", "leave_room"]),
    "line_mark_as_read": ("MessagingApi", ["mark_messages_as_read_by_token"]),
    "line_get_message_content": ("MessagingApiBlob", ["get_message_content"]),
    "line_get_content_transcoding": ("MessagingApiBlob", ["get_message_content_transcoding_by_message_id"]),
    "line_create_rich_menu": ("MessagingApi", ["create_rich_menu"]),
    "line_validate_rich_menu": ("MessagingApi", ["validate_rich_menu_object"]),
    "line_upload_rich_menu_image": ("MessagingApiBlob", ["set_rich_menu_image"]),
    "line_list_rich_menus": ("MessagingApi", ["get_rich_menu_list"]),
    "line_delete_rich_menu": ("MessagingApi", ["delete_rich_menu"]),
    "line_set_default_rich_menu": ("MessagingApi", ["set_default_rich_menu"]),
    "line_cancel_default_rich_menu": ("MessagingApi", ["cancel_default_rich_menu"]),
    "line_link_rich_menu": ("MessagingApi", ["link_rich_menu_id_to_user", "link_rich_menu_id_to_users"]),
    "line_unlink_rich_menu": ("MessagingApi", ["unlink_rich_menu_id_from_user", "unlink_rich_menu_id_from_users"]),
    "line_create_audience": ("ManageAudience", ["create_audience_group", "add_audience_to_audience_group"]),
    "line_add_audience_users": ("ManageAudience", ["add_audience_to_audience_group"]),
    "line_get_audience": ("ManageAudience", ["get_audience_data"]),
    "line_list_audiences": ("ManageAudience", ["get_audience_groups"]),
    "line_delete_audience": ("ManageAudience", ["delete_audience_group"]),
    "line_get_followers_stats": ("Insight", ["get_number_of_followers"]),
    "line_get_delivery_stats": ("Insight", ["get_number_of_message_deliveries"]),
    "line_get_message_event_stats": ("Insight", ["get_message_event"]),
    "line_get_demographics": ("Insight", ["get_friends_demographics"]),
    # SPEC 14: channel access tokens (driven through the SDK in test_channel_tokens)
    "line_issue_channel_token": ("ChannelAccessToken", ["issue_channel_token"]),
    "line_verify_channel_token": ("ChannelAccessToken", ["verify_channel_token"]),
    "line_revoke_channel_token": ("ChannelAccessToken", ["revoke_channel_token"]),
    "line_issue_stateless_channel_token": ("ChannelAccessToken", ["issue_stateless_channel_token"]),
    "line_issue_channel_token_jwt": ("ChannelAccessToken", ["issue_channel_token_by_jwt"]),
    "line_verify_channel_token_jwt": ("ChannelAccessToken", ["verify_channel_token_by_jwt"]),
    "line_revoke_channel_token_jwt": ("ChannelAccessToken", ["revoke_channel_token_by_jwt"]),
    "line_list_channel_token_key_ids": ("ChannelAccessToken", ["gets_all_valid_channel_access_token_key_ids"]),
    # SPEC 14: webhook endpoint, rich menu reads, aliases, batch (test_webhook_richmenu_parity)
    "line_get_webhook_endpoint": ("MessagingApi", ["get_webhook_endpoint"]),
    "line_set_webhook_endpoint": ("MessagingApi", ["set_webhook_endpoint"]),
    "line_test_webhook_endpoint": ("MessagingApi", ["test_webhook_endpoint"]),
    "line_get_rich_menu": ("MessagingApi", ["get_rich_menu"]),
    "line_get_default_rich_menu": ("MessagingApi", ["get_default_rich_menu_id"]),
    "line_get_user_rich_menu": ("MessagingApi", ["get_rich_menu_id_of_user"]),
    "line_download_rich_menu_image": ("MessagingApiBlob", ["get_rich_menu_image"]),
    "line_create_rich_menu_alias": ("MessagingApi", ["create_rich_menu_alias"]),
    "line_get_rich_menu_alias": ("MessagingApi", ["get_rich_menu_alias"]),
    "line_update_rich_menu_alias": ("MessagingApi", ["update_rich_menu_alias"]),
    "line_delete_rich_menu_alias": ("MessagingApi", ["delete_rich_menu_alias"]),
    "line_list_rich_menu_aliases": ("MessagingApi", ["get_rich_menu_alias_list"]),
    "line_rich_menu_batch": ("MessagingApi", ["rich_menu_batch"]),
    "line_validate_rich_menu_batch": ("MessagingApi", ["validate_rich_menu_batch_request"]),
    "line_get_rich_menu_batch_progress": ("MessagingApi", ["get_rich_menu_batch_progress"]),
    # SPEC 14: previews, aggregation units, link tokens, PNP, memberships (test_messaging_more)
    "line_get_message_content_preview": ("MessagingApiBlob", ["get_message_content_preview"]),
    "line_get_aggregation_unit_usage": ("MessagingApi", ["get_aggregation_unit_usage"]),
    "line_list_aggregation_units": ("MessagingApi", ["get_aggregation_unit_name_list"]),
    "line_issue_link_token": ("MessagingApi", ["issue_link_token"]),
    "line_mark_as_read_by_user": ("MessagingApi", ["mark_messages_as_read"]),
    "line_send_pnp_push": ("MessagingApi", ["push_messages_by_phone"]),
    "line_get_pnp_sent_count": ("MessagingApi", ["get_pnp_message_statistics"]),
    "line_get_membership_subscription": ("MessagingApi", ["get_membership_subscription"]),
    "line_list_memberships": ("MessagingApi", ["get_membership_list"]),
    "line_get_membership_users": ("MessagingApi", ["get_joined_membership_users"]),
    # SPEC 14: statistics per unit, rich menu statistics (test_insight_more)
    "line_get_unit_stats": ("Insight", ["get_statistics_per_unit"]),
    "line_get_rich_menu_stats": ("Insight", ["get_rich_menu_insight_summary"]),
    "line_get_rich_menu_daily_stats": ("Insight", ["get_rich_menu_insight_daily"]),
    # SPEC 14: click/impression audiences, renaming, shared audiences (test_audience_more)
    "line_create_click_audience": ("ManageAudience", ["create_click_based_audience_group"]),
    "line_create_impression_audience": ("ManageAudience", ["create_imp_based_audience_group"]),
    "line_update_audience_description": ("ManageAudience", ["update_audience_group_description"]),
    "line_get_shared_audience": ("ManageAudience", ["get_shared_audience_data"]),
    "line_list_shared_audiences": ("ManageAudience", ["get_shared_audience_groups"]),
    # SPEC 14: coupons (test_coupons)
    "line_create_coupon": ("MessagingApi", ["create_coupon"]),
    "line_list_coupons": ("MessagingApi", ["list_coupon"]),
    "line_get_coupon": ("MessagingApi", ["get_coupon_detail"]),
    "line_close_coupon": ("MessagingApi", ["close_coupon"]),
    # SPEC 14: audiences by file (test_audience_file)
    "line_create_audience_from_file": ("ManageAudienceBlob", ["create_audience_for_uploading_user_ids"]),
    "line_add_audience_users_from_file": ("ManageAudienceBlob", ["add_user_ids_to_audience"]),
}


@pytest.fixture(scope="module")
def sandbox():
    with Sandbox() as sb:
        yield sb


@pytest.fixture
def api(sandbox):
    config = Configuration(host=sandbox.url, access_token=sandbox.credentials["token"])
    with ApiClient(config) as client:
        yield MessagingApi(client)


def test_the_map_covers_every_http_line_action_of_the_pack():
    actions = {a.name for a in manifest().actions.values() if a.name.startswith("line_")}
    assert set(SDK_METHOD) | set(SDK_METHOD_MORE) == actions - {"line_parse_webhook"}
    assert all(hasattr(MessagingApi, m) for m in SDK_METHOD.values())
    import linebot.v3.audience
    import linebot.v3.insight
    import linebot.v3.messaging
    import linebot.v3.oauth

    modules = (linebot.v3.messaging, linebot.v3.audience, linebot.v3.insight, linebot.v3.oauth)
    for action, (class_name, methods) in SDK_METHOD_MORE.items():
        cls = next(getattr(m, class_name) for m in modules if hasattr(m, class_name))
        assert all(hasattr(cls, m) for m in methods), action


def test_push_and_reply_deserialize_into_the_sdks_models(sandbox, api):
    key = str(uuid.uuid4())
    request = PushMessageRequest(to=USER, messages=[TextMessage(text="hello"),
                                                    StickerMessage(package_id="446", sticker_id="1988")])
    pushed = api.push_message_with_http_info(request, x_line_retry_key=key)
    assert pushed.status_code == 200 and isinstance(pushed.data, PushMessageResponse)
    assert len(pushed.data.sent_messages) == 2 and all(s.id and s.quote_token for s in pushed.data.sent_messages)
    assert pushed.headers["X-Line-Request-Id"]
    # the same retry key again: LINE's 409, carrying what was accepted
    with pytest.raises(ApiException) as exc:
        api.push_message(request, x_line_retry_key=key)
    assert exc.value.status == 409
    assert exc.value.headers["x-line-accepted-request-id"] == pushed.headers["X-Line-Request-Id"]
    assert json.loads(exc.value.body)["sentMessages"] == [s.to_dict() for s in pushed.data.sent_messages]
    replied = api.reply_message(ReplyMessageRequest(reply_token="rt-sdk", messages=[TextMessage(text="hi")]))
    assert isinstance(replied, ReplyMessageResponse) and len(replied.sent_messages) == 1
    with pytest.raises(ApiException) as exc:
        api.reply_message(ReplyMessageRequest(reply_token="rt-sdk", messages=[TextMessage(text="hi")]))
    assert exc.value.status == 400 and json.loads(exc.value.body)["message"] == "Invalid reply token"


def test_multicast_broadcast_narrowcast_and_progress(sandbox, api):
    assert api.multicast(MulticastRequest(to=[USER], messages=[TextMessage(text="m")])) == {}
    assert api.broadcast(BroadcastRequest(messages=[TextMessage(text="b")])) == {}
    sent = api.narrowcast_with_http_info(NarrowcastRequest(messages=[TextMessage(text="n")]))
    assert sent.status_code == 202
    progress = [api.get_narrowcast_progress(sent.headers["X-Line-Request-Id"]) for _ in range(3)]
    assert all(isinstance(p, NarrowcastProgressResponse) for p in progress)
    assert [p.phase for p in progress] == ["waiting", "sending", "succeeded"]
    assert progress[-1].completed_time is not None and progress[-1].success_count == progress[-1].target_count
    demo = api.get_narrowcast_progress(DEMO_NARROWCAST_ID)
    assert isinstance(demo, NarrowcastProgressResponse) and demo.phase == "succeeded"


@pytest.mark.parametrize("kind", ["push", "reply", "multicast", "narrowcast", "broadcast"])
def test_validate_endpoints(api, kind):
    method = getattr(api, "validate_" + kind)
    # the SDK declares no response model for validate: success is the 200
    assert getattr(api, "validate_%s_with_http_info" % kind)(
        ValidateMessageRequest(messages=[TextMessage(text="ok")])).status_code == 200
    with pytest.raises(ApiException) as exc:
        method(ValidateMessageRequest(messages=[ImageMessage(original_content_url="http://example.com/a.jpg",
                                                             preview_image_url="https://example.com/a.jpg")]))
    assert exc.value.status == 400
    body = json.loads(exc.value.body)
    assert body["message"] == "The request body has %d error(s)" % len(body["details"])
    assert [d["property"] for d in body["details"]] == ["messages[0].originalContentUrl"]


def test_an_invalid_message_sent_through_the_sdk_is_refused_with_lines_400(sandbox, api):
    before = len(sandbox.line.deliveries)
    with pytest.raises(ApiException) as exc:
        api.push_message(PushMessageRequest(to=USER, messages=[TextMessage(text="x" * 5001)]))
    assert exc.value.status == 400 and exc.value.headers.get("X-Line-Request-Id")
    body = json.loads(exc.value.body)
    assert [d["property"] for d in body["details"]] == ["messages[0].text"]
    assert len(sandbox.line.deliveries) == before


def test_valid_corpus_messages_pass_through_the_sdks_models(api):
    # each valid message object, turned into the SDK's model and back, is accepted
    for name, message in message_corpus.VALID.items():
        model = Message.from_dict(message)
        assert api.validate_push_with_http_info(ValidateMessageRequest(messages=[model])).status_code == 200, name


def test_quota_consumption_counts_loading_and_bot_info(sandbox, api):
    quota = api.get_message_quota()
    assert isinstance(quota, MessageQuotaResponse) and quota.type == "limited" and quota.value > 0
    assert isinstance(api.get_message_quota_consumption(), QuotaConsumptionResponse)
    today = datetime.datetime.now(KST)
    for kind in ("push", "reply", "multicast", "broadcast"):
        method = getattr(api, "get_number_of_sent_%s_messages" % kind)
        now = method(today.strftime("%Y%m%d"))
        past = method((today - datetime.timedelta(days=1)).strftime("%Y%m%d"))
        assert isinstance(now, NumberOfMessagesResponse) and now.status == "unready" and now.success is None
        assert isinstance(past, NumberOfMessagesResponse) and past.status == "ready" and past.success == 0
    assert api.show_loading_animation(ShowLoadingAnimationRequest(chat_id=USER, loading_seconds=10)) == {}
    with pytest.raises(ApiException) as exc:
        api.show_loading_animation(ShowLoadingAnimationRequest(chat_id=USER, loading_seconds=7))
    assert exc.value.status == 400 and json.loads(exc.value.body)["details"][0]["property"] == "loadingSeconds"
    info = api.get_bot_info()
    assert isinstance(info, BotInfoResponse) and info.user_id.startswith("U") and info.chat_mode == "bot"


def test_a_wrong_token_is_the_sdks_401_with_a_request_id(sandbox):
    config = Configuration(host=sandbox.url, access_token="not-the-token")
    with ApiClient(config) as client:
        with pytest.raises(ApiException) as exc:
            MessagingApi(client).get_bot_info()
    assert exc.value.status == 401 and exc.value.headers.get("X-Line-Request-Id")
    assert json.loads(exc.value.body)["message"].startswith("Authentication failed")


# ---------------------------------------------------------------- every operation
#: a value the sandbox knows for each path/query parameter LINE's operations take
DEMO_PARAMS = {
    "date": "20260105", "from": "20260101", "to": "20260105", "userId": USER, "groupId": None, "roomId": None,
    "richMenuId": None, "messageId": None, "richMenuAliasId": None, "requestId": DEMO_NARROWCAST_ID,
    "couponId": None, "membershipId": None, "audienceGroupId": None, "customAggregationUnit": "promotion_a",
    "page": 1, "size": 20,
}


def _demo_params():
    from line_connector.sandbox import line_audience, line_more, line_richmenu, line_users, line_channel

    values = dict(DEMO_PARAMS)
    values.update(groupId=line_users.DEMO_GROUP_ID, roomId=line_users.DEMO_ROOM_ID,
                  richMenuId=line_richmenu.DEMO_RICH_MENU_ID, messageId=line_richmenu.DEMO_IMAGE_MESSAGE_ID,
                  richMenuAliasId=line_channel.DEMO_ALIAS_ID, couponId=line_more.DEMO_COUPON_ID,
                  membershipId=line_more.DEMO_MEMBERSHIP_ID, audienceGroupId=line_audience.DEMO_AUDIENCE_ID)
    return values


def _sdk_method(filename, operation_id):
    """(API class, method name) of the official SDK doing ``operation_id``."""
    import importlib

    module = importlib.import_module({"messaging-api.yml": "linebot.v3.messaging", "insight.yml": "linebot.v3.insight",
                                      "manage-audience.yml": "linebot.v3.audience",
                                      "channel-access-token.yml": "linebot.v3.oauth"}[filename])
    wanted = operation_id.lower()
    for name in dir(module):  # the synchronous API classes (not Async*)
        cls = getattr(module, name)
        if not isinstance(cls, type) or name.startswith("Async"):
            continue
        for method in dir(cls):
            if method.replace("_", "").lower() == wanted and not method.startswith("_"):
                return cls, method
    raise AssertionError("the SDK has no method for %s (%s)" % (operation_id, filename))


def test_every_operation_of_lines_openapi_goes_through_the_sdk_to_the_sandbox(sandbox, tmp_path):
    """Derived from LINE's four OpenAPI files (line_routes.operations): each
    operation is called with the official SDK's own method against the
    sandbox. A body-carrying operation is sent the SDK model of its body
    built without fields (pydantic's ``construct``): LINE's 400 answers it, which
    the SDK raises as its ApiException; the others are answered with real
    data, which the SDK deserializes into its declared model. No operation
    may be unrouted (404/405 from the routing), nor a 5xx."""
    import inspect

    from line_routes import operations

    from line_connector.sandbox.line_richmenu import demo_png

    from line_connector.sandbox import CLIENT_ID

    values, results = _demo_params(), {}
    values.update(grantType="client_credentials", clientId=CLIENT_ID, clientSecret=sandbox.credentials["client_secret"],
                  accessToken=sandbox.credentials["token"], clientAssertion="not-a-jwt",
                  clientAssertionType="urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
    users_file = tmp_path / "users.txt"
    users_file.write_text(USER + "\n")
    for filename, method, path, operation_id in operations():
        cls, name = _sdk_method(filename, operation_id)
        module = __import__(cls.__module__.split(".api.")[0], fromlist=["ApiClient", "Configuration"])
        config = module.Configuration(host=sandbox.url, access_token=sandbox.credentials["token"])
        with module.ApiClient(config) as client:
            call = getattr(cls(client), name + "_with_http_info")
            kwargs = {}
            for pname, param in inspect.signature(getattr(cls, name)).parameters.items():
                if pname == "self" or pname.startswith("_") or param.default is not inspect.Parameter.empty \
                        or param.kind in (param.VAR_KEYWORD, param.VAR_POSITIONAL):
                    continue
                wanted = pname[4:] if pname.startswith("var_") else pname  # the SDK's name for "date", "from"
                original = next((k for k in values if k.lower() == wanted.replace("_", "").lower()), None)
                if original is not None:
                    kwargs[pname] = values[original]
                elif pname == "file":  # an audience's user IDs, one a line
                    kwargs[pname] = str(users_file)
                elif pname == "body":  # a rich menu image
                    kwargs[pname] = bytearray(demo_png())
                    kwargs["_headers"] = {"Content-Type": "image/png"}
                else:  # the body: the SDK's model of it, empty
                    kind = param.annotation
                    kind = next((a for a in getattr(kind, "__metadata__", ()) if isinstance(a, type)),
                                getattr(kind, "__origin__", kind))
                    kwargs[pname] = kind.construct(**dict.fromkeys(kind.__fields__))
            try:
                answer = call(**kwargs)
                status, data = answer.status_code, answer.data
            except module.ApiException as exc:
                status, data = exc.status, None
            except (ValueError, TypeError) as exc:  # the SDK refused our arguments before sending
                raise AssertionError("%s: %s" % (operation_id, exc))
        results[operation_id] = status
        assert status < 500, (operation_id, status)
        if status in (404, 405):
            route = sandbox.route(concrete_path(path, {k: v for k, v in kwargs.items() if not k.startswith("_")}))
            assert route is not None and method in route[1], (operation_id, "unrouted")
        if 200 <= status < 300 and data is not None:  # deserialized: the SDK's model, or a blob's bytes
            assert hasattr(data, "to_dict") or (isinstance(data, (bytes, bytearray)) and "Blob" in cls.__name__), \
                (operation_id, type(data))
    assert set(results) == {op for _, _, _, op in operations()}
    ok = sorted(op for op, status in results.items() if 200 <= status < 300)
    # 59 of the 100 in a run (the rest: LINE's 400 for the empty bodies, 404s
    # for demo data an earlier call deleted): real answers, not only refusals
    assert len(ok) >= 50, (len(ok), results)


def concrete_path(path, kwargs):
    import re

    return re.sub(r"\{([^}]+)\}", lambda m: str(next(v for k, v in kwargs.items()
                                                    if k.replace("_", "") == m.group(1).replace("_", "").lower()
                                                    or k.replace("_", "").lower() == m.group(1).lower())), path)
