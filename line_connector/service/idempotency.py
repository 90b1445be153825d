"""``Idempotency-Key`` on ``POST /v1/actions/{name}`` (SPEC 9).

A platform that retries a POST after a timeout must not deliver twice, even
for NXCloud sends, which have no key of their own. So the first request
under a key claims it in the state store (namespace ``idempotency``) with an
atomic ``add_if_absent`` before the action runs, and its final answer
(status and body) replaces the claim for 24 h. Any replica on the same store
then sees the claim or the answer:

* same key, same request (action, asset name, inputs): the stored answer,
  with ``Idempotent-Replayed: true``; the action is not run again;
* same key, another request: 422 (the key was meant for something else);
* same key while the first is still running: 409 (retry later);
* same key, and the first run ended without recording its answer (the
  process was killed, or the final write to the store failed): 409 saying
  the outcome is unknown. The action is never run again under that key:
  it may already have been sent, so the caller must check before sending
  again with a new key.

Record key: sha256 of (API key, action, Idempotency-Key), so one caller's
keys never collide with another's and no API key is stored. The request is
compared by a sha256 of its canonical JSON; an inline asset enters it only as
a hash (see app.py).

Why the "running" claim lives the full 24 h and records when it started: it
is the only record left when a run dies (kill -9, a killed worker) or its
final write fails. If it expired, a resend would run again and could
deliver twice. A claim younger than the run's bound (deadline plus a
margin, ``run_bound()``) belongs to a run that may still be going (409,
retry later); an older one to a run that died (409, outcome unknown).
The final write is retried a few times within a short bound; if it still
fails, the answer goes out with ``Idempotency-Recorded: false`` and a log
line, and the claim stays, so a repeat gets "outcome unknown", never a re-run.

A state store that cannot be reached is a 503 and the action is not run:
running it without a claim could deliver twice.

What a store that forgets does (SPEC 12). The record lives in the store; a
Redis restarted without persistence, an evicted key or a flush loses it, and
a repeat then runs again. So the store is not the only guard:

* LINE sends: with no ``retry_key`` in the inputs, the run gets one derived
  from (API key digest, action, Idempotency-Key) (``derived_retry_key``):
  the repeat carries the same ``X-Line-Retry-Key`` and LINE's own 24 h
  de-duplication drops it (409). Multicast chunk keys derive from it as
  from a caller's key. Since the content memory of that key was lost too,
  the pack cannot prove the 409 is for this very content: the answer says
  ``delivery: "unknown"`` with LINE's accepted request id, never "sent".
* NXCloud (and Sobot) have no key of their own: after a lost record a
  repeat is delivered again. Hence an evicting Redis is refused at start
  and one without persistence is warned about (state_redis.verify).

Answers that are not kept (SPEC 12): an answer whose every result says
``"delivery": "not sent"`` frees the key (the claim is deleted; the
response says ``Idempotency-Recorded: false``), so the platform's retry
runs again and is delivered; everything else is stored,
and an answer too large for the store's entry (measured as the store encodes
it, ``state.EntryTooLarge``) is stored as a short note in its place. When
even that cannot be written, the response says ``Idempotency-Recorded:
false``: never a silent re-run.
"""
import hashlib
import json
import time
import uuid

NAMESPACE = "idempotency"
#: how long a final answer is replayed (SPEC 9)
RECORD_TTL = 24 * 3600.0
#: seconds past the action's deadline a run may still be going (after
#: that, an unanswered claim means the run died)
CLAIM_MARGIN = 30.0
#: the final answer's write: this many tries, within this many seconds
PUT_TRIES = 3
PUT_BOUND = 2.0
#: how long to wait for the store's per-key lock (file backend)
LOCK_WAIT = 5.0
HEADER = "headers.idempotency-key"
#: the namespace of the retry keys derived from Idempotency-Keys (uuid5)
RETRY_KEY_NAMESPACE = uuid.UUID("6f1c2a4e-8b1d-5c3e-9a7f-4d2b8e6c0a15")


