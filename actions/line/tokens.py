"""Channel access token endpoints: issue, verify, revoke, list key IDs.

developers.line.biz/en/reference/messaging-api/: #issue-shortlived-channel-access-token,
#verify-channel-access-token, #revoke-longlived-or-shortlived-channel-access-token,
#issue-stateless-channel-access-token, #issue-channel-access-token-v2-1,
#verify-channel-access-token-v2-1, #revoke-channel-access-token-v2-1,
#get-all-valid-channel-access-token-key-ids-v2-1.

These endpoints take no Bearer token: the credential is in the form (channel
ID and secret, or a JWT assertion signed with the line_channel_jwt asset's
key) or is the token being checked. Bodies are form-encoded, as LINE wants.

What is masked (decided here, as a security team would):

* an issued token is the action's output: it is returned once, in
  ``json_body.access_token``. Masking it would leave a live credential no one
  can use or revoke (revoking needs the token itself). It is never logged:
  the pack logs no bodies;
* the token given to verify or revoke is masked everywhere (the request URL,
  a dry run, errors): the caller already has it, echoing it gains nothing;
* the channel secret, the private key and the signed assertion stay masked,
  as everywhere (the assertion issues tokens until it expires).

Retries: an issue that counts against a limit (v2.1: 30 live tokens per
channel; short-lived: 30) is sent once and never resent blindly, since a lost
answer may have issued a token; the note says how to find out. A stateless
token has no limit and cannot be revoked: its issue is resent like a read.
Verify is a read; revoking twice has no second effect (RFC 7009 semantics,
LINE answers 200 either way), so both are resent safely.
"""
from urllib.parse import urlencode

from line_connector.http import SAFE_RETRY, UNSENT_ONLY, Request

from .base import LineAction

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


class TokenAction(LineAction):
    #: the form's fields from the asset and inputs; see ``form``
    method = "POST"
    #: True: an empty 200 answer is LINE's success (the revoke endpoints)
    empty_ok = False
    #: what to check when an issue's answer was lost
    lost_issue_note = None

    def form(self, inputs):
        return {}

    def build(self, inputs):
        if "access_token" in inputs:  # the caller's token: a secret in every output
            self.redactor.add(inputs["access_token"])
        fields = self.form(inputs)
        retry = SAFE_RETRY if self.idempotent else UNSENT_ONLY
        if self.method == "GET":
            return [Request("GET", self.url(self.path), params=fields, retry=retry)]
        return [Request("POST", self.url(self.path), body=urlencode(fields).encode("ascii"), headers=dict(FORM),
                        retry=retry)]

    def judge(self, request, result):
        if self.empty_ok and result["status_code"] == 200 and result["json_body"] is None:
            return True
        ok = super().judge(request, result)
        if not ok and self.lost_issue_note and result.get("delivery") == "unknown":
            result["note"] = "outcome unknown: the request may have reached LINE and issued a token; " \
                             + self.lost_issue_note
        return ok

    def client_credentials(self):
        return {"client_id": self.asset["client_id"], "client_secret": self.asset["client_secret"]}

    def assertion(self, token_exp=None):
        """LINE's assertion form, signed with the line_channel_jwt asset's key."""
        from .jwt_auth import ChannelAssertion

        signer = ChannelAssertion(self.asset["channel_id"], self.asset["kid"], self.asset["private_key"],
                                  self.redactor)
        return signer.form(token_exp)


class IssueChannelToken(TokenAction):
    """POST /v2/oauth/accessToken: a short-lived token (30 days) from the
    channel ID and secret. At most 30 are live per channel: sent once."""
    path = "/v2/oauth/accessToken"
    idempotent = False
    lost_issue_note = ("it expires in 30 days; LINE offers no list of short-lived tokens, so do not issue "
                       "again in a loop (30 live tokens at most)")

    def form(self, inputs):
        return dict(grant_type="client_credentials", **self.client_credentials())


class VerifyChannelToken(TokenAction):
    """POST /v2/oauth/verify: a short- or long-lived token's channel,
    lifetime left and scope."""
    path = "/v2/oauth/verify"
    idempotent = True
    read_only = True

    def form(self, inputs):
        return {"access_token": inputs["access_token"]}


class RevokeChannelToken(TokenAction):
    """POST /v2/oauth/revoke: revoke a short- or long-lived token."""
    path = "/v2/oauth/revoke"
    idempotent = True
    destructive = True
    empty_ok = True

    def form(self, inputs):
        return {"access_token": inputs["access_token"]}


class IssueStatelessChannelToken(TokenAction):
    """POST /oauth2/v3/token: a stateless token (15 minutes, no limit, not
    revocable) from the channel secret or a JWT assertion."""
    path = "/oauth2/v3/token"
    idempotent = True  # no limit to use up, nothing to revoke: a repeat only issues another

    def form(self, inputs):
        if self.asset_name == "line_channel_jwt":
            return self.assertion()
        return dict(grant_type="client_credentials", **self.client_credentials())


class IssueChannelTokenJwt(TokenAction):
    """POST /oauth2/v2.1/token: a channel access token v2.1 from a JWT
    assertion, living ``token_exp`` seconds (the asset's, or this input's)."""
    path = "/oauth2/v2.1/token"
    idempotent = False
    lost_issue_note = ("line_list_channel_token_key_ids lists the live tokens' key IDs; LINE keeps at most 30 "
                       "per channel")

    def form(self, inputs):
        return self.assertion(inputs.get("token_exp", self.asset.get("token_exp")))


class VerifyChannelTokenJwt(TokenAction):
    """GET /oauth2/v2.1/verify?access_token=: a v2.1 token's channel,
    lifetime left and scope."""
    method = "GET"
    path = "/oauth2/v2.1/verify"
    idempotent = True

    def form(self, inputs):
        return {"access_token": inputs["access_token"]}


class RevokeChannelTokenJwt(TokenAction):
    """POST /oauth2/v2.1/revoke: revoke a v2.1 token (LINE asks for the
    channel ID and secret with it)."""
    path = "/oauth2/v2.1/revoke"
    idempotent = True
    destructive = True
    empty_ok = True

    def form(self, inputs):
        return dict(self.client_credentials(), access_token=inputs["access_token"])


class ListChannelTokenKeyIds(TokenAction):
    """GET /oauth2/v2.1/tokens/kid: the key IDs of the channel's live v2.1
    tokens (authenticated by a JWT assertion in the query)."""
    method = "GET"
    path = "/oauth2/v2.1/tokens/kid"
    idempotent = True

    def form(self, inputs):
        form = self.assertion()
        return {"client_assertion_type": form["client_assertion_type"],
                "client_assertion": form["client_assertion"]}
