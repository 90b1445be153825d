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

Before any of that reaches a sink, two gates:

* **The body is checked whole** (``body_problem``): strict JSON values
  (no NaN or Infinity, no lone surrogate such as an escaped ``"\\ud800"``,
  integers within 64 bits, a bounded depth) and the shape LINE sends
  (``destination`` a string, ``events`` a list of objects, each with a
  ``type``; ``webhookEventId`` and ``timestamp`` of the right type when
  present). A body one sink would refuse is 400 and reaches no sink: else
  the jsonl sink would write a poison event, the http sink refuse it, the
  answer be 500 and LINE's redelivery write it again, forever. (The
  development receiver, whose one sink prints a lone surrogate
  ``\\u``-escaped, checks the shape and NaN only: ``strict_text``.)
* **Bounded concurrency per route** (``concurrency`` in the route's
  config, default ``ROUTE_CONCURRENCY``), and over all routes together
  (``total_limit``: the service keeps some of its server's threads for
  actions and ``/healthz``). A delivery past the bound is 503 at once,
  with nothing handed over (LINE redelivers): a route whose sink hangs
  holds at most its own slots for at most ``DEADLINE``, and every other
  caller keeps being answered. The slots are taken without waiting: a
  queue in front of a hung sink would only hold more server threads.

Everything a delivery does is bounded by ``DEADLINE`` (locks, sinks and
their retries), so LINE gets an answer. Answers and log lines hold fixed
texts, event counts, route names and sink places (``config.webhooks.ops.
forward[1] (http)``): never the channel secret, a sink URL or an event.

Metrics (``metrics.webhook_events``, labels route and outcome): events
``handed_over``, ``duplicate``, ``sink_failed`` (events of a delivery a sink
or the store failed), and deliveries ``rejected`` (bad signature or body)
or ``busy`` (refused with 503: the route was saturated).

