"""The channel access token actions (SPEC 14): issue, verify, revoke, list
key IDs; against the sandbox, against LINE's OpenAPI
(channel-access-token.yml) and through the official SDK
(``linebot.v3.oauth.ChannelAccessToken``).

Reference: developers.line.biz/en/reference/messaging-api/#issue-shortlived-channel-access-token,
#verify-channel-access-token, #revoke-longlived-or-shortlived-channel-access-token,
#issue-stateless-channel-access-token, #issue-channel-access-token-v2-1,
#verify-channel-access-token-v2-1, #revoke-channel-access-token-v2-1,
#get-all-valid-channel-access-token-key-ids-v2-1.
"""
import json
from urllib.parse import parse_qs

import pytest
import requests
import responses
from jsonschema import Draft202012Validator

from line_connector import ActionError, run_action
from line_connector.http import HttpClient
from line_connector.sandbox import Sandbox
from openapi import definitions, validator

SPEC = "channel-access-token.yml"
TOKEN_ACTIONS = ["line_issue_channel_token", "line_verify_channel_token", "line_revoke_channel_token",
                 "line_issue_stateless_channel_token", "line_issue_channel_token_jwt",
                 "line_verify_channel_token_jwt", "line_revoke_channel_token_jwt", "line_list_channel_token_key_ids"]


def no_wait_client():
    return HttpClient(sleep=lambda s: None)


def _request_schema(path, method="post"):
    import os

    import yaml

    from openapi import SPEC_DIR
    with open(os.path.join(SPEC_DIR, SPEC), encoding="utf-8") as fh:
        op = yaml.safe_load(fh)["paths"][path][method]
    return op


def form_schema(path):
    """The form's JSON Schema from the OpenAPI operation (refs resolved against its components)."""
    defs, _ = definitions(SPEC)
    schema = _request_schema(path)["requestBody"]["content"]["application/x-www-form-urlencoded"]["schema"]
    text = json.dumps(schema).replace("#/components/schemas/", "#/$defs/")
    return Draft202012Validator(dict(json.loads(text), **{"$defs": defs}))


def form_of(body):
    return {k: v[0] for k, v in parse_qs(body).items()}


# ------------------------------------------------------------ the sandbox, end to end

def test_short_lived_token_issue_use_verify_revoke():
    with Sandbox() as sb:
        oauth = sb.demo_assets()["line_oauth2_client_credentials"]
        (issued,) = run_action("line_issue_channel_token", oauth, {})
        token = issued["json_body"]["access_token"]  # the output: returned, not masked
        assert issued["json_body"]["expires_in"] == 30 * 86400
        assert run_action("line_get_bot_info", {"url": sb.url, "token": token}, {})[0]["ok"]
        (verified,) = run_action("line_verify_channel_token", oauth, {"access_token": token})
        assert verified["json_body"]["client_id"] == oauth["client_id"] and verified["json_body"]["expires_in"] > 0
        (revoked,) = run_action("line_revoke_channel_token", oauth, {"access_token": token})
        assert revoked["ok"] and revoked["json_body"] is None  # LINE answers an empty 200
        with pytest.raises(ActionError) as exc:
            run_action("line_verify_channel_token", oauth, {"access_token": token})
        assert exc.value.output[0]["status_code"] == 400
        with pytest.raises(ActionError):
            run_action("line_get_bot_info", {"url": sb.url, "token": token}, {})


def test_v21_token_issue_list_verify_revoke():
    with Sandbox() as sb:
        jwt_asset = sb.demo_assets()["line_channel_jwt"]
        oauth = sb.demo_assets()["line_oauth2_client_credentials"]
        (issued,) = run_action("line_issue_channel_token_jwt", jwt_asset, {"token_exp": 3600})
        body = issued["json_body"]
        assert body["expires_in"] == 3600 and body["token_type"] == "Bearer"
        (kids,) = run_action("line_list_channel_token_key_ids", jwt_asset, {})
        assert body["key_id"] in kids["json_body"]["kids"]
        (verified,) = run_action("line_verify_channel_token_jwt", jwt_asset, {"access_token": body["access_token"]})
        assert 0 < verified["json_body"]["expires_in"] <= 3600
        assert run_action("line_revoke_channel_token_jwt", oauth, {"access_token": body["access_token"]})[0]["ok"]
        (kids,) = run_action("line_list_channel_token_key_ids", jwt_asset, {})
        assert body["key_id"] not in kids["json_body"]["kids"]
        # the explicit issue is the caller's token, not the pack's shared one
        assert sb.stats()["line"]["v21_tokens_issued"] == 1


