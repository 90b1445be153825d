"""LINE credentials: a channel access token, or OAuth 2.0 client credentials.

Both are objects with the same three methods, so an action never knows
which asset it was given:

* ``headers(client, request)``: the Authorization header, at send time;
* ``masked_headers(request)``: the same header with the secret masked (dry run);
* ``refresh()``: drop a cached token so the next send fetches a new one;
  returns False when there is nothing to refresh (a static token).

Client-credential tokens are cached per process, keyed by token URL, client
id and a hash of the secret, until shortly before ``expires_in`` runs out.
"""
import hashlib
import threading
import time
from urllib.parse import urlencode

from line_connector.errors import AuthFailed
from line_connector.http import SAFE_RETRY, Request
from line_connector.redaction import Secret

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


_CACHE = {}          # key -> (token, expires_at on the monotonic clock)
_CACHE_LOCK = threading.Lock()
_KEY_LOCKS = {}


def _margin(expires_in):
    """Refresh this many seconds early: 10 % of the lifetime, at most 60 s."""
    return min(60.0, expires_in * 0.1)


class ClientCredentials:
    def __init__(self, token_url, client_id, client_secret, redactor):
        self.token_url = token_url
        self.client_id = client_id
        self._secret = Secret(client_secret)
        self._redactor = redactor
        digest = hashlib.sha256(client_secret.encode("utf-8")).hexdigest()
        self._key = (token_url, client_id, digest)
        with _CACHE_LOCK:
            self._lock = _KEY_LOCKS.setdefault(self._key, threading.Lock())

    def __repr__(self):
        return "ClientCredentials(token_url=%r, client_id=%r, client_secret=***)" % (
            self.token_url, self.client_id)

    def headers(self, client, request):
        return {"Authorization": "Bearer " + self.token(client)}

    def masked_headers(self, request):
        return dict(BEARER_MASKED)

    def refresh(self):
        with self._lock:
            _CACHE.pop(self._key, None)
        return True

    def token(self, client):
        with self._lock:
            cached = _CACHE.get(self._key)
            if cached and time.monotonic() < cached[1]:
                self._redactor.add(cached[0])
                return cached[0]
            token, expires_in = self._fetch(client)
            _CACHE[self._key] = (token, time.monotonic() + expires_in - _margin(expires_in))
            return token

    def _fetch(self, client):
        body = urlencode({"grant_type": "client_credentials", "client_id": self.client_id,
                          "client_secret": str(self._secret)}).encode("ascii")
        request = Request("POST", self.token_url, body=body, retry=SAFE_RETRY,
                          headers={"Content-Type": "application/x-www-form-urlencoded"})
        result = client.send(request)
        payload = result.get("json_body") if isinstance(result.get("json_body"), dict) else {}
        token = payload.get("access_token")
        if result["status_code"] != 200 or not isinstance(token, str) or not token:
            detail = payload.get("error_description") or payload.get("error") or payload.get("message") \
                or result["reason"]
            raise AuthFailed("OAuth token request to %s failed: %s %s"
                             % (self.token_url, result["status_code"], detail), result)
        self._redactor.add(token)
        try:
            expires_in = float(payload.get("expires_in", 900))
        except (TypeError, ValueError):
            expires_in = 900.0
        return Secret(token), max(expires_in, 1.0)


def line_auth(asset_name, asset, redactor):
    """The credentials object for whichever LINE asset was given."""
    if asset_name == "line_oauth2_client_credentials":
        return ClientCredentials(asset["token_url"], asset["client_id"], asset["client_secret"], redactor)
    return BearerToken(asset["token"])
