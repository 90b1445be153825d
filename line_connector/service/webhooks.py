"""Webhook ingress: ``POST /v1/webhooks/{route}`` (SPEC 9, issue 14 item 4).

``Ingress(config, metrics).handle(route, headers, body) -> (status, json_body)``
is the whole logic; the service app (``line_connector.service.app``) and the
development receiver (``line-connector webhook``, ``webhook_server.py``) are
thin HTTP adapters over it, so both behave alike.

What one delivery goes through, and why:

1. **Route**: an unknown route is 404 (nothing read further).
2. **Signature**: ``x-line-signature`` must be exactly base64(HMAC-SHA256(the
   route's channel secret, the raw body)), checked by the same
   ``actions.line.webhook.parse`` that ``line_parse_webhook`` uses. Missing or
   wrong: 400, and nothing is forwarded or remembered.
3. **De-duplication** by ``webhookEventId`` in the state store (namespace
   ``webhook-events``, 24 h, keyed by route and id): LINE redelivers an event
   it got no 2xx for (and may deliver one twice anyway), and several replicas
   share one Redis. An event already handed over is counted ``duplicate``
   and not handed over again. The delivery's event ids are locked in the
   store (per-key locks, taken in sorted order so two deliveries never
   deadlock) for the whole check-hand-over-mark step, so two replicas that
   get the same event at the same moment hand it over once: the second waits
   for the first, then sees the mark. An event is marked only after every
   sink took it. Events without a ``webhookEventId`` (payloads older than
   that field) are handed over without de-duplication.
4. **Hand-over** to every sink of the route, in config order
   (``line_connector.sinks``). 200 only once every new event is in every
   sink. A sink failure is 500: the events are not marked, so LINE's
   redelivery hands them over then. A sink that had already taken them
   before another sink failed gets them a second time on that redelivery.
   That, and a store failing while marking (after every sink took the
   events, so the answer is 500 and the redelivery hands them over again),
   are the only cases in which a sink sees an event twice.
5. **State store outage** (Redis down, a lock not obtained within the
   bound): 500 and nothing handed over. Never a hand-over without the
   de-duplication, which would duplicate every redelivered event; LINE
   redelivers once the store is back. A file store that degraded to memory
   (its directory unusable) counts as an outage too unless the caller
   explicitly allows an unshared store (the one-process development
   receiver does).

Everything a delivery does is bounded by ``DEADLINE`` (locks, sinks and
their retries), so LINE gets an answer. Answers and log lines hold fixed
texts, event counts, route names and sink places (``config.webhooks.ops.
forward[1] (http)``): never the channel secret, a sink URL or an event.

Metrics (``metrics.webhook_events``, labels route and outcome): events
``handed_over``, ``duplicate``, ``sink_failed`` (events of a delivery a sink
or the store failed), and deliveries ``rejected`` (bad signature or body).
"""
import contextlib
import time

from ..actions.line.webhook import parse
from ..errors import InputError
from ..sinks import SinkError, build_sinks, event_line

NAMESPACE = "webhook-events"
#: seconds an event id is remembered: LINE redelivers within this window
TTL = 24 * 3600
#: seconds one delivery may take, locks and every sink's retries included
DEADLINE = 30.0
#: seconds a delivery waits for the locks held by another delivery of its events
LOCK_WAIT = 20.0


class Route:
    """One webhook route: its channel secret and its sinks. The repr never
    shows the secret."""

    __slots__ = ("name", "secret", "sinks")

    def __init__(self, name, secret, sinks):
        self.name, self.secret, self.sinks = name, secret, list(sinks)

    def __repr__(self):
        return "Route(%r, sinks=%r)" % (self.name, self.sinks)


class _Unavailable(Exception):
    pass


def _default_log():
    from ..serverbase import JsonLog

    return JsonLog("line-connector-webhooks")


