"""Profiles, followers, groups and rooms, leave, mark as read (issue 15):
each action from the CLI against the sandbox and with ``responses``,
success and failure; paging over the demo friend list; ID checks before
anything is sent; requests and the sandbox's answers judged by LINE's
OpenAPI (messaging-api.yml) and by the official SDK's models.

Rules are LINE's (developers.line.biz/en/reference/messaging-api/):
#get-profile, #get-follower-ids (limit 1..1000, default 300; ``next``;
verified or premium accounts only), #get-group-summary,
#get-members-group-count, #get-group-member-user-ids (100 a page),
#get-group-member-profile, #leave-group / #leave-room, #mark-as-read, and
#response-headers (X-Line-Request-Id on every answer)."""
import json
import re

import pytest
import responses

from helpers import LINE, TOKEN, TOKEN_ASSET, USER2
from line_connector import ActionError, InputError, run_action
from line_connector.http import HttpClient
from line_connector.sandbox import FaultPlan, Sandbox
from line_connector.sandbox.line_users import (
    DEMO_FOLLOWERS, DEMO_GROUP_ID, DEMO_GROUP_NAME, DEMO_GROUP_SIZE, DEMO_MARK_AS_READ_TOKEN, DEMO_NON_FRIEND_MEMBER,
    DEMO_ROOM_ID, DEMO_ROOM_SIZE, DEMO_USER_ID)
from line_users_openapi import answer_problems, request_problems

NOT_MEMBER = "U" + "e" * 32   # a well-formed user ID nobody in the sandbox has
OTHER_GROUP = "C" + "d" * 32
G, R = DEMO_GROUP_ID, DEMO_ROOM_ID

#: action, inputs, method, path LINE must see, query or body LINE must see
CASES = [
    ("line_get_profile", {"userId": DEMO_USER_ID}, "GET", "/v2/bot/profile/" + DEMO_USER_ID, None),
    ("line_get_followers", {"limit": 1000, "start": "tok-1"}, "GET", "/v2/bot/followers/ids",
     {"limit": "1000", "start": "tok-1"}),
    ("line_get_followers", {}, "GET", "/v2/bot/followers/ids", None),
    ("line_get_group_summary", {"groupId": G}, "GET", "/v2/bot/group/%s/summary" % G, None),
    ("line_get_member_count", {"groupId": G}, "GET", "/v2/bot/group/%s/members/count" % G, None),
    ("line_get_member_count", {"roomId": R}, "GET", "/v2/bot/room/%s/members/count" % R, None),
    ("line_get_member_ids", {"groupId": G}, "GET", "/v2/bot/group/%s/members/ids" % G, None),
    ("line_get_member_ids", {"roomId": R, "start": "n-2"}, "GET", "/v2/bot/room/%s/members/ids" % R, {"start": "n-2"}),
    ("line_get_member_profile", {"groupId": G, "userId": DEMO_USER_ID}, "GET",
     "/v2/bot/group/%s/member/%s" % (G, DEMO_USER_ID), None),
    ("line_get_member_profile", {"roomId": R, "userId": DEMO_USER_ID}, "GET",
     "/v2/bot/room/%s/member/%s" % (R, DEMO_USER_ID), None),
    ("line_leave_chat", {"groupId": G}, "POST", "/v2/bot/group/%s/leave" % G, None),
    ("line_leave_chat", {"roomId": R}, "POST", "/v2/bot/room/%s/leave" % R, None),
    ("line_mark_as_read", {"markAsReadToken": DEMO_MARK_AS_READ_TOKEN}, "POST", "/v2/bot/chat/markAsRead",
     {"markAsReadToken": DEMO_MARK_AS_READ_TOKEN}),
]
CASE_IDS = ["%s-%d" % (c[0], i) for i, c in enumerate(CASES)]

#: what LINE answers (404) for an ID the bot does not know, per action
UNKNOWN = {
    "line_get_profile": {"userId": NOT_MEMBER},
    "line_get_group_summary": {"groupId": OTHER_GROUP},
    "line_get_member_count": {"groupId": OTHER_GROUP},
    "line_get_member_ids": {"groupId": OTHER_GROUP},
    "line_get_member_profile": {"groupId": G, "userId": NOT_MEMBER},
    "line_leave_chat": {"groupId": OTHER_GROUP},
}