Under ``serve --workers N`` the per-route bound holds across the worker
processes (``SharedSlots``: one lock file per slot, in a directory the
serving parent made), so N workers never hand over N times a route's
``concurrency`` at once; the bound over all routes together stays per
process, as it guards that process's own threads.
"""
import contextlib
import hashlib
import os
import threading
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
#: deliveries of one route handed over at the same time, unless its config says
#: ``concurrency``; one more is answered 503 at once
ROUTE_CONCURRENCY = 4


def body_problem(doc, events, strict_text=True):
    """Why a verified webhook body is not one every sink can take as it is
    (or None): ``doc`` the parsed body, ``events`` its events as the
    ingress hands them over. ``strict_text``: strict JSON values too (no
    lone surrogate, integers within 64 bits, bounded depth). Never quotes a
    value."""
    from ..validation import json_value_problems

    if "destination" in doc and not isinstance(doc["destination"], str):
        return "body.destination must be a string"
    for i, event in enumerate(doc["events"]):
        if not isinstance(event, dict):
            return "body.events[%d] must be an object" % i
        if not isinstance(event.get("type"), str) or not event["type"]:
            return "body.events[%d].type must be a non-empty string" % i
        if "webhookEventId" in event and not (isinstance(event["webhookEventId"], str)
                                              and event["webhookEventId"]):
            return "body.events[%d].webhookEventId must be a non-empty string" % i
        if "timestamp" in event and (isinstance(event["timestamp"], bool)
                                     or not isinstance(event["timestamp"], int)):
            return "body.events[%d].timestamp must be an integer (milliseconds)" % i
    if not strict_text:
        return None
    problems = json_value_problems({"destination": doc.get("destination"), "events": events}, "body")
    if problems:
        return "%s %s" % (problems[0]["path"], problems[0]["message"])
    return None


class SharedSlots:
    """At most ``size`` holders at once across every process that uses
    ``directory``: the bound of one route's deliveries under ``serve
    --workers N``. Used as a ``threading.BoundedSemaphore`` taken without
    waiting: ``acquire(blocking=False)`` -> bool, then ``release()`` by the
    same thread (a release by a thread holding no slot is a RuntimeError).

    Why lock files: slot i is held while a process has an exclusive
    ``flock`` on file i, taken with ``LOCK_NB`` (never a wait: a saturated
    route answers 503 at once). The kernel drops a dead process's locks, so
    a worker killed mid-delivery never leaks a slot, and no shared counter
    can drift. ``flock`` locks belong to an open file description, so each
    process opens the files itself (after a fork the inherited ones would
    be shared with the parent's): at construction, or on first use in a
    process forked since. A thread lock per slot keeps two threads of one
    process from both counting one file lock as theirs."""

    def __init__(self, directory, name, size):
        if not (isinstance(size, int) and size >= 1):
            raise ValueError("size must be a positive integer")
        tag = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:24]
        self.paths = [os.path.join(directory, "route-%s.%d" % (tag, i)) for i in range(size)]
        self._guard = threading.Lock()
        self._mine = threading.local()
        self._pid, self._slots = None, []
        self._opened()  # now: a directory that cannot hold them is a start-up error

    def _opened(self):
        """[(descriptor, thread lock)] of this process, opened once per process."""
        pid = os.getpid()
        if self._pid != pid:
            with self._guard:
                if self._pid != pid:
                    flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
                    self._slots = [(os.open(path, flags, 0o600), threading.Lock()) for path in self.paths]
                    self._pid = pid
        return self._slots

    def acquire(self, blocking=False):
        """True with a slot taken by this thread, False when all are held."""
        import fcntl

        if blocking:
            raise ValueError("SharedSlots never waits: acquire(blocking=False)")
        for fd, lock in self._opened():
            if not lock.acquire(blocking=False):
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:  # held by another process (EWOULDBLOCK), or unusable: not ours
                lock.release()
                continue
            self._mine.__dict__.setdefault("held", []).append((fd, lock))
            return True
        return False

    def release(self):
        import fcntl

        held = self._mine.__dict__.get("held")
        if not held:
            raise RuntimeError("SharedSlots.release() by a thread that holds no slot")
        fd, lock = held.pop()
        try:
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            lock.release()

    def close(self):
        """Close the descriptors of the slots no thread holds. A held one
        stays open (its lock with it) until its release or this process's
        exit: closing it would free the slot to another process while its
        delivery is still being handed over."""
        with self._guard:
            slots, self._slots, self._pid = self._slots, [], None
        for fd, lock in slots:
            if lock.acquire(blocking=False):
                try:
                    os.close(fd)
                except OSError:
                    pass

    def __repr__(self):
        return "SharedSlots(size=%d)" % len(self.paths)


class Route:
    """One webhook route: its channel secret and its sinks. The repr never
    shows the secret. ``slots_dir``: where the route's slots are shared
    with the other worker processes of ``serve --workers`` (None: this
    process only)."""

    __slots__ = ("name", "secret", "sinks", "slots")

    def __init__(self, name, secret, sinks, concurrency=None, slots_dir=None):
        self.name, self.secret, self.sinks = name, secret, list(sinks)
        #: deliveries of this route being handed over, at most ``concurrency``
        #: (None: no bound; the service's routes always have one, see ``_routes_of``)
        if not concurrency:
            self.slots = None
        elif slots_dir is not None:
            self.slots = SharedSlots(slots_dir, name, concurrency)
        else:
            self.slots = threading.BoundedSemaphore(concurrency)

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
    (the development receiver). ``strict_text``: refuse (400) a body whose
    values are not strict JSON text, such as a lone surrogate (the service,
    whose http and redis sinks would refuse it; the development receiver
    prints it ``\\u``-escaped instead)."""

    def __init__(self, config=None, metrics=None, store=None, log=None, routes=None,
                 allow_unshared_state=False, deadline=DEADLINE, lock_wait=LOCK_WAIT, total_limit=None,
                 strict_text=False, slots_dir=None):
        self.metrics = metrics
        self.strict_text = strict_text
        self._total = None
        self.set_total_limit(total_limit)
        self._store = store
        self.log = log or _default_log()
        self.allow_unshared_state = allow_unshared_state
        self.deadline = deadline
        self.lock_wait = lock_wait
        self.routes = dict(routes or {})
        if config is not None:
            self.routes.update(self._routes_of(config, slots_dir))

    def set_total_limit(self, limit):
        """At most ``limit`` deliveries of all routes together (None: only
        the per-route bounds). The service sets it below its server's
        thread count, so webhooks never take every thread."""
        self._total = threading.BoundedSemaphore(limit) if limit else None

    @classmethod
    def for_routes(cls, routes, **options):
        return cls(routes={r.name: r for r in routes}, **options)

    @staticmethod
    def _routes_of(config, slots_dir=None):
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
            routes[name] = Route(name, secret, sinks, spec.get("concurrency", ROUTE_CONCURRENCY), slots_dir)
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
            if isinstance(route.slots, SharedSlots):
                route.slots.close()

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
            problem = body_problem({"destination": output.get("destination"),
                                    "events": [e["raw"] for e in events]}, events, self.strict_text)
            if problem is None:
                for event in events:
                    event_line(event)
        except ValueError:  # NaN or Infinity: no sink could take it as strict JSON
            problem = "body holds a number that is not valid JSON (NaN or Infinity)"
        except RecursionError:
            problem = "body is nested too deeply"
        if problem is not None:  # whole or nothing: no sink sees any event of it
            return self._reject(name, problem)
        if not events:  # LINE's "verify" request: nothing to hand over
            return 200, {"handed_over": 0, "duplicates": 0}
        from ..http import deadline_scope

        slots = route.slots
        if slots is not None and not slots.acquire(blocking=False):
            return self._busy(route.name, len(events), "its sinks are still taking earlier deliveries")
        try:
            total = self._total
            if total is not None and not total.acquire(blocking=False):
                return self._busy(route.name, len(events), "the service is handing over as many deliveries "
                                                           "as it takes at once")
            try:
                with deadline_scope(self.deadline):
                    return self._deliver(route, output.get("destination"), events)
            finally:
                if total is not None:
                    total.release()
        finally:
            if slots is not None:
                slots.release()

    def _busy(self, route, n, why):
        """503 at once: the route (or all routes together) is saturated;
        nothing was handed over or marked, so LINE's redelivery brings the
        events again."""
        self._count(route, "busy", 1)
        self.log("webhook_busy", route=route, events=n, message=why)
        return 503, {"error": "the route is busy (%s): nothing was handed over; LINE redelivers the events"
                              % why}

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


__all__ = ["Ingress", "Route", "NAMESPACE", "TTL", "DEADLINE", "ROUTE_CONCURRENCY", "body_problem"]