class Ingress:
    """The webhook routes of a ``ServiceConfig`` (``config.webhooks``), or
    ``routes`` ({name: Route}) given directly (``Ingress.for_routes``).

    ``store``: a state store, or None for ``line_connector.state.store()`` at
    each delivery (what ``serve`` configured). ``log``: a callable
    ``log(event, **fields)`` (default: JSON lines on stderr).
    ``allow_unshared_state``: accept a store shared within this process only
    (the development receiver)."""

    def __init__(self, config=None, metrics=None, store=None, log=None, routes=None,
                 allow_unshared_state=False, deadline=DEADLINE, lock_wait=LOCK_WAIT):
        self.metrics = metrics
        self._store = store
        self.log = log or _default_log()
        self.allow_unshared_state = allow_unshared_state
        self.deadline = deadline
        self.lock_wait = lock_wait
        self.routes = dict(routes or {})
        if config is not None:
            self.routes.update(self._routes_of(config))

    @classmethod
    def for_routes(cls, routes, **options):
        return cls(routes={r.name: r for r in routes}, **options)

    @staticmethod
    def _routes_of(config):
        routes, details = {}, []
        redactor = getattr(config, "redactor", None)
        for name, spec in (config.webhooks or {}).items():
            asset = config.assets.get(spec.get("asset"))
            secret = asset.values.get("channel_secret") if asset is not None else None
            if not secret:
                details.append({"path": "config.webhooks.%s.asset" % name,
                                "message": "must name a line_channel_secret asset of config.assets"})
                continue
            try:
                sinks = build_sinks(spec.get("forward"), "config.webhooks.%s.forward" % name, redactor)
            except InputError as exc:
                details.extend(exc.details)
                continue
            routes[name] = Route(name, secret, sinks)
        if details:
            for route in routes.values():
                for sink in route.sinks:
                    sink.close()
            raise InputError("invalid webhook routes", details)
        return routes

    def close(self):
        for route in self.routes.values():
            for sink in route.sinks:
                sink.close()

    def __repr__(self):
        return "Ingress(routes=%r)" % sorted(self.routes)

    # ------------------------------------------------------------ metrics
    def _count(self, route, outcome, n):
        if self.metrics is None or n <= 0:
            return
        label = self.metrics.route_label(route) if hasattr(self.metrics, "route_label") else route
        self.metrics.webhook_events.labels(route=label, outcome=outcome).inc(n)

    # ------------------------------------------------------------- handle
    def handle(self, route, headers, body):
        """(status, json body) for one delivery; never raises."""
        try:
            return self._handle(route, headers or {}, body)
        except Exception as exc:  # noqa: BLE001 - a bug is a 500 and one log line, never a traceback
            self.log("webhook_internal_error", route=route if route in self.routes else None,
                     error=type(exc).__name__)
            return 500, {"error": "internal error (%s); LINE redelivers the events" % type(exc).__name__}

    def _reject(self, route, message):
        self._count(route, "rejected", 1)
        self.log("webhook_rejected", route=route, message=message)
        return 400, {"error": message}

    def _handle(self, name, headers, body):
        route = self.routes.get(name)
        if route is None:
            return 404, {"error": "unknown webhook route"}
        if isinstance(body, str):
            body = body.encode("utf-8", "surrogatepass")
        signature = headers.get("x-line-signature")
        try:
            output, ok = parse(body, signature, route.secret)
        except RecursionError:  # a signed body nested deeper than Python's parser goes
            return self._reject(name, "body is nested too deeply")
        if not ok:
            return self._reject(name, output["error"])
        events = output["events"]
        try:
            for event in events:
                event_line(event)
        except ValueError:  # NaN or Infinity: no sink could take it as strict JSON
            return self._reject(name, "body holds a number that is not valid JSON (NaN or Infinity)")
        except RecursionError:
            return self._reject(name, "body is nested too deeply")
        if not events:  # LINE's "verify" request: nothing to hand over
            return 200, {"handed_over": 0, "duplicates": 0}
        from ..http import deadline_scope

        with deadline_scope(self.deadline):
            return self._deliver(route, output.get("destination"), events)

    def _deliver(self, route, destination, events):
        from .. import state

        keyed = set()  # the store keys of the delivery's event ids (route and id)
        for event in events:
            event_id = event.get("webhookEventId")
            if isinstance(event_id, str) and event_id:
                keyed.add("%s\n%s" % (route.name, event_id))
        handed = False
        try:
            with contextlib.ExitStack() as held:
                store = self._store if self._store is not None else state.store()
                started = time.monotonic()
                for key in sorted(keyed):
                    left = max(0.0, self.lock_wait - (time.monotonic() - started))
                    held.enter_context(store.lock(NAMESPACE, key, left))
                fresh_keys = [k for k in keyed if store.get(NAMESPACE, k) is None]
                if not (self.allow_unshared_state or getattr(store, "shared", True)):
                    raise _Unavailable(getattr(store, "note", None) or "the state store is not shared")
                fresh_set = set(fresh_keys)
                fresh = [e for e in events if not isinstance(e.get("webhookEventId"), str)
                         or not e.get("webhookEventId")
                         or ("%s\n%s" % (route.name, e["webhookEventId"])) in fresh_set]
                # one event per id: a delivery that repeats an id within itself hands it over once
                fresh, taken = self._first_of_each(route.name, fresh)
                duplicates = len(events) - len(fresh)
                if fresh:
                    for sink in route.sinks:
                        try:
                            sink.hand_over(destination, fresh)
                        except SinkError as exc:
                            self._count(route.name, "sink_failed", len(fresh))
                            self._count(route.name, "duplicate", duplicates)
                            self.log("webhook_sink_failed", route=route.name, sink=sink.where, kind=sink.kind,
                                     events=len(fresh), message=str(exc))
                            return 500, {"error": "a sink did not take the events: %s; they were not "
                                                  "marked as handed over, so LINE's redelivery hands them "
                                                  "over then" % exc}
                    handed = True
                    marker = {"at": int(time.time())}
                    for key in taken:
                        store.put(NAMESPACE, key, marker, TTL)
        except _Unavailable as exc:
            return self._store_failed(route.name, len(events), "unusable", str(exc), handed)
        except state.LockTimeout as exc:
            return self._store_failed(route.name, len(events), "lock_timeout",
                                      "waited %.1f s for another delivery of these events" % exc.waited, handed)
        except (state.StateUnavailable, OSError) as exc:
            return self._store_failed(route.name, len(events), "unavailable", type(exc).__name__, handed)
        self._count(route.name, "handed_over", len(fresh))
        self._count(route.name, "duplicate", duplicates)
        if duplicates:
            self.log("webhook_duplicates", route=route.name, events=duplicates)
        return 200, {"handed_over": len(fresh), "duplicates": duplicates}

    @staticmethod
    def _first_of_each(route_name, events):
        """(events with the first of each id kept, the keys of those ids)."""
        out, keys = [], []
        seen = set()
        for event in events:
            event_id = event.get("webhookEventId")
            if isinstance(event_id, str) and event_id:
                key = "%s\n%s" % (route_name, event_id)
                if key in seen:
                    continue
                seen.add(key)
                keys.append(key)
            out.append(event)
        return out, keys

    def _store_failed(self, route, n, reason, detail, handed):
        """500 for a store that failed: before the hand-over (nothing was
        handed over) or after it, while marking (the sinks have the events
        but they are not marked: LINE's redelivery hands them over again)."""
        self._count(route, "sink_failed", n)
        self.log("webhook_state_unavailable", route=route, reason=reason, message=detail, events=n,
                 handed_over=handed)
        if handed:
            return 500, {"error": "the state store failed (%s) after the sinks took the events, so they "
                                  "could not be marked as handed over; LINE's redelivery hands them over "
                                  "again" % reason}
        return 500, {"error": "the state store is unavailable (%s), so duplicates cannot be recognized: "
                              "nothing was handed over; LINE redelivers the events" % reason}


__all__ = ["Ingress", "Route", "NAMESPACE", "TTL", "DEADLINE"]
