"""LINE credentials: a channel access token, OAuth 2.0 client credentials, or a
channel's assertion signing key (channel access token v2.1, jwt_auth.py).

Both are objects with the same three methods, so an action never knows
which asset it was given:

* ``headers(client, request)``: the Authorization header, at send time;
* ``masked_headers(request)``: the same header with the secret masked (dry run);
* ``refresh()``: drop a cached token so the next send fetches a new one;
  returns False when there is nothing to refresh (a static token).

Client-credential tokens are kept in the state store (line_connector.state,
SPEC 8), so every process and thread of the machine uses one token: keyed
by token URL, client id and a hash of the secret (never the secret itself),
fetched under that key's lock with a bounded wait, until shortly before
``expires_in`` (clamped to [1 s, 30 days]) runs out.
"""
import hashlib
import time
from urllib.parse import urlencode

from line_connector import state
from line_connector.errors import AuthFailed
from line_connector.http import SAFE_RETRY, Request
from line_connector.redaction import Secret
from line_connector.state import clamp_lifetime, valid_token

BEARER_MASKED = {"Authorization": "Bearer ***"}


class BearerToken:
    def __init__(self, token):
        self._token = Secret(token)

    def headers(self, client, request):
        return {"Authorization": "Bearer " + self._token}

    def masked_headers(self, request):
        return dict(BEARER_MASKED)

    def refresh(self):
        return False

    def __repr__(self):
        return "BearerToken(***)"


NAMESPACE = "line-oauth-token"
#: LINE's short-lived channel access tokens live 30 days, stateless ones 15 minutes
MAX_LIFETIME = 30 * 86400.0
DEFAULT_LIFETIME = 900.0


def _margin(expires_in):
    """Refresh this many seconds early: 10 % of the lifetime, at most 60 s."""
    return min(60.0, expires_in * 0.1)


class ClientCredentials:
    clock = staticmethod(time.time)

    def __init__(self, token_url, client_id, client_secret, redactor, store=None):
        self.token_url = token_url
        self.client_id = client_id
        self._secret = Secret(client_secret)
        self._redactor = redactor
        self._store = store if store is not None else state.store()
        digest = hashlib.sha256(client_secret.encode("utf-8", "surrogatepass")).hexdigest()
        self._key = "%s\n%s\n%s" % (token_url, client_id, digest)
        self._last = None

    def __repr__(self):
        return "ClientCredentials(token_url=%r, client_id=%r, client_secret=***)" % (
            self.token_url, self.client_id)

    def headers(self, client, request):
        return {"Authorization": "Bearer " + self.token(client)}

    def masked_headers(self, request):
        return dict(BEARER_MASKED)

    def refresh(self):
        """Drop the stored token if it is still the one LINE rejected."""
        try:
            with self._store.lock(NAMESPACE, self._key, state.wait_budget()):
                if self._cached() == self._last:
                    self._store.delete(NAMESPACE, self._key)
        except state.LockTimeout:
            pass  # another caller is fetching a new token right now
        return True

    def _cached(self):
        live = state.live_token(self._store.get(NAMESPACE, self._key), self.clock())
        return live[0] if live else None

    def token(self, client):
        token = self._cached()
        if token is None:
            try:
                with self._store.lock(NAMESPACE, self._key, state.wait_budget()):
                    token = self._cached()  # fetched by another caller while this one waited?
                    if token is None:
                        token, expires_in = self._fetch(client)
                        self._store.put(NAMESPACE, self._key,
                                        {"token": token, "expires_at": self.clock() + expires_in - _margin(expires_in)},
                                        ttl=expires_in)
            except state.LockTimeout as exc:
                raise AuthFailed("OAuth token not available: %s" % exc, {
                    "status_code": 0, "reason": "Token lock wait timed out", "response_headers": {},
                    "json_body": None, "error": str(exc), "delivery": "not sent"}) from None
        self._redactor.add(token)
        self._last = token
        return Secret(token)

    def _fetch(self, client):
        body = urlencode({"grant_type": "client_credentials", "client_id": self.client_id,
                          "client_secret": str(self._secret)}).encode("ascii")
        request = Request("POST", self.token_url, body=body, retry=SAFE_RETRY,
                          headers={"Content-Type": "application/x-www-form-urlencoded"})
        return self.parse_token(client.send(request), "OAuth token")

    def parse_token(self, result, what):
        """(token, lifetime) from a token endpoint's result, or AuthFailed."""
        payload = result.get("json_body") if isinstance(result.get("json_body"), dict) else {}
        token = payload.get("access_token")
        if isinstance(token, str):
            self._redactor.add(token)
        if result["status_code"] != 200 or not isinstance(token, str) or not token:
            detail = payload.get("error_description") or payload.get("error") or payload.get("message") \
                or result["reason"]
            raise AuthFailed("%s request to %s failed: %s %s"
                             % (what, self.token_url, result["status_code"], detail), result)
        if not valid_token(token):
            raise AuthFailed("%s request to %s answered an access_token that cannot be used in a "
                             "header (it must be visible ASCII); nothing was cached" % (what, self.token_url), result)
        return token, clamp_lifetime(payload.get("expires_in"), DEFAULT_LIFETIME, 1.0, MAX_LIFETIME)


def line_auth(asset_name, asset, redactor):
    """The credentials object for whichever LINE asset was given."""
    if asset_name == "line_channel_jwt":
        from .jwt_auth import ChannelJwt  # PyJWT is imported only for this asset

        return ChannelJwt(asset["url"], asset["channel_id"], asset["kid"], asset["private_key"],
                          asset.get("token_exp"), redactor)
    if asset_name == "line_oauth2_client_credentials":
        return ClientCredentials(asset["token_url"], asset["client_id"], asset["client_secret"], redactor)
    return BearerToken(asset["token"])
