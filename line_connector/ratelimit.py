"""LINE's rate limits, held by every process that uses a channel (SPEC 13).

Why: LINE limits each channel per endpoint (Messaging API reference, "Rate
limits") and answers 429 past it; its "Best practices for preventing HTTP
status code 429 errors" page asks every request source to run a token bucket
per endpoint below those limits, with a margin, shared by every application
that uses the channel. A multicast to a million users at ``max_workers: 8``,
or three SOAR workers sending at once, would otherwise exceed the multicast
limit and leave chunks refused.

What:

* ``LIMITS``: LINE's published limits, one line per endpoint with its
  reference anchor (a change of LINE's limits is a one-line edit). Every
  other endpoint has 2,000 requests per second, each its own.
* One bucket per channel (a digest of the credential and the base URL,
  never the credential) and endpoint, held in the state store: a file under
  ``<state dir>/ratelimit/`` updated under an OS file lock (every process
  of the machine), or a small Redis string updated by one Lua script using
  Redis's own clock (replicas and machines). A process-only memory bucket when the
  store is the degraded in-memory one.
* The bucket's size and refill are chosen so that ANY window of the limit's
  length (a second, a minute, an hour) holds at most ``rate_limit_factor``
  (default 0.8) x LINE's limit: burst ``B`` plus ``rate x window`` equals
  that share. Per-second limits burst 10 % of it, per-minute and per-hour
  limits half of it (a playbook sending a few broadcasts should not wait).
* A request takes its token before each attempt; when none is left it is
  told how long until its turn (the token is reserved, so waiters are
  served in order), waits, then sends. A wait longer than what the action's
  deadline leaves is not reserved: the request is "not sent".

Per-audience concurrency (REFERENCE + "#limit-on-the-number-of-concurrent-
operations": at most 10 operations at once per audienceGroupId on the
endpoints that create an audience for uploading user IDs or add IDs to
one): a request that adds IDs to an audience holds one of its slots
(``AudienceLimiter``; 10 x ``rate_limit_factor``, 8 by default) in the
state store (``Store.take_slot`` / ``release_slot``: memory, file, Redis)
from its turn until its answer, the wait counting against the deadline.

Cost on the warm path (one push): one locked 16-byte read and write of a
file (no fsync: the bucket is pacing, not data; a torn or damaged record
reads as an empty bucket, the safe side), or one EVALSHA round trip to
Redis. ``bench/bench_ratelimit.py`` measures both.

429s by cause (LINE's "Handle HTTP status code 429 errors" page: the cause
is in the body's ``message``; LINE processes nothing in a 429): a rate or
concurrency limit is retried with backoff and jitter within the deadline,
the same retry key on every attempt; the monthly or additional message
limit is never retried (``cause_of_429``, ``note_for_429``).
"""
import contextvars
import hashlib
import math
import re
import time
from contextlib import contextmanager
from functools import lru_cache


SECOND, MINUTE, HOUR = 1.0, 60.0, 3600.0
REFERENCE = "https://developers.line.biz/en/reference/messaging-api/"