@pytest.mark.parametrize("asset_name", ["line_oauth2_client_credentials", "line_channel_jwt"])
def test_stateless_token_from_secret_or_assertion(asset_name):
    with Sandbox() as sb:
        (issued,) = run_action("line_issue_stateless_channel_token", sb.demo_assets()[asset_name], {})
        assert issued["json_body"]["expires_in"] == 900
        token = issued["json_body"]["access_token"]
        assert run_action("line_get_bot_info", {"url": sb.url, "token": token}, {})[0]["ok"]


# ------------------------------------------------------------ what is masked

def test_the_token_to_verify_or_revoke_is_masked_everywhere():
    secret = "caller-token-Sx9!q7/+="
    with Sandbox() as sb:
        asset = sb.demo_assets()["line_channel_access_token"]
        outputs = []
        for name in ("line_verify_channel_token", "line_revoke_channel_token", "line_verify_channel_token_jwt"):
            outputs.append(json.dumps(run_action(name, asset, {"access_token": secret}, dry_run=True)))
            try:
                outputs.append(json.dumps(run_action(name, asset, {"access_token": secret})))
            except ActionError as exc:
                outputs.append(str(exc) + json.dumps(exc.output))
    from urllib.parse import quote, quote_plus
    for text in outputs:
        for form in (secret, quote(secret, safe=""), quote_plus(secret)):
            assert form not in text


def test_the_channel_secret_and_assertion_stay_masked_the_issued_token_does_not():
    with Sandbox() as sb:
        oauth = sb.demo_assets()["line_oauth2_client_credentials"]
        dry = run_action("line_issue_channel_token", oauth, {}, dry_run=True)
        assert oauth["client_secret"] not in json.dumps(dry)
        jwt_asset = sb.demo_assets()["line_channel_jwt"]
        dry = run_action("line_list_channel_token_key_ids", jwt_asset, {}, dry_run=True)
        assert dry[0]["params"]["client_assertion"] == "***"
        (issued,) = run_action("line_issue_channel_token_jwt", jwt_asset, {})
        assert len(issued["json_body"]["access_token"]) > 20 and "***" not in issued["json_body"]["access_token"]


# ------------------------------------------------------------ retry rules

@responses.activate
@pytest.mark.parametrize("action,path,asset", [
    ("line_issue_channel_token", "/v2/oauth/accessToken", {"client_id": "1", "client_secret": "sec-ret-1234"}),
    ("line_issue_channel_token_jwt", "/oauth2/v2.1/token", "jwt"),
])
def test_an_issue_is_never_resent_blindly(action, path, asset):
    """A 500 after the request arrived may have issued a token (30 per
    channel): sent once, and the note says what to check."""
    if asset == "jwt":
        with Sandbox() as sb:
            asset = dict(sb.demo_assets()["line_channel_jwt"], url="https://api.line.me")
            asset.pop("data_url")
    responses.add(responses.POST, "https://api.line.me" + path, body=requests.exceptions.ReadTimeout("read timed out"))
    with pytest.raises(ActionError) as exc:
        run_action(action, asset, {}, client=no_wait_client())
    assert len(responses.calls) == 1
    (result,) = exc.value.output
    assert result["delivery"] == "unknown" and "issued a token" in result["note"]


@responses.activate
def test_verify_and_revoke_are_resent_as_reads_are():
    url = "https://api.line.me/v2/oauth/verify"
    responses.add(responses.POST, url, status=500, json={"message": "x"})
    responses.add(responses.POST, url, json={"client_id": "1", "expires_in": 5, "scope": "P CM"})
    (result,) = run_action("line_verify_channel_token", {"token": "t" * 20}, {"access_token": "abcdefgh"},
                           client=no_wait_client())
    assert result["ok"] and len(responses.calls) == 2


# ------------------------------------------------------------ LINE's OpenAPI judges

FORMS = [
    ("line_issue_channel_token", "line_oauth2_client_credentials", {}, "/v2/oauth/accessToken"),
    ("line_verify_channel_token", "line_channel_access_token", {"access_token": "sandbox-short-lived-token"},
     "/v2/oauth/verify"),
    ("line_revoke_channel_token", "line_channel_access_token", {"access_token": "abcdefgh"}, "/v2/oauth/revoke"),
    ("line_issue_stateless_channel_token", "line_oauth2_client_credentials", {}, "/oauth2/v3/token"),
    ("line_issue_stateless_channel_token", "line_channel_jwt", {}, "/oauth2/v3/token"),
    ("line_issue_channel_token_jwt", "line_channel_jwt", {}, "/oauth2/v2.1/token"),
    ("line_revoke_channel_token_jwt", "line_oauth2_client_credentials", {"access_token": "abcdefgh"},
     "/oauth2/v2.1/revoke"),
]


