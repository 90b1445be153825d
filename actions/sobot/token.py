"""Sobot authentication: one shared token per (url, appid).

``GET /api/get_token?appid&create_time&sign`` with
``sign = md5(appid + create_time + app_key)`` (create_time: 10-digit
seconds). Sobot issues a *new* token on every call and the old one stops
working, so tokens are never fetched per action: they are shared through a
file cache (see line_connector.filecache) that survives between CLI
processes, refreshed shortly before ``expires_in`` runs out, and refetched
once when a call answers 900001/900002. The cache holds the token and its
expiry under a hash of (url, appid, app_key), never app_key itself.
"""
import hashlib
import time
from urllib.parse import urlencode

from line_connector.errors import AuthFailed
from line_connector.filecache import FileCache
from line_connector.http import SAFE_RETRY, Request
from line_connector.redaction import Secret

SUCCESS = "000000"
TOKEN_REJECTED = ("900001", "900002")


def sign(appid, create_time, app_key):
    return hashlib.md5((appid + create_time + app_key).encode("utf-8")).hexdigest()


def _margin(lifetime):
    """Refresh this many seconds before expiry: 10 % of the lifetime, at most 5 minutes."""
    return min(300.0, lifetime * 0.1)


class SobotToken:
    """Auth object: adds the ``token`` header, from the shared cache."""

    clock = staticmethod(time.time)

    def __init__(self, url, appid, app_key, redactor):
        self.url = url.rstrip("/")
        self.appid = appid
        self._key = Secret(app_key)
        self._redactor = redactor
        self._cache = FileCache("sobot-tokens")
        # keyed by a hash over url, appid *and* app_key: a wrong or rotated
        # key must not ride on a token the right key fetched
        self._entry = hashlib.sha256(("%s\n%s\n%s" % (self.url, appid, app_key)).encode("utf-8")).hexdigest()
        self.last_token = None
        self.fetch_results = []   # results of get_token requests made by this object

    def __repr__(self):
        return "SobotToken(url=%r, appid=%r, app_key=***)" % (self.url, self.appid)

    def token_request(self):
        create_time = str(int(self.clock()))
        params = {"appid": self.appid, "create_time": create_time,
                  "sign": sign(self.appid, create_time, str(self._key))}
        return Request("GET", self.url + "/api/get_token", params=params, retry=SAFE_RETRY)

    def current(self, client, force=False):
        """(token, expires_at, fetched?) from the cache, fetching under the
        cache lock when there is none, it is about to expire, or ``force``."""
        with self._cache.locked() as data:
            entry = data.get(self._entry)
            now = self.clock()
            if not force and entry and entry.get("expires_at", 0) - now > 0:
                token, expires_at, fetched = entry["token"], entry["expires_at"], False
            else:
                token, lifetime = self._fetch(client)
                expires_at = now + lifetime - _margin(lifetime)
                for stale in [k for k, v in data.items() if v.get("expires_at", 0) <= now]:
                    del data[stale]
                data[self._entry] = {"token": token, "expires_at": expires_at}
                fetched = True
        self._redactor.add(token)
        self.last_token = token
        return Secret(token), expires_at, fetched

    def _fetch(self, client):
        result = client.send(self.token_request())
        self.fetch_results.append(result)
        body = result.get("json_body") if isinstance(result.get("json_body"), dict) else {}
        item = body.get("item") if isinstance(body.get("item"), dict) else {}
        token = item.get("token")
        if result["status_code"] != 200 or body.get("ret_code") != SUCCESS or not token:
            raise AuthFailed("Sobot get_token failed: %s %s" % (
                body.get("ret_code", result["status_code"]), body.get("ret_msg", result["reason"])), result)
        self._redactor.add(token)
        try:
            lifetime = float(item.get("expires_in", 86400))
        except (TypeError, ValueError):
            lifetime = 86400.0
        return token, max(lifetime, 1.0)

    # --------------------------------------------------- the auth protocol
    def headers(self, client, request):
        return {"token": self.current(client)[0]}

    def masked_headers(self, request):
        return {"token": "***"}

    def refresh(self):
        """Drop the cached token if it is still the one that was rejected
        (another process may already have replaced it). Returns True: the
        engine then resends once, and the next send fetches if needed."""
        with self._cache.locked() as data:
            entry = data.get(self._entry)
            if entry and entry.get("token") == self.last_token:
                del data[self._entry]
        return True