#: LINE's rate limits per channel (REFERENCE + "#rate-limits"): method, path
#: template, requests, per seconds, the endpoint's anchor in the reference.
LIMITS = (
    ("POST", "/v2/bot/message/narrowcast", 60, HOUR, "#send-narrowcast-message"),
    ("POST", "/v2/bot/message/broadcast", 60, HOUR, "#send-broadcast-message"),
    ("POST", "/v2/bot/audienceGroup/upload", 60, MINUTE, "#create-upload-audience-group"),
    ("POST", "/v2/bot/audienceGroup/upload/byFile", 60, MINUTE, "#create-upload-audience-group-by-file"),
    ("PUT", "/v2/bot/audienceGroup/upload", 60, MINUTE, "#update-upload-audience-group"),
    ("PUT", "/v2/bot/audienceGroup/upload/byFile", 60, MINUTE, "#update-upload-audience-group-by-file"),
    ("POST", "/v2/bot/audienceGroup/click", 60, MINUTE, "#create-click-audience-group"),
    ("POST", "/v2/bot/audienceGroup/imp", 60, MINUTE, "#create-imp-audience-group"),
    ("POST", "/v2/bot/richmenu", 100, HOUR, "#create-rich-menu"),
    ("DELETE", "/v2/bot/richmenu/{richMenuId}", 100, HOUR, "#delete-rich-menu"),
    ("POST", "/v2/bot/richmenu/batch", 3, HOUR, "#batch-control-rich-menus-of-users"),
    ("POST", "/v2/bot/message/multicast", 200, SECOND, "#send-multicast-message"),
    ("PUT", "/v2/bot/channel/webhook/endpoint", 1000, MINUTE, "#set-webhook-endpoint-url"),
    ("GET", "/v2/bot/channel/webhook/endpoint", 1000, MINUTE, "#get-webhook-endpoint-information"),
)
#: every endpoint not in LIMITS (REFERENCE + "#rate-limits": "Other API endpoints")
OTHER_LIMIT = (2000, SECOND)

#: LINE's limit on concurrent operations per audience (REFERENCE +
#: "#limit-on-the-number-of-concurrent-operations"): "We have set a limit on
#: the number of concurrent endpoint operations per audience ID
#: (`audienceGroupId`), for creating an audience for uploading user IDs and
#: adding user IDs to an audience. The total number of requests processed
#: concurrently by the following endpoints is counted as the number of
#: concurrent operations." Maximum number of concurrent operations: 10.
#: "Requests that exceed the limit [...] will return an error with status
#: code `429 Too Many Requests`. If you've received an error, wait a while
#: before making a request again."
AUDIENCE_CONCURRENCY = 10
#: the endpoints it counts (method, path, anchor). Only the two that add IDs
#: name an audienceGroupId before LINE answers, so only they take a slot: a
#: create is the first operation of an audience that does not exist yet.
CONCURRENCY_ENDPOINTS = (
    ("POST", "/v2/bot/audienceGroup/upload", "#create-upload-audience-group"),
    ("POST", "/v2/bot/audienceGroup/upload/byFile", "#create-upload-audience-group-by-file"),
    ("PUT", "/v2/bot/audienceGroup/upload", "#update-upload-audience-group"),
    ("PUT", "/v2/bot/audienceGroup/upload/byFile", "#update-upload-audience-group-by-file"),
)
_SLOT_ENDPOINTS = frozenset((m, p) for m, p, _a in CONCURRENCY_ENDPOINTS if m == "PUT")
#: seconds a slot's lease outlasts what the action's deadline leaves (the
#: deadline's own 2 s of grace, and a margin): a holder that crashed frees
#: its slot at most this long after its deadline
SLOT_LEASE_MARGIN = 10.0
DEFAULT_FACTOR = 0.8
NAMESPACE = "ratelimit"
#: label of the endpoints not in LIMITS (metrics labels are a closed set)
OTHER = "other"

_WINDOW_WORDS = {SECOND: "second", MINUTE: "minute", HOUR: "hour"}


def _template_regex(template):
    return re.compile("^" + re.sub(r"\\\{[A-Za-z]+\\\}", "[^/]+", re.escape(template)) + "$")


_TABLE = [(method, _template_regex(path), "%s %s" % (method, path), limit, per)
          for method, path, limit, per, _anchor in LIMITS]
# path segments that are IDs (user, group, room, rich menu, message, audience):
# an endpoint not in LIMITS is keyed by its template, not by each ID
_ID_SEGMENT = re.compile(r"/(?:[UCR][0-9a-f]{32}|richmenu-[0-9a-f]{32}|richmenualias-[^/]+|[0-9]+)(?=/|$)")


@lru_cache(maxsize=1024)
def endpoint_of(method, path):
    """(endpoint key, metrics label, limit, window seconds) of a request."""
    for m, regex, label, limit, per in _TABLE:
        if m == method and regex.match(path):
            return label, label, limit, per
    return "%s %s" % (method, _ID_SEGMENT.sub("/{id}", path)), OTHER, OTHER_LIMIT[0], OTHER_LIMIT[1]


