"""LINE's rate limits, enforced by the sandbox (``Sandbox(rate_limits=True)``,
``line-connector sandbox --rate-limits``), so a test can prove the pack
stays under them.

LINE counts per channel and endpoint (Messaging API reference, "Rate
limits"); the sandbox counts per bearer token (its channels) and endpoint,
in fixed windows of the limit's length (a second, a minute, an hour), with
the limits of ``line_connector.ratelimit.LIMITS``. A request past the limit
is answered as LINE answers it: 429 with ``{"message": "The API rate limit
has been exceeded. Try again later."}`` and nothing processed.

LINE's limit on concurrent operations per audience (reference
"#limit-on-the-number-of-concurrent-operations": 10 per audienceGroupId)
is enforced on the two endpoints that add IDs to an audience (by JSON and
by file): an operation past it is answered 429 with LINE's
``{"message": "The limit on the number of concurrent operations has
exceeded."}`` and nothing processed. An operation is counted while it is
processed; ``operation_seconds`` makes each take that long (LINE takes a
while over 10,000 IDs), so a test can see operations overlap.
``concurrency_stats()``: the limit, the most operations one audience had
at once, and how many were refused.

Whatever it enforces, it records how many requests each endpoint got in each
second (``stats()``: the busiest second per endpoint, and how many it
refused), the evidence a test compares with LINE's limit x the factor.
"""
import hashlib
import threading
import time

from ..ratelimit import AUDIENCE_CONCURRENCY, CONCURRENCY_TEXT, RATE_TEXT, endpoint_of

#: seconds of per-second counts kept per endpoint (older ones are dropped)
KEEP_SECONDS = 3600


class RateLimits:
    """``overrides``: {"POST /v2/bot/message/multicast": (limit, per seconds)}
    to enforce other limits than LINE's (a test proving the property with a
    lower limit, fast). ``concurrency``: the operations one audience may
    have at once (LINE's 10); ``operation_seconds``: how long each takes."""

    def __init__(self, overrides=None, clock=time.time, concurrency=AUDIENCE_CONCURRENCY, operation_seconds=0.0):
        self.overrides = dict(overrides or {})
        self.clock = clock
        self.lock = threading.Lock()
        self.concurrency = concurrency
        self.operation_seconds = operation_seconds
        self._running = {}       # audienceGroupId -> operations being processed
        self._busiest = 0        # the most one audience had at once
        self._refused_ops = 0    # concurrency 429s answered
        self._windows = {}       # (channel, endpoint) -> (window start, count)
        self.per_second = {}     # endpoint -> {second: requests received}
        self.refused = {}        # endpoint -> 429s answered

    def limit_of(self, method, path):
        endpoint, _label, limit, per = endpoint_of(method, path)
        limit, per = self.overrides.get(endpoint, (limit, per))
        return endpoint, limit, per

    def check(self, method, path, authorization):
        """None when the request may be processed, else the 429 body."""
        endpoint, limit, per = self.limit_of(method, path)
        channel = hashlib.sha256((authorization or "").encode("utf-8", "surrogatepass")).hexdigest()
        now = self.clock()
        second = int(now)
        start = now - (now % per)
        with self.lock:
            seconds = self.per_second.setdefault(endpoint, {})
            seconds[second] = seconds.get(second, 0) + 1
            if len(seconds) > KEEP_SECONDS:
                for old in sorted(seconds)[:len(seconds) - KEEP_SECONDS]:
                    del seconds[old]
            key = (channel, endpoint)
            began, count = self._windows.get(key, (start, 0))
            if began != start:
                began, count = start, 0
            if count >= limit:
                self.refused[endpoint] = self.refused.get(endpoint, 0) + 1
                return {"message": RATE_TEXT}
            self._windows[key] = (began, count + 1)
            return None

    def stats(self):
        with self.lock:
            return {endpoint: {"busiest_second": max(seconds.values(), default=0),
                               "limit": list(self.limit_of(*endpoint.split(" ", 1))[1:]),
                               "refused": self.refused.get(endpoint, 0),
                               "per_second": {str(s): n for s, n in sorted(seconds.items())}}
                    for endpoint, seconds in self.per_second.items()}

    # ------------------------------------------------------------ per-audience concurrency
    def begin(self, audience):
        """None when an operation on ``audience`` may start (it is counted
        until ``end``), else LINE's 429 body for the concurrency limit."""
        with self.lock:
            running = self._running.get(audience, 0)
            if running >= self.concurrency:
                self._refused_ops += 1
                return {"message": CONCURRENCY_TEXT}
            self._running[audience] = running + 1
            self._busiest = max(self._busiest, running + 1)
            return None

    def process(self):
        """The time an operation takes (``operation_seconds``)."""
        if self.operation_seconds > 0:
            time.sleep(self.operation_seconds)

    def end(self, audience):
        with self.lock:
            running = self._running.get(audience, 0) - 1
            if running > 0:
                self._running[audience] = running
            else:
                self._running.pop(audience, None)

    def concurrency_stats(self):
        with self.lock:
            return {"limit": self.concurrency, "busiest": self._busiest, "refused": self._refused_ops,
                    "running": sum(self._running.values())}