def run(name, inputs, **kw):
    return run_action(name, TOKEN_ASSET, inputs, client=HttpClient(sleep=lambda s: None), **kw)


def asset_of(sandbox):
    return sandbox.demo_assets()["line_channel_access_token"]


# ------------------------------------------------------------ responses
@pytest.mark.parametrize("name,inputs,method,path,expected", CASES, ids=CASE_IDS)
@responses.activate
def test_request_is_what_lines_openapi_declares(name, inputs, method, path, expected):
    """Path, query and body: what the action sends is exactly the operation
    of LINE's OpenAPI (path parameters, declared query parameters with their
    schemas, the request body schema; no body where none is declared)."""
    responses.add(method, LINE + path, json={}, headers={"X-Line-Request-Id": "rid-1"})
    (result,) = run(name, inputs)
    assert result["ok"] and result["request_id"] == "rid-1"
    sent = responses.calls[0].request
    assert request_problems(method, sent.url, sent.body) == []
    from urllib.parse import parse_qsl, urlsplit
    if method == "GET":
        assert dict(parse_qsl(urlsplit(sent.url).query)) == (expected or {})
        assert sent.body is None
    elif expected is None:
        assert not sent.body  # leave: a POST without a body (#leave-group)
    else:
        assert json.loads(sent.body) == expected
    assert "X-Line-Retry-Key" not in sent.headers  # LINE takes retry keys on sends only


@pytest.mark.parametrize("name", sorted(UNKNOWN))
@responses.activate
def test_a_refusal_keeps_lines_status_headers_and_body(name):
    inputs = UNKNOWN[name]
    method = "POST" if name == "line_leave_chat" else "GET"
    responses.add(method, re.compile(r"https://api\.line\.me/v2/bot/.*"), status=404,
                  json={"message": "Not found"}, headers={"X-Line-Request-Id": "rid-404"})
    with pytest.raises(ActionError) as exc:
        run(name, inputs)
    (result,) = exc.value.output
    assert result["status_code"] == 404 and result["json_body"] == {"message": "Not found"}
    assert result["request_id"] == "rid-404" and result["response_headers"]["X-Line-Request-Id"] == "rid-404"
    assert len(responses.calls) == 1  # a 404 is an answer, not something to retry


@pytest.mark.parametrize("name,inputs,field", [
    ("line_get_profile", {"userId": "../bot/info"}, "inputs.userId"),
    ("line_get_profile", {"userId": "U%2F..%2F..%2Fbot%2Finfo"}, "inputs.userId"),
    ("line_get_profile", {"userId": "U" + "0" * 31 + "/"}, "inputs.userId"),
    ("line_get_profile", {"userId": "U" + "A" * 32}, "inputs.userId"),   # LINE's IDs are lower-case hex
    ("line_get_profile", {}, "inputs.userId"),
    ("line_get_group_summary", {"groupId": "C" + "0" * 31 + "?x=1"}, "inputs.groupId"),
    ("line_get_group_summary", {"groupId": DEMO_ROOM_ID}, "inputs.groupId"),
    ("line_get_member_count", {}, "inputs"),
    ("line_get_member_count", {"groupId": G, "roomId": R}, "inputs"),
    ("line_get_member_ids", {"roomId": "R..%2F" + "0" * 28}, "inputs.roomId"),
    ("line_get_member_profile", {"groupId": G}, "inputs.userId"),
    ("line_get_member_profile", {"groupId": G, "userId": "U%2e%2e"}, "inputs.userId"),
    ("line_leave_chat", {"groupId": G, "roomId": R}, "inputs"),
    ("line_leave_chat", {"groupId": "Cdeadbeef"}, "inputs.groupId"),
    ("line_get_followers", {"limit": 0}, "inputs.limit"),
    ("line_get_followers", {"limit": 1001}, "inputs.limit"),
    ("line_get_followers", {"start": ""}, "inputs.start"),
    ("line_get_followers", {"all_pages": True, "max_pages": 101}, "inputs.max_pages"),
    ("line_mark_as_read", {}, "inputs.markAsReadToken"),
    ("line_mark_as_read", {"markAsReadToken": ""}, "inputs.markAsReadToken"),
])
@responses.activate
def test_bad_inputs_are_refused_before_anything_is_sent(name, inputs, field):
    """LINE's ID formats (#get-profile: user IDs are U + 32 hex; group C, room
    R) and #get-follower-ids' limit range: a path traversal (``../``, an
    encoded ``%2F``) never reaches a URL."""
    with pytest.raises(InputError) as exc:
        run(name, inputs)
    assert field in [d["path"] for d in exc.value.details], exc.value.details
    assert len(responses.calls) == 0


