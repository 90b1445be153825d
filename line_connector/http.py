"""The one HTTP path of the pack: timeouts, TLS, proxy and retries live here.

Actions describe requests (``Request``); ``HttpClient.send`` performs one,
retrying only what its ``RetryPolicy`` allows, and returns the result object
of SPEC section 4 (``status_code``, ``reason``, ``response_headers``,
``json_body``) plus a few keys that say what happened.

Why retries are split by *when* a failure happened:

* ``unsent``: the connection was never made (refused, connect timeout,
  proxy unreachable). Retrying cannot duplicate anything.
* ``maybe_sent``: the request may have reached the server (read timeout,
  connection dropped mid-exchange, 5xx). Retrying is only safe when the
  service deduplicates, as LINE does with ``X-Line-Retry-Key``.

Every loop is bounded by ``max_attempts`` and by ``deadline`` seconds: the
first attempt gets the client's full timeouts (the caller asked for them);
a retry is only started while the deadline leaves room for it, with its
connect and read timeouts cut to what is left, so retrying never runs past
the deadline.
"""
import json
import os
import random
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

DEFAULT_TIMEOUT = (5.0, 30.0)  # (connect, read) seconds
MAX_RAW_BODY = 64 * 1024
#: An attempt is only started when at least this much of the deadline is left.
MIN_ATTEMPT_TIME = 0.5


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 1
    deadline: float = 60.0
    backoff: float = 0.5
    backoff_max: float = 8.0
    retry_statuses: frozenset = frozenset()
    retry_unsent: bool = True
    retry_maybe_sent: bool = False

    def delay(self, attempt):
        """Exponential backoff with full jitter in [base/2, base]."""
        base = min(self.backoff_max, self.backoff * (2 ** (attempt - 1)))
        return base * random.uniform(0.5, 1.0)


#: For requests that change nothing or are deduplicated by the server.
SAFE_RETRY = RetryPolicy(max_attempts=4, retry_statuses=frozenset({500, 502, 503, 504}),
                         retry_unsent=True, retry_maybe_sent=True)
#: For sends the server cannot deduplicate: only a connection never made is retried.
UNSENT_ONLY = RetryPolicy(max_attempts=3, retry_unsent=True, retry_maybe_sent=False)


@dataclass
class Request:
    """One HTTP request an action wants made.

    ``body`` is bytes serialized once by the action: the exact bytes signed
    are the bytes sent. ``auth`` adds credentials at send time (per attempt),
    so a dry run never fetches a token and a signature gets a fresh timestamp.
    ``extra`` keys are copied into the result (e.g. the recipients of a chunk).
    """

    method: str
    url: str
    params: Optional[dict] = None
    headers: dict = field(default_factory=dict)
    body: Optional[bytes] = None
    retry: RetryPolicy = UNSENT_ONLY
    auth: Optional[object] = None
    extra: dict = field(default_factory=dict)

    def describe(self):
        """What --dry-run prints: the request with credentials masked."""
        headers = dict(self.headers)
        if self.auth is not None:
            headers.update(self.auth.masked_headers(self))
        body = None
        if self.body is not None:
            text = self.body.decode("utf-8")
            try:
                body = json.loads(text)
            except ValueError:
                body = text
        out = {"method": self.method, "url": self.url, "headers": headers}
        if self.params:
            out["params"] = self.params
        if body is not None:
            out["body"] = body
        out.update(self.extra)
        return out


