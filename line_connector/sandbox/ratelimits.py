"""LINE's rate limits, enforced by the sandbox (``Sandbox(rate_limits=True)``,
``line-connector sandbox --rate-limits``), so a test can prove the pack
stays under them.

LINE counts per channel and endpoint (Messaging API reference, "Rate
limits"); the sandbox counts per bearer token (its channels) and endpoint,
in fixed windows of the limit's length (a second, a minute, an hour), with
the limits of ``line_connector.ratelimit.LIMITS``. A request past the limit
is answered as LINE answers it: 429 with ``{"message": "The API rate limit
has been exceeded. Try again later."}`` and nothing processed.

Whatever it enforces, it records how many requests each endpoint got in each
second (``stats()``: the busiest second per endpoint, and how many it
refused), the evidence a test compares with LINE's limit x the factor.
"""
import hashlib
import threading
import time

from ..ratelimit import RATE_TEXT, endpoint_of

#: seconds of per-second counts kept per endpoint (older ones are dropped)
KEEP_SECONDS = 3600


class RateLimits:
    """``overrides``: {"POST /v2/bot/message/multicast": (limit, per seconds)}
    to enforce other limits than LINE's (a test proving the property with a
    lower limit, fast)."""

    def __init__(self, overrides=None, clock=time.time):
        self.overrides = dict(overrides or {})
        self.clock = clock
        self.lock = threading.Lock()
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