def test_the_engine_refuses_a_bad_path_id_even_without_the_schema():
    """The class itself (not only the schema) keeps a value out of the path."""
    from line_connector.actions.line.users import GetMemberProfile
    from line_connector.redaction import Redactor

    action = GetMemberProfile.__new__(GetMemberProfile)
    action.redactor = Redactor()
    with pytest.raises(InputError) as exc:
        action.path_for({"groupId": G, "userId": "U/../../v2/bot/info"})
    assert exc.value.details[0]["path"] == "inputs.userId"


@responses.activate
def test_leave_is_retried_like_a_read_and_a_later_404_says_what_it_likely_means():
    """Leaving twice cannot leave twice (OpenAPI leaveGroup: 200, 400, 404):
    a 503 is retried; a lost answer followed by 404 is reported as
    "probably left by the earlier attempt", not as a success."""
    url = LINE + "/v2/bot/group/%s/leave" % G
    responses.post(url, status=503, json={"message": "busy"})
    responses.post(url, json={})
    (result,) = run("line_leave_chat", {"groupId": G})
    assert result["ok"] and result["attempts"] == 2 and len(responses.calls) == 2

    responses.reset()
    responses.post(url, status=500, json={"message": "Internal error"})
    responses.post(url, status=404, json={"message": "Not found"})
    with pytest.raises(ActionError) as exc:
        run("line_leave_chat", {"groupId": G})
    (result,) = exc.value.output
    assert result["status_code"] == 404 and result["delivery"] == "unknown"
    assert "earlier attempt" in result["note"] and "not known" in result["note"]


# ------------------------------------------------------------ sandbox
@pytest.mark.parametrize("name,inputs,method,path,expected", CASES, ids=CASE_IDS)
def test_every_action_runs_from_the_cli_against_the_sandbox(cli, name, inputs, method, path, expected):
    """Exit 0 and an answer in LINE's shape (the OpenAPI 200 schema), with
    the X-Line-Request-Id LINE puts on every answer (#response-headers)."""
    with Sandbox() as sb:
        inputs = {k: v for k, v in inputs.items() if k != "start"}  # tokens are the sandbox's own
        code, out, err = cli("run", name, stdin={"asset": asset_of(sb), "inputs": inputs})
        assert code == 0, err
        results = json.loads(out)
        assert all(r["ok"] and r["status_code"] == 200 and r["request_id"] for r in results)
        assert answer_problems(method, LINE + path, 200, results[0]["json_body"]) == []
        assert TOKEN not in out + err


@pytest.mark.parametrize("name", sorted(UNKNOWN))
def test_an_unknown_id_is_lines_404_from_the_cli(cli, name):
    with Sandbox() as sb:
        code, out, err = cli("run", name, stdin={"asset": asset_of(sb), "inputs": UNKNOWN[name]})
        assert code == 1, err
        (result,) = json.loads(out)
        assert result["status_code"] == 404 and result["json_body"] == {"message": "Not found"}
        assert result["response_headers"]["X-Line-Request-Id"] == result["request_id"]


def test_a_traversal_attempt_exits_2_naming_the_field_and_reaches_no_server(cli):
    with Sandbox() as sb:
        for user in ("../../v2/bot/info", "U%2F..%2Finfo"):
            code, out, err = cli("run", "line_get_profile", stdin={"asset": asset_of(sb), "inputs": {"userId": user}})
            assert code == 2
            assert json.loads(out or err)["details"][0]["path"] == "inputs.userId"
        assert sb.requests == 0


def test_profile_is_for_friends_only(line_sandbox):
    """#get-profile: 404 for a user who is not a friend, even one the bot
    meets in a group, whose member profile (#get-group-member-profile) works."""
    with pytest.raises(ActionError) as exc:
        run_action("line_get_profile", {}, {"userId": DEMO_NON_FRIEND_MEMBER}, sandbox=line_sandbox)
    assert exc.value.output[0]["status_code"] == 404
    (member,) = run_action("line_get_member_profile", {}, {"groupId": G, "userId": DEMO_NON_FRIEND_MEMBER},
                           sandbox=line_sandbox)
    assert member["json_body"]["userId"] == DEMO_NON_FRIEND_MEMBER and "statusMessage" not in member["json_body"]