@pytest.mark.parametrize("action,asset_name,inputs,path", FORMS, ids=["%s-%s" % (f[0], f[1]) for f in FORMS])
def test_request_forms_conform_to_the_openapi(action, asset_name, inputs, path):
    """The form the pack sends, captured by the sandbox, against the
    operation's requestBody schema; and the answer against its 200 schema."""
    with Sandbox() as sb:
        seen = []
        original = sb.dispatch

        def spy(incoming):
            reply = original(incoming)
            seen.append((incoming, reply))
            return reply
        sb.dispatch = spy
        run_action(action, sb.demo_assets()[asset_name], inputs)
    incoming, reply = next((i, r) for i, r in seen if i.path == path)
    assert incoming.header("content-type") == "application/x-www-form-urlencoded"
    form = form_of(incoming.body.decode())
    errors = [e.message for e in form_schema(path).iter_errors(form)]
    assert errors == []
    check_answer(path, "post", reply)


QUERIES = [("line_verify_channel_token_jwt", "line_channel_jwt", {"access_token": "sandbox-v21-token"},
            "/oauth2/v2.1/verify"),
           ("line_list_channel_token_key_ids", "line_channel_jwt", {}, "/oauth2/v2.1/tokens/kid")]


@pytest.mark.parametrize("action,asset_name,inputs,path", QUERIES, ids=[q[0] for q in QUERIES])
def test_query_parameters_conform_to_the_openapi(action, asset_name, inputs, path):
    with Sandbox() as sb:
        seen = []
        original = sb.dispatch
        sb.dispatch = lambda incoming: seen.append((incoming, original(incoming))) or seen[-1][1]
        run_action(action, sb.demo_assets()[asset_name], inputs)
    incoming, reply = next((i, r) for i, r in seen if i.path == path)
    op = _request_schema(path, "get")
    required = {p["name"] for p in op["parameters"] if p.get("required")}
    assert set(incoming.query) == {p["name"] for p in op["parameters"]} and required <= set(incoming.query)
    check_answer(path, "get", reply)


def check_answer(path, method, reply):
    op = _request_schema(path, method)
    content = op["responses"]["200"].get("content")
    assert reply.status == 200
    if content is None:  # revoke: an empty 200
        assert reply.body in (b"", None)
        return
    name = content["application/json"]["schema"]["$ref"].rpartition("/")[2]
    assert [e.message for e in validator(name, SPEC).iter_errors(reply.body)] == []


# ------------------------------------------------------------ the official SDK against the sandbox

def test_the_sdk_drives_every_token_endpoint_against_the_sandbox():
    from linebot.v3.oauth import (ApiClient, ChannelAccessToken, ChannelAccessTokenKeyIdsResponse, Configuration,
                                  IssueChannelAccessTokenResponse, IssueShortLivedChannelAccessTokenResponse,
                                  IssueStatelessChannelAccessTokenResponse, VerifyChannelAccessTokenResponse)

    from line_connector.actions.line.jwt_auth import ASSERTION_TYPE, ChannelAssertion
    from line_connector.redaction import Redactor

    with Sandbox() as sb:
        jwt_asset = sb.demo_assets()["line_channel_jwt"]
        signer = ChannelAssertion(jwt_asset["channel_id"], jwt_asset["kid"], jwt_asset["private_key"], Redactor())
        cid, secret = sb.line.client_id, sb.line.client_secret
        with ApiClient(Configuration(host=sb.url)) as client:
            api = ChannelAccessToken(client)
            short = api.issue_channel_token("client_credentials", cid, secret)
            assert isinstance(short, IssueShortLivedChannelAccessTokenResponse)
            verified = api.verify_channel_token(short.access_token)
            assert isinstance(verified, VerifyChannelAccessTokenResponse) and verified.client_id == cid
            assert api.revoke_channel_token(short.access_token) is None
            stateless = api.issue_stateless_channel_token(grant_type="client_credentials", client_id=cid,
                                                          client_secret=secret)
            assert isinstance(stateless, IssueStatelessChannelAccessTokenResponse) and stateless.expires_in == 900
            stateless = api.issue_stateless_channel_token(grant_type="client_credentials",
                                                          client_assertion_type=ASSERTION_TYPE,
                                                          client_assertion=signer.sign())
            assert isinstance(stateless, IssueStatelessChannelAccessTokenResponse)
            v21 = api.issue_channel_token_by_jwt("client_credentials", ASSERTION_TYPE, signer.sign(3600))
            assert isinstance(v21, IssueChannelAccessTokenResponse) and v21.key_id
            assert isinstance(api.verify_channel_token_by_jwt(v21.access_token), VerifyChannelAccessTokenResponse)
            kids = api.gets_all_valid_channel_access_token_key_ids(ASSERTION_TYPE, signer.sign())
            assert isinstance(kids, ChannelAccessTokenKeyIdsResponse) and v21.key_id in kids.kids
            assert api.revoke_channel_token_by_jwt(cid, secret, v21.access_token) is None
            assert v21.key_id not in api.gets_all_valid_channel_access_token_key_ids(ASSERTION_TYPE,
                                                                                     signer.sign()).kids