@lru_cache(maxsize=256)
def bucket_shape(limit, per, factor):
    """(burst, refill per second) such that any window of ``per`` seconds
    holds at most ``factor x limit`` requests: burst + refill x per equals
    that share (a token bucket admits at most burst + rate x T in any T).
    A share below one request per window (a tiny factor on an hourly
    limit) still lets one request through, then ``share`` per window."""
    allowed = limit * factor
    if per <= SECOND:
        burst = max(1.0, math.floor(allowed * 0.1))
    else:  # half the share, rounded up (3 per hour x 0.8: a burst of 2, not 1)
        burst = max(1.0, math.ceil(allowed * 0.5))
    refill = (allowed - burst if allowed > burst else allowed) / per
    return burst, max(refill, 1e-9)


def channel_digest(asset):
    """Who LINE counts against: the channel. A digest of the credential
    (the token, or the client ID, which is the channel ID) and the base URL,
    so two assets of one channel share a bucket and the credential itself
    is never stored."""
    ident = ("client:" + asset["client_id"]) if asset.get("client_id") else ("token:" + str(asset.get("token", "")))
    return _digest("%s\n%s" % (str(asset.get("url", "")).rstrip("/"), ident))


@lru_cache(maxsize=64)
def _digest(text):
    """sha256 hex of ``text``, kept for the few channels a process serves."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


# ------------------------------------------------------------------ observers
#: labels a metric may carry: the endpoints of LIMITS and OTHER (a closed set)
LABELS = frozenset(label for _m, _r, label, _l, _p in _TABLE) | {OTHER}
#: the causes ``cause_of_429`` gives
CAUSES = ("rate", "concurrency", "monthly", "additional", "unknown")
_OBSERVER = contextvars.ContextVar("line_connector_ratelimit_observer", default=None)


@contextmanager
def observe(callback):
    """Within it (worker threads too: they copy the context),
    ``callback(kind, endpoint label, amount, cause)`` is told of every
    limiter wait (``"wait"``, seconds) and every 429 from LINE (``"429"``,
    1, its cause): the service's /metrics. An exception it raises is
    ignored: a metric never fails a send."""
    token = _OBSERVER.set(callback)
    try:
        yield
    finally:
        _OBSERVER.reset(token)


def _tell(kind, label, amount, cause=None):
    callback = _OBSERVER.get()
    if callback is not None:
        try:
            callback(kind, label, amount, cause)
        except Exception:
            pass


# ------------------------------------------------------------------ 429s
#: LINE's 429 ``message`` texts (Messaging API reference "Error responses";
#: "Handle HTTP status code 429 errors"), matched case-insensitively
RATE_TEXT = "The API rate limit has been exceeded. Try again later."
MONTHLY_TEXT = "You have reached your monthly limit."
ADDITIONAL_TEXT = "You have exceeded the target limit for additional messages."
#: LINE's concurrency-limit text (the audience upload endpoints; the 429 page
#: names the cause "the limit on the number of concurrent operations")
CONCURRENCY_TEXT = "The limit on the number of concurrent operations has exceeded."
#: a concurrency refusal worded otherwise: these phrases only, never a bare
#: "concurren" (which would also match unrelated texts)
_CONCURRENCY_PHRASES = ("concurrent operations", "concurrent requests")
#: causes LINE asks to retry later (it processed nothing)
RETRIED = frozenset({"rate", "concurrency"})


def cause_of_429(body):
    """'rate', 'concurrency', 'monthly', 'additional' or 'unknown', from a
    429's JSON body (LINE's ``message``)."""
    message = body.get("message") if isinstance(body, dict) else None
    if not isinstance(message, str):
        return "unknown"
    text = message.lower()
    if "rate limit" in text:
        return "rate"
    if any(phrase in text for phrase in _CONCURRENCY_PHRASES):
        return "concurrency"
    if "monthly limit" in text:
        return "monthly"
    if "additional message" in text:
        return "additional"
    return "unknown"


def note_for_429(result):
    """The note of a 429 result, saying its cause and what to do."""
    cause = cause_of_429(result.get("json_body"))
    attempts = result.get("attempts", 1)
    key = result.get("retry_key")
    resend = ("; resending with the same retry_key (%s) is safe: nothing is delivered twice" % key) if key else ""
    if cause in RETRIED:
        what = "rate limit" if cause == "rate" else "concurrency limit"
        return ("LINE's %s was exceeded (429: LINE processed nothing); %d attempt%s within the deadline, "
                "with backoff and jitter, were all refused%s"
                % (what, attempts, "" if attempts == 1 else "s", resend))
    if cause == "monthly":
        return ("not retried: LINE refused this request for the monthly message quota (429 \"You have reached "
                "your monthly limit.\"); nothing was sent. Check line_get_quota / line_get_consumption; a resend "
                "fails the same way until the quota is raised or the month turns")
    if cause == "additional":
        return ("not retried: LINE refused this request for the target limit for additional messages (429); "
                "nothing was sent. Check line_get_quota / line_get_consumption and the limit set in LINE "
                "Official Account Manager")
    return ("rate limit or monthly message quota exceeded (LINE sends no Retry-After; see json_body.message, "
            "and line_get_quota / line_get_consumption); not retried: the cause is not one LINE asks to retry")


# ------------------------------------------------------------------ the limiter
class Limiter:
    """Paces the attempts of one request (``http.Request.limiter``).

    ``wait(max_wait)``: take a token, sleeping until its turn; returns
    (seconds waited, None), or (0.0, note) without taking one when the turn
    is further than ``max_wait`` (the request is then not sent).
    ``retry(result)``: whether a received answer is a refusal LINE asks to
    retry later (429 for a rate or concurrency limit); counts every 429.
    """

    __slots__ = ("channel", "endpoint", "label", "limit", "per", "factor", "burst", "rate", "_store")
    sleep = staticmethod(time.sleep)

    def __init__(self, channel, method, path, factor=DEFAULT_FACTOR, store=None):
        self.endpoint, self.label, self.limit, self.per = endpoint_of(method, path)
        self.channel = channel
        self.factor = factor
        self.burst, self.rate = bucket_shape(self.limit, self.per, factor)
        self._store = store

    def __repr__(self):
        return "Limiter(%s, %g per %s x %g)" % (self.endpoint, self.limit, _WINDOW_WORDS.get(self.per, self.per),
                                               self.factor)

    def wait(self, max_wait):
        store = self._store
        if store is None:
            from . import state

            store = self._store = state.store()
        wait = take(store, self.channel + "\n" + self.endpoint, self.rate, self.burst, max(0.0, max_wait))
        if wait is None:
            return 0.0, None
        if wait < 0:  # refused: not reserved
            return 0.0, ("not sent: LINE's rate limit for %s (%g per %s, of which this pack uses %g %%: "
                         "rate_limit_factor) would have made this request wait %.1f s, past the action's "
                         "deadline; nothing of it left the machine"
                         % (self.endpoint, self.limit, _WINDOW_WORDS.get(self.per, "%g s" % self.per),
                            self.factor * 100, -wait))
        _tell("wait", self.label, wait)
        self.sleep(wait)
        return wait, None

    def release(self):
        """After each attempt (``http``): nothing to give back here; an
        ``AudienceLimiter`` gives back its concurrency slot."""

    def retry(self, result):
        if result.get("status_code") != 429:
            return False
        cause = cause_of_429(result.get("json_body"))
        _tell("429", self.label, 1, cause)
        return cause in RETRIED


def take(store, key, rate, burst, max_wait):
    """Take one token of the bucket ``key`` in ``store``: None when one was
    there, the seconds until its turn (reserved) when the bucket was empty,
    or minus the seconds it would take when that is more than ``max_wait``
    (nothing reserved)."""
    return store.take_token(key, rate, burst, max_wait)


# ------------------------------------------------------------------ per-audience concurrency
def concurrency_slots(factor=DEFAULT_FACTOR):
    """How many operations on one audience the pack runs at once: LINE's 10
    x ``rate_limit_factor`` (rounded down, at least 1; 8 at the default
    0.8), leaving room for LINE Official Account Manager and other senders."""
    return max(1, int(math.floor(AUDIENCE_CONCURRENCY * factor + 1e-9)))


def audience_key(base_url, audience):
    """The state-store key of an audience's concurrency slots: LINE counts
    per audienceGroupId, whichever channel sends, so the key is the API
    (a digest of the base URL) and the audience, not the channel."""
    where = hashlib.sha256(str(base_url or "").rstrip("/").encode("utf-8", "surrogatepass")).hexdigest()[:32]
    return "%s\naudience %s" % (where, audience)


def limiter_for(channel, method, path, factor=DEFAULT_FACTOR, audience=None, base_url="", store=None):
    """The limiter of one request: an ``AudienceLimiter`` when it adds IDs to
    audience ``audience`` (LINE's per-audience concurrency limit), else a
    ``Limiter``."""
    if audience is not None and (method, path) in _SLOT_ENDPOINTS:
        return AudienceLimiter(channel, method, path, factor, store=store, audience=audience, base_url=base_url)
    return Limiter(channel, method, path, factor, store=store)


class AudienceLimiter(Limiter):
    """A ``Limiter`` that also holds one of the audience's concurrency slots
    (``concurrency_slots``) in the state store while a request is in
    flight: ``wait`` takes the rate token, then a slot (polling with
    backoff while all are taken, the wait counting against the deadline);
    ``release`` gives the slot back after the attempt (``http`` calls it
    after every attempt and when the send ends, whatever happened). A slot
    is leased for what the deadline leaves plus SLOT_LEASE_MARGIN, so a
    process that crashed holding one frees it by then.

    LINE also counts an upload job while it is QUEUED or WORKING, which may
    outlast the request's 202: a 429 for the concurrency limit is then
    retried with backoff (``Limiter.retry``)."""

    __slots__ = ("audience", "slots", "_slot_key", "_held")

    def __init__(self, channel, method, path, factor=DEFAULT_FACTOR, store=None, audience=None, base_url=""):
        Limiter.__init__(self, channel, method, path, factor, store)
        self.audience = audience
        self.slots = concurrency_slots(factor)
        self._slot_key = audience_key(base_url, audience)
        self._held = None

    def __repr__(self):
        return "AudienceLimiter(%s, audience %s, %d of %d at once)" % (self.endpoint, self.audience, self.slots,
                                                                      AUDIENCE_CONCURRENCY)

    def wait(self, max_wait):
        self.release()  # never two slots for one request
        waited, refused = Limiter.wait(self, max_wait)
        if refused:
            return waited, refused
        store = self._store
        started = time.monotonic()
        pause, polled = 0.005, False
        while True:
            spent = time.monotonic() - started
            left = max_wait - waited - spent
            token = store.take_slot(self._slot_key, self.slots, max(0.0, left) + SLOT_LEASE_MARGIN)
            if token is not None:
                self._held = token
                if not polled:  # free at once: no wait to report
                    return waited, None
                spent = time.monotonic() - started
                _tell("wait", self.label, spent)
                return waited + spent, None
            if left <= pause:
                return waited + spent, (
                    "not sent: LINE's limit on concurrent operations per audience (%d; this pack runs %d at once: "
                    "rate_limit_factor) kept every slot of audience %s busy past the action's deadline (waited "
                    "%.1f s); nothing of it left the machine" % (AUDIENCE_CONCURRENCY, self.slots, self.audience,
                                                                  waited + spent))
            self.sleep(pause)
            pause, polled = min(pause * 2, 0.1), True

    def release(self):
        token, self._held = self._held, None
        if token is not None:
            try:
                self._store.release_slot(self._slot_key, token)
            except Exception:  # an unreachable store: the lease ends it
                pass