def test_followers_one_page_by_default_with_lines_default_limit(line_sandbox):
    (page,) = run_action("line_get_followers", {}, {}, sandbox=line_sandbox)
    assert page["json_body"]["userIds"] == list(DEMO_FOLLOWERS[:300])   # limit 300 when omitted
    assert page["json_body"]["next"] and "all_items" not in page


def test_all_pages_follows_next_over_the_demo_friend_list(line_sandbox):
    out = run_action("line_get_followers", {}, {"limit": 300, "all_pages": True}, sandbox=line_sandbox)
    assert [len(r["json_body"]["userIds"]) for r in out] == [300, 300, 300, 300]
    last = out[-1]
    assert last["pages_fetched"] == 4 and last["all_items"] == list(DEMO_FOLLOWERS)
    assert "next" not in last["json_body"] and "note" not in last
    # each page's start was the previous page's next
    big = run_action("line_get_followers", {}, {"limit": 1000, "all_pages": True}, sandbox=line_sandbox)
    assert [len(r["json_body"]["userIds"]) for r in big] == [1000, 200]


def test_max_pages_bounds_the_walk_and_says_more_remain(line_sandbox):
    out = run_action("line_get_followers", {}, {"limit": 100, "all_pages": True, "max_pages": 3},
                     sandbox=line_sandbox)
    assert len(out) == 3 and out[-1]["pages_fetched"] == 3
    assert out[-1]["all_items"] == list(DEMO_FOLLOWERS[:300])
    assert "max_pages=3" in out[-1]["note"] and "more pages remain" in out[-1]["note"]
    # continuing from the last page's next picks up where the walk stopped
    (more,) = run_action("line_get_followers", {}, {"limit": 100, "start": out[-1]["json_body"]["next"]},
                         sandbox=line_sandbox)
    assert more["json_body"]["userIds"] == list(DEMO_FOLLOWERS[300:400])


def test_member_ids_come_100_a_page(line_sandbox):
    """MembersIdsResponse: memberIds maxItems 100 (#get-group-member-user-ids)."""
    out = run_action("line_get_member_ids", {}, {"groupId": G, "all_pages": True}, sandbox=line_sandbox)
    assert [len(r["json_body"]["memberIds"]) for r in out] == [100, 100, DEMO_GROUP_SIZE - 200]
    assert len(set(out[-1]["all_items"])) == DEMO_GROUP_SIZE
    (count,) = run_action("line_get_member_count", {}, {"groupId": G}, sandbox=line_sandbox)
    assert count["json_body"] == {"count": DEMO_GROUP_SIZE}
    room = run_action("line_get_member_ids", {}, {"roomId": R, "all_pages": True}, sandbox=line_sandbox)
    assert len(room) == 1 and len(room[-1]["all_items"]) == DEMO_ROOM_SIZE


def test_sandbox_refuses_bad_query_values_with_lines_400(line_sandbox):
    import requests

    headers = {"Authorization": "Bearer " + line_sandbox.credentials["token"]}
    for query, field in (("limit=1001", "limit"), ("limit=0", "limit"), ("limit=ten", "limit"),
                         ("start=not-a-token", "start")):
        resp = requests.get(line_sandbox.url + "/v2/bot/followers/ids?" + query, headers=headers, timeout=10)
        assert resp.status_code == 400 and resp.headers["X-Line-Request-Id"]
        assert [d["property"] for d in resp.json()["details"]] == [field]


def test_followers_on_an_unverified_account_is_lines_403_kept_whole(line_sandbox):
    """#get-follower-ids is for verified or premium accounts; others get 403.
    Emulated behind a switch (the demo account is verified, so the docs
    example works) so the pack's handling of the refusal is tested."""
    line_sandbox.line.followers_api_available = False
    with pytest.raises(ActionError) as exc:
        run_action("line_get_followers", {}, {"all_pages": True}, sandbox=line_sandbox)
    (result,) = exc.value.output
    assert result["status_code"] == 403 and result["request_id"]
    assert result["json_body"] == {"message": "Access to this API is not available for your account"}


