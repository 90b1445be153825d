"""Prometheus metrics of one service app (SPEC 9, issue 14).

Why an own ``CollectorRegistry`` per ``Metrics``: the global registry of
prometheus_client is process-wide, so two apps in one process (tests, or an
embedding host) would count into each other or fail on duplicate names.

Why labels are closed sets: a label value is printed as is on /metrics, so
only manifest action names and the fixed outcome words below ever become
labels; an unknown action name, an input value or a secret never does
(``action_label`` maps anything not in the known set to ``"other"``).

Under ``serve --workers N`` (``shared=True``) every worker process counts
into prometheus_client's multiprocess files (the directory named by
``PROMETHEUS_MULTIPROC_DIR``, which the serving parent makes and sets
before prometheus_client is first imported), and ``/metrics`` from any
worker renders the sum over all of them: a scrape that lands on one worker
still sees every request. prometheus_client picks its value storage once,
at import, so a process that imported it before the variable was set cannot
count across workers; ``Metrics(shared=True)`` checks that and refuses
rather than serve per-worker numbers as if they were the service's.
"""
import os

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
OUTCOMES = ("ok", "refused", "invalid", "error")
WEBHOOK_OUTCOMES = ("handed_over", "duplicate", "rejected", "sink_failed")

#: seconds; vendor calls are bounded by the transport's timeouts (tens of seconds)
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class Metrics:
    """The counters of one app. ``known_actions``: the label values allowed
    for ``action`` (default: the manifest's action names); ``known_routes``:
    those allowed for ``route`` (webhook routes of the config);
    ``shared``: count across the worker processes (see the module's
    docstring)."""

    def __init__(self, known_actions=None, known_routes=None, shared=False):
        from prometheus_client import CollectorRegistry, Counter, Histogram

        self.shared_dir = None
        if shared:
            from prometheus_client import values

            self.shared_dir = os.environ.get(MULTIPROC_ENV)
            if not self.shared_dir or values.ValueClass.__name__ != "MmapedValue":
                raise RuntimeError("metrics across workers need %s set before prometheus_client is imported"
                                   % MULTIPROC_ENV)

        if known_actions is None:
            from ..manifest import manifest

            known_actions = list(manifest().actions)
        self.known_actions = frozenset(known_actions)
        self.known_routes = None if known_routes is None else frozenset(known_routes)
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "line_connector_requests", "Action requests by action and outcome (ok, refused, invalid, error).",
            ["action", "outcome"], registry=self.registry)
        self.vendor_latency = Histogram(
            "line_connector_vendor_latency_seconds", "Duration of each HTTP attempt to a vendor, by action.",
            ["action"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.retries = Counter(
            "line_connector_retries", "HTTP attempts beyond the first, by action.",
            ["action"], registry=self.registry)
        self.webhook_events = Counter(
            "line_connector_webhook_events",
            "Webhook events by route and outcome (handed_over, duplicate, sink_failed; deliveries rejected, busy).",
            ["route", "outcome"], registry=self.registry)
        self.rate_limit_waits = Counter(
            "line_connector_rate_limit_waits", "LINE requests that waited for the rate limiter, by endpoint.",
            ["endpoint"], registry=self.registry)
        self.rate_limit_wait_seconds = Counter(
            "line_connector_rate_limit_wait_seconds", "Seconds LINE requests waited for the rate limiter.",
            ["endpoint"], registry=self.registry)
        self.line_429 = Counter(
            "line_connector_line_429", "429 answers from LINE by endpoint and cause (rate, concurrency, "
            "monthly, additional, unknown).", ["endpoint", "cause"], registry=self.registry)

    def action_label(self, name):
        """``name`` if it is a known action, else ``"other"`` (never caller text)."""
        return name if name in self.known_actions else "other"

    def route_label(self, route):
        """``route`` if it is a configured webhook route, else ``"other"``."""
        if self.known_routes is None or route in self.known_routes:
            return route
        return "other"

    def count_request(self, action, outcome):
        if outcome not in OUTCOMES:
            outcome = "error"
        self.requests.labels(action=self.action_label(action), outcome=outcome).inc()

    def observe_latency(self, action, seconds):
        self.vendor_latency.labels(action=self.action_label(action)).observe(max(0.0, float(seconds)))

    def count_retries(self, action, attempts):
        """``attempts``: the result's attempt count; the first is not a retry."""
        try:
            extra = int(attempts) - 1
        except (TypeError, ValueError):
            return
        if extra > 0:
            self.retries.labels(action=self.action_label(action)).inc(extra)

    def count_rate_limit(self, kind, endpoint, amount, cause=None):
        """An event of LINE's rate limiter (``line_connector.ratelimit.observe``):
        a wait of ``amount`` seconds, or a 429 of ``cause``."""
        from ..ratelimit import CAUSES, LABELS, OTHER

        endpoint = endpoint if endpoint in LABELS else OTHER
        if kind == "wait":
            self.rate_limit_waits.labels(endpoint=endpoint).inc()
            self.rate_limit_wait_seconds.labels(endpoint=endpoint).inc(max(0.0, float(amount)))
        elif kind == "429":
            self.line_429.labels(endpoint=endpoint, cause=cause if cause in CAUSES else "unknown").inc()

    def count_webhook(self, route, outcome):
        if outcome not in WEBHOOK_OUTCOMES:
            raise ValueError("webhook outcome must be one of %s" % ", ".join(WEBHOOK_OUTCOMES))
        self.webhook_events.labels(route=self.route_label(route), outcome=outcome).inc()

    def render(self):
        """(bytes, content_type) in the Prometheus text format. Declared as
        version 0.0.4, which every Prometheus release reads (newer clients
        say 1.0.0, unknown to older servers; our names are plain ASCII, so
        the text is the same)."""
        from prometheus_client import generate_latest

        if self.shared_dir is None:
            return generate_latest(self.registry), CONTENT_TYPE
        from prometheus_client import CollectorRegistry
        from prometheus_client.multiprocess import MultiProcessCollector

        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=self.shared_dir)
        return generate_latest(registry), CONTENT_TYPE