def json_bytes(obj):
    """Serialize a JSON body once: compact, UTF-8, non-ASCII kept as is."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _classify(exc):
    """'unsent' if the request surely never reached the server, else 'maybe_sent'."""
    import requests
    from urllib3.exceptions import NewConnectionError

    if isinstance(exc, (requests.exceptions.ConnectTimeout, requests.exceptions.ProxyError)):
        return "unsent"
    if isinstance(exc, requests.exceptions.ConnectionError):
        reason = exc.args[0] if exc.args else None
        inner = getattr(reason, "reason", reason)
        if isinstance(inner, NewConnectionError) or isinstance(reason, NewConnectionError):
            return "unsent"
    return "maybe_sent"


def response_result(resp):
    """The SPEC result object for a received response."""
    body = resp.content
    json_body, raw = None, None
    if body:
        try:
            json_body = json.loads(body)
        except ValueError:
            raw = body[:MAX_RAW_BODY].decode("utf-8", "replace")
    result = {
        "status_code": resp.status_code,
        "reason": resp.reason or "",
        "response_headers": dict(resp.headers),
        "json_body": json_body,
    }
    if raw is not None:
        result["raw_body"] = raw
        if len(body) > MAX_RAW_BODY:
            result["raw_body_truncated"] = True
    return result


def failure_result(kind, exc):
    """The result object for a request that got no HTTP response."""
    import requests

    if isinstance(exc, requests.exceptions.SSLError):
        reason = "TLS verification failed"
    elif isinstance(exc, requests.exceptions.Timeout):
        reason = "Timed out"
    elif isinstance(exc, requests.exceptions.ProxyError):
        reason = "Proxy error"
    else:
        reason = "Connection failed"
    return {
        "status_code": 0,
        "reason": reason,
        "response_headers": {},
        "json_body": None,
        "error": "%s: %s" % (type(exc).__name__, exc),
        "delivery": "not sent" if kind == "unsent" else "unknown",
    }


class HttpClient:
    """A requests.Session with the pack's transport rules.

    ``verify`` is True unless an asset says otherwise; then the CA bundle
    named by ``REQUESTS_CA_BUNDLE`` (or ``CURL_CA_BUNDLE``) is honoured, so a
    machine whose owner added a corporate CA keeps verifying instead of
    turning verification off. ``proxy`` (for both http and https) comes from
    the asset only: environment proxies and .netrc are ignored, so what an
    asset says is what happens. ``timeout`` is (connect, read), always passed.
    ``sleep`` is injectable so tests can run retry loops without waiting.
    """

    def __init__(self, verify=True, proxy=None, timeout=DEFAULT_TIMEOUT, sleep: Callable = time.sleep,
                 pool_size=10):
        import requests
        from requests.adapters import HTTPAdapter

        if verify is True:
            verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
        self.verify = verify
        self.timeout = timeout
        self.sleep = sleep
        self.session = requests.Session()
        self.session.trust_env = False  # proxies come from the asset only, never the environment
        adapter = HTTPAdapter(pool_connections=pool_size, pool_maxsize=pool_size, max_retries=0)
        self.session.mount("https://", adapter)
        self.session.mount("http://", adapter)
        self.session.headers["User-Agent"] = "line-connector/0.1"
        self.proxies = {"http": proxy, "https": proxy} if proxy else {}

    def close(self):
        self.session.close()

    def _attempt_timeout(self, remaining):
        """(connect, read) for one attempt: the client's timeouts, cut to the
        time left before the retry deadline."""
        connect, read = self.timeout
        return (min(connect, remaining), min(read, remaining))

    def send(self, request: Request):
        """Perform ``request`` under its retry policy; never raises for HTTP or
        network failures (they are results). Returns the result dict."""
        import requests

        policy = request.retry
        started = time.monotonic()
        attempt = 0
        uncertain = False  # did any attempt possibly reach the server without a clear answer?
        while True:
            attempt += 1
            timeout = self.timeout if attempt == 1 else \
                self._attempt_timeout(policy.deadline - (time.monotonic() - started))
            headers = dict(request.headers)
            if request.auth is not None:
                headers.update(request.auth.headers(self, request))
            retryable = False
            try:
                resp = self.session.request(
                    request.method, request.url, params=request.params, data=request.body,
                    headers=headers, timeout=timeout, verify=self.verify,
                    proxies=self.proxies, allow_redirects=False)
            except requests.exceptions.RequestException as exc:
                kind = _classify(exc)
                result = failure_result(kind, exc)
                uncertain = uncertain or kind == "maybe_sent"
                if not isinstance(exc, requests.exceptions.SSLError):
                    retryable = policy.retry_unsent if kind == "unsent" else policy.retry_maybe_sent
            else:
                result = response_result(resp)
                uncertain = uncertain or resp.status_code >= 500
                retryable = resp.status_code in policy.retry_statuses
            if not retryable or attempt >= policy.max_attempts:
                break
            pause = policy.delay(attempt)
            if time.monotonic() - started + pause + MIN_ATTEMPT_TIME > policy.deadline:
                break
            self.sleep(pause)
            if time.monotonic() - started + MIN_ATTEMPT_TIME > policy.deadline:
                break  # the sleep overran: no attempt is started that could not finish in time
        result["attempts"] = attempt
        failed = result["status_code"] == 0 or result["status_code"] >= 400
        if failed and uncertain and request.method != "GET":
            # an earlier or the last attempt may have been processed: never claim it was not
            result["delivery"] = "unknown"
        result.update(request.extra)
        return result


_CLIENTS = {}


def client_for(verify=True, proxy=None, timeout=DEFAULT_TIMEOUT, pool_size=10):
    """A shared client per transport setting, so repeated runs in one process
    reuse connections."""
    key = (bool(verify), proxy or None, tuple(timeout), pool_size)
    client = _CLIENTS.get(key)
    if client is None:
        client = _CLIENTS[key] = HttpClient(verify=verify, proxy=proxy, timeout=tuple(timeout),
                                            pool_size=pool_size)
    return client
