"""Sobot authentication: one shared token per (url, appid, app_key).

``GET /api/get_token?appid&create_time&sign`` with
``sign = md5(appid + create_time + app_key)`` (create_time: 10-digit
seconds). Sobot issues a *new* token on every call and the old one stops
working, so tokens are never fetched per action: they are shared through the
state store (line_connector.state), which survives between CLI processes,
refreshed shortly before ``expires_in`` runs out, and refetched once when a
call answers 900001/900002.

Each asset has its own entry and its own lock, keyed by a hash of (url,
appid, app_key) (never app_key itself): a slow token URL of one tenant never
blocks another, and a wrong or rotated key never rides on a token the right
key fetched. The lock is only taken to fetch, and waited for at most what the
action's deadline leaves; an entry is re-validated on every read, so a
damaged one is fetched over instead of crashing the action.
"""
import hashlib
import time

from line_connector import state
from line_connector.state import MAX_TOKEN_LENGTH, clamp_lifetime, valid_token
from line_connector.errors import AuthFailed
from line_connector.http import SAFE_RETRY, Request
from line_connector.redaction import Secret

SUCCESS = "000000"
TOKEN_REJECTED = ("900001", "900002")
NAMESPACE = "sobot-token"
#: Sobot documents a 24 h token lifetime: ``expires_in`` is clamped into
#: [1 s, 24 h] and a missing or non-numeric one counts as 24 h
LIFETIME = 86400.0


def sign(appid, create_time, app_key):
    return hashlib.md5((appid + create_time + app_key).encode("utf-8")).hexdigest()


def _margin(lifetime):
    """Refresh this many seconds before expiry: 10 % of the lifetime, at most 5 minutes."""
    return min(300.0, lifetime * 0.1)


class SobotToken:
    """Auth object: adds the ``token`` header, from the shared store."""

    clock = staticmethod(time.time)

    def __init__(self, url, appid, app_key, redactor, store=None):
        self.url = url.rstrip("/")
        self.appid = appid
        self._key = Secret(app_key)
        self._redactor = redactor
        self._store = store if store is not None else state.store()
        self._entry = hashlib.sha256(("%s\n%s\n%s" % (self.url, appid, app_key))
                                     .encode("utf-8", "surrogatepass")).hexdigest()
        self.last_token = None
        self.fetch_results = []   # results of get_token requests made by this object

    def __repr__(self):
        return "SobotToken(url=%r, appid=%r, app_key=***)" % (self.url, self.appid)

    def token_request(self):
        create_time = str(int(self.clock()))
        params = {"appid": self.appid, "create_time": create_time,
                  "sign": sign(self.appid, create_time, str(self._key))}
        return Request("GET", self.url + "/api/get_token", params=params, retry=SAFE_RETRY)

    def _cached(self):
        """(token, expires_at) of a valid, unexpired entry, else None."""
        return state.live_token(self._store.get(NAMESPACE, self._entry), self.clock())

    def current(self, client, force=False):
        """(token, expires_at, fetched?) from the store, fetching under this
        asset's lock when there is none, it is about to expire, or ``force``."""
        cached = None if force else self._cached()
        fetched = False
        if cached is None:
            try:
                with self._store.lock(NAMESPACE, self._entry, state.wait_budget()):
                    # another process may have fetched while this one waited
                    cached = None if force else self._cached()
                    if cached is None:
                        token, lifetime = self._fetch(client)
                        now = self.clock()
                        cached = (token, now + lifetime - _margin(lifetime))
                        self._store.put(NAMESPACE, self._entry, {"token": token, "expires_at": cached[1]},
                                        ttl=lifetime)
                        fetched = True
            except state.LockTimeout as exc:
                raise AuthFailed("Sobot token not available: %s" % exc, _lock_result(exc)) from None
        token, expires_at = cached
        self._redactor.add(token)
        self.last_token = token
        return Secret(token), expires_at, fetched

    def _fetch(self, client):
        result = client.send(self.token_request())
        self.fetch_results.append(result)
        body = result.get("json_body") if isinstance(result.get("json_body"), dict) else {}
        item = body.get("item") if isinstance(body.get("item"), dict) else {}
        token = item.get("token")
        if isinstance(token, str):
            self._redactor.add(token)
        if result["status_code"] != 200 or body.get("ret_code") != SUCCESS or not token:
            raise AuthFailed("Sobot get_token failed: %s %s" % (
                body.get("ret_code", result["status_code"]), body.get("ret_msg", result["reason"])), result)
        if not valid_token(token):
            raise AuthFailed("Sobot get_token answered a token that cannot be used: it must be a string of "
                             "visible ASCII characters (no spaces, newlines or control characters), at most %d "
                             "long; nothing was cached" % MAX_TOKEN_LENGTH, result)
        return token, clamp_lifetime(item.get("expires_in"), LIFETIME, 1.0, LIFETIME)

    # --------------------------------------------------- the auth protocol
    def headers(self, client, request):
        # the transport sends every header value as a plain str (requests 2.28,
        # pinned by swimlane_core, refuses a str subclass: tests/doors/test_turbine.py)
        return {"token": self.current(client)[0]}

    def masked_headers(self, request):
        return {"token": "***"}

    def refresh(self):
        """Drop the stored token if it is still the one that was rejected
        (another process may already have replaced it). Returns True: the
        engine then resends once, and the next send fetches if needed."""
        try:
            with self._store.lock(NAMESPACE, self._entry, state.wait_budget()):
                cached = self._cached()
                if cached is not None and cached[0] == self.last_token:
                    self._store.delete(NAMESPACE, self._entry)
        except state.LockTimeout:
            pass  # someone else holds the lock, i.e. is fetching a new token already
        return True


def _lock_result(exc):
    """The result reported when the token lock could not be had in time:
    nothing was sent."""
    return {"status_code": 0, "reason": "Token lock wait timed out", "response_headers": {}, "json_body": None,
            "error": str(exc), "delivery": "not sent"}