def test_leaving_twice_is_a_404_and_the_chat_is_gone(line_sandbox):
    (left,) = run_action("line_leave_chat", {}, {"groupId": G}, sandbox=line_sandbox)
    assert left["ok"] and left["json_body"] == {}
    with pytest.raises(ActionError) as exc:
        run_action("line_leave_chat", {}, {"groupId": G}, sandbox=line_sandbox)
    assert exc.value.output[0]["status_code"] == 404
    with pytest.raises(ActionError):
        run_action("line_get_group_summary", {}, {"groupId": G}, sandbox=line_sandbox)
    assert line_sandbox.line.left_chats == [("group", G)]


def test_leave_whose_answer_was_lost_is_resent_and_leaves_once():
    """The first attempt is processed and its connection dropped: the resend
    meets LINE's 404, and the result says the earlier attempt likely left."""
    with Sandbox(faults=FaultPlan(script=["reset_after"])) as sb:
        with pytest.raises(ActionError) as exc:
            run_action("line_leave_chat", {}, {"roomId": R}, sandbox=sb)
        (result,) = exc.value.output
        assert result["attempts"] == 2 and result["status_code"] == 404 and result["delivery"] == "unknown"
        assert "earlier attempt" in result["note"]
        assert sb.line.left_chats == [("room", R)]


def test_mark_as_read_body_and_lines_400(line_sandbox):
    (ok,) = run_action("line_mark_as_read", {}, {"markAsReadToken": DEMO_MARK_AS_READ_TOKEN}, sandbox=line_sandbox)
    assert ok["json_body"] == {} and line_sandbox.line.marked_read == [DEMO_MARK_AS_READ_TOKEN]
    with pytest.raises(ActionError) as exc:
        run_action("line_mark_as_read", {}, {"markAsReadToken": "not-a-token-of-this-bot"}, sandbox=line_sandbox)
    (bad,) = exc.value.output
    assert bad["status_code"] == 400 and bad["json_body"]["message"] == "An invalid markAsReadToken is specified"
    assert bad["attempts"] == 1


# ------------------------------------------------------------ the official SDK
def test_the_official_sdk_reads_the_sandboxs_answers_into_its_models():
    """line-bot-sdk v3 (software no one here wrote) against the sandbox: each
    answer deserializes into the SDK's response model; refusals are its
    ApiException with LINE's status."""
    sdk = pytest.importorskip("linebot.v3.messaging")
    with Sandbox() as sb:
        config = sdk.Configuration(host=sb.url, access_token=sb.credentials["token"])
        with sdk.ApiClient(config) as client:
            api = sdk.MessagingApi(client)
            profile = api.get_profile(DEMO_USER_ID)
            assert isinstance(profile, sdk.UserProfileResponse) and profile.display_name
            followers = api.get_followers(limit=1000)
            assert isinstance(followers, sdk.GetFollowersResponse) and len(followers.user_ids) == 1000
            rest = api.get_followers(start=followers.next, limit=1000)
            assert followers.user_ids + rest.user_ids == list(DEMO_FOLLOWERS) and rest.next is None
            summary = api.get_group_summary(G)
            assert isinstance(summary, sdk.GroupSummaryResponse) and summary.group_name == DEMO_GROUP_NAME
            assert api.get_group_member_count(G).count == DEMO_GROUP_SIZE
            assert isinstance(api.get_room_member_count(R), sdk.RoomMemberCountResponse)
            ids = api.get_group_members_ids(G)
            assert isinstance(ids, sdk.MembersIdsResponse) and len(ids.member_ids) == 100 and ids.next
            assert len(api.get_room_members_ids(R).member_ids) == DEMO_ROOM_SIZE
            member = api.get_group_member_profile(G, DEMO_NON_FRIEND_MEMBER)
            assert isinstance(member, sdk.GroupUserProfileResponse)
            assert isinstance(api.get_room_member_profile(R, DEMO_USER_ID), sdk.RoomUserProfileResponse)
            api.mark_messages_as_read_by_token(
                sdk.MarkMessagesAsReadByTokenRequest(mark_as_read_token=DEMO_MARK_AS_READ_TOKEN))
            assert api.leave_room_with_http_info(R).status_code == 200
            with pytest.raises(sdk.ApiException) as exc:
                api.get_profile(USER2)
            assert exc.value.status == 404 and exc.value.headers.get("X-Line-Request-Id")
            with pytest.raises(sdk.ApiException) as exc:
                api.leave_room(R)
            assert exc.value.status == 404