def check_key(value):
    """The header's value, or HttpError 400 naming the header: 1 to 255
    printable ASCII characters (RFC 9110 field value, no control chars)."""
    from .app import HttpError

    if not isinstance(value, str) or not 1 <= len(value) <= 255 or \
            not all(0x20 <= ord(c) <= 0x7e for c in value):
        raise HttpError(400, "invalid Idempotency-Key header", HEADER,
                        "must be 1 to 255 printable ASCII characters")
    return value


def fingerprint(action, asset_label, inputs):
    """sha256 of the canonical request (action, asset, inputs)."""
    canon = json.dumps({"action": action, "asset": asset_label, "inputs": inputs}, sort_keys=True,
                       ensure_ascii=True, separators=(",", ":"), allow_nan=False, default=str)
    return hashlib.sha256(canon.encode("ascii")).hexdigest()


def record_key(api_key, action, idem_key):
    h = hashlib.sha256()
    for part in (api_key, action, idem_key):
        data = part.encode("utf-8", "surrogateescape")
        h.update(b"%d:" % len(data) + data)  # length-prefixed: no two triples share an encoding
    return h.hexdigest()


def derived_retry_key(api_key, action, idem_key):
    """LINE's retry key for a call under ``idem_key`` that gave none (SPEC 12):
    a UUID (uuid5) of the API key's sha256, the action and the key, so the
    same call repeated after the store lost its record carries the same
    ``X-Line-Retry-Key`` and LINE delivers it once. Another caller (API key)
    or another action never shares it; the API key itself is not in it."""
    digest = hashlib.sha256(api_key.encode("utf-8", "surrogateescape")).hexdigest()
    return str(uuid.uuid5(RETRY_KEY_NAMESPACE, "%s\n%s\n%s" % (digest, action, idem_key)))


def not_sent(status, payload):
    """True when the answer says nothing was sent: a refusal whose every
    result reports ``"delivery": "not sent"`` (the vendor unreachable, a
    token fetch refused). Such an answer is not kept: a repeat runs again."""
    if status < 400 or not isinstance(payload, dict):
        return False
    output = payload.get("output")
    if isinstance(output, dict):
        output = output.get("requests", [output])
    results = [r for r in output if isinstance(r, dict)] if isinstance(output, list) else []
    return bool(results) and all(r.get("delivery") == "not sent" for r in results)


def run_bound():
    """Seconds a run under a key may last (the action's deadline plus a
    margin): a claim older than that without an answer is a dead run."""
    from ..http import DEFAULT_DEADLINE

    return DEFAULT_DEADLINE + 2.0 + CLAIM_MARGIN


def _record(store, key, record, errors, app, action):
    """Write the final answer: a few tries within ``PUT_BOUND`` seconds.
    True when it was stored."""
    from .. import state

    end = time.monotonic() + PUT_BOUND
    for attempt in range(PUT_TRIES):
        try:
            store.put(NAMESPACE, key, record, RECORD_TTL)
            return True
        except state.EntryTooLarge as exc:
            # larger than an entry, as the store encodes it: keep a short note
            # in its place, so a repeat is answered (not run) all the same
            app.log("idempotency_answer_too_large", action=action, stored_bytes=exc.size)
            record = dict(record, body=_TOO_LARGE)
            last = exc
            continue
        except errors as exc:
            last = exc
        pause = 0.1 * (2 ** attempt)
        if attempt + 1 >= PUT_TRIES or time.monotonic() + pause > end:
            break
        time.sleep(pause)
    # the claim stays: a repeat gets "outcome unknown", never a second run
    app.log("idempotency_not_recorded", action=action, kind=type(last).__name__, message=str(last)[:300],
            tries=attempt + 1)
    return False


_TOO_LARGE = {"error": "the answer to the first request under this Idempotency-Key was too large to keep; it "
                       "was given to that request, and the action is not run again",
              "details": [{"path": HEADER, "message": "was already used; its answer is not kept"}]}


def _unavailable(app, action, exc):
    from .. import state
    from .app import HttpError

    app.metrics.count_request(action, "error")
    if isinstance(exc, state.StateMisconfigured):  # credentials or eviction: waiting does not fix it
        app.log("state_misconfigured", action=action, **exc.to_json())
        err = HttpError(503, "the state store is misconfigured, so the Idempotency-Key cannot be honoured; the "
                             "action was not run (the service's operator must fix config.state)")
        err.body["details"] = exc.details
        return err
    app.log("state_unavailable", action=action, kind=type(exc).__name__, message=str(exc)[:300])
    return HttpError(503, "the state store is unavailable, so the Idempotency-Key cannot be honoured; the action "
                          "was not run. Retry later with the same key", HEADER,
                     "could not be claimed: the state store cannot be reached",
                     headers=[("Retry-After", "5")])


def _store_errors():
    from .. import state

    return OSError, state.LockTimeout, state.StateUnavailable, state.StateMisconfigured


def run_once(app, api_key, action, idem_key, request_hash, execute):
    """(status, headers, body bytes) of the request under ``idem_key``:
    ``execute()`` -> (status, payload) runs only for the claim's winner."""
    from .. import state
    from .app import HttpError, json_bytes

    key = record_key(api_key, action, idem_key)
    errors = _store_errors()
    try:
        store = state.store()
        existing = store.add_if_absent(NAMESPACE, key, {"state": "running", "request": request_hash,
                                                         "started": time.time()},
                                       RECORD_TTL, wait=LOCK_WAIT)
    except errors as exc:
        raise _unavailable(app, action, exc) from None
    if getattr(app, "needs_shared_state", False) and not getattr(store, "shared", True):
        # a worker of serve --workers whose file store fell back to this
        # process's memory: the claim is invisible to the other workers, so a
        # copy of this request there would run too. Refused, not run.
        raise _unavailable(app, action, state.StateUnavailable(
            store.note or "the state store is kept in this worker's memory only"))
    if existing is not None:
        if not isinstance(existing, dict) or existing.get("request") != request_hash:
            app.metrics.count_request(action, "invalid")
            raise HttpError(422, "this Idempotency-Key was used for a different request", HEADER,
                            "was first used with another action, asset or inputs; use a new key for a new "
                            "request")
        if existing.get("state") != "done":
            started = existing.get("started")
            age = time.time() - started if isinstance(started, (int, float)) else None
            if age is not None and age <= run_bound():
                raise HttpError(409, "a request with this Idempotency-Key is still running", HEADER,
                                "is in use by a request still running; retry after it ends to get its answer",
                                headers=[("Retry-After", "1")])
            # older than any run may last (or no start time): the first run died unanswered
            app.metrics.count_request(action, "error")
            raise HttpError(409, "the first request under this Idempotency-Key ended without a recorded answer; "
                                 "its outcome is unknown (it may have been sent). Check whether it was delivered "
                                 "before sending again with a new key", HEADER,
                            "was used by a request whose outcome is unknown; it is not run again under this "
                            "key")
        status = existing.get("status")
        status = status if isinstance(status, int) and 200 <= status <= 599 else 500
        body = existing.get("body")
        body = body.encode("utf-8") if isinstance(body, str) else json_bytes(body)
        return status, [("Idempotent-Replayed", "true")], body
    status, payload = execute()
    body = json_bytes(payload)
    if not_sent(status, payload):
        return status, _free(store, key, errors, app, action), body
    # kept as the very text answered, so a replay is byte for byte the same
    record = {"state": "done", "request": request_hash, "status": status, "body": body.decode("utf-8")}
    if not _record(store, key, record, errors, app, action):
        return status, [("Idempotency-Recorded", "false")], body
    return status, [], body


def _free(store, key, errors, app, action):
    """Delete the claim of a run that sent nothing, so a repeat runs again;
    the response headers. Either way the answer is not kept, and the
    response says so (``Idempotency-Recorded: false``): a repeat is never a
    silent re-run. If the claim cannot be deleted it stays (a repeat gets
    "outcome unknown")."""
    try:
        store.delete(NAMESPACE, key)
    except errors as exc:
        app.log("idempotency_not_freed", action=action, kind=type(exc).__name__, message=str(exc)[:300])
    return [("Idempotency-Recorded", "false")]
