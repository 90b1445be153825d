"""LINE send actions: push, reply, multicast, broadcast, narrowcast.

Push, multicast, broadcast and narrowcast carry ``X-Line-Retry-Key`` and are
retried (5xx, timeouts, dropped connections) with the same key: LINE answers
a repeat with 409 + ``x-line-accepted-request-id``. Reply has no retry key
(LINE rejects one), so it is resent only when the connection was never made.

Retry keys are bound to content (SPEC 7). LINE remembers an accepted key for
24 h and answers any later request with it 409, *whatever that request
carries*, delivering nothing
(https://developers.line.biz/en/docs/messaging-api/retrying-api-request/).
So:

* push, broadcast and narrowcast send the caller's ``retry_key`` as is;
* every multicast chunk's key is derived from the caller's key *and that
  chunk's content* (uuid5 over the sha256 of its canonical JSON): resending
  the same call reuses every key (LINE drops the repeats), while resending a
  subset (the recipients of a failed chunk) or a changed message gives new
  keys and is delivered. Chunks hold the de-duplicated IDs sorted, so the
  same set of IDs in any order makes the same chunks and the same keys;
* content is compared as canonical JSON (keys sorted, compact), so a message
  whose keys are merely written in another order is the same content;
* before sending, the content hash is recorded under the key in the state
  store for 24 h, per channel (a multicast chunk's key needs no record: it
  is derived from the chunk's content, so it can never carry other content,
  and a 409 under it is that very chunk's earlier acceptance); a key already recorded with other content is
  refused before anything is sent (exit 2, ``inputs.retry_key``), because LINE
  would answer 409 and deliver nothing. A request LINE surely did not accept
  (never sent; a definite 4xx other than 409; a 409 for someone else's
  request) releases the record: LINE only remembers accepted requests. Dry
  runs record nothing;
* a 409 proves only that LINE accepted *some* request with that key. For a
  key sent as is it counts as success only when this pack knows the content
  was the same: the record existed with the same hash before this call, or
  the 409 answers a retry within this call. Otherwise (the record was lost:
  another machine, a deleted or degraded state directory, a rotated token)
  the result is a failure with ``delivery: "unknown"``, never "already
  accepted" for a message that may never have been delivered.
"""
import hashlib
import json
import uuid
from functools import cached_property, lru_cache

from line_connector import state
from line_connector.action import ChunkedAction
from line_connector.errors import ActionError

from .base import RETRY_KEY_HEADER, LineAction

MULTICAST_CHUNK = 500
#: where the content sent under each retry key is remembered, and for how long (LINE: 24 h)
KEY_NAMESPACE = "line-retry-key"
KEY_MEMORY_SECONDS = 24 * 3600
# a lost record only makes a later 409 "delivery unknown", never a double
# send: the record is written atomically but not fsync'd (~1 ms per send),
# and the file store keeps it in a slot of a table, not in a new file of its
# own (a new inode: up to 0.4 ms of kernel CPU per keyed push)
state.table_records(KEY_NAMESPACE)


#: the canonical form's encoder, built once (``json.dumps`` with options builds one per call)
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def canonical_json(body):
    """The JSON body (bytes, as the pack serialized it) in canonical form:
    keys sorted, compact, ASCII. Two bodies that differ only in the order
    their keys were written carry the same content for LINE, so they must
    hash alike (else a resend with reordered keys is refused, or a
    multicast chunk gets a new key and is delivered twice)."""
    if not body:
        return b""
    return _CANONICAL.encode(json.loads(body)).encode("ascii")


def content_hash(body):
    """sha256 of the body's canonical JSON (see ``canonical_json``)."""
    return hashlib.sha256(canonical_json(body)).hexdigest()


def chunk_key(base, body):
    """The retry key of a multicast chunk whose JSON body is ``body`` (bytes):
    a UUID derived from the caller's key and the chunk's content, or a fresh
    UUID when the caller gave no key. The same call resent derives the same
    keys; other recipients or other messages derive other keys."""
    if base is None:
        return str(uuid.uuid4())
    return _derived_key(base, content_hash(body))


def _derived_key(base, digest):
    return str(uuid.uuid5(uuid.UUID(base), "line-connector multicast " + digest))


def _canonical_of(obj):
    """``canonical_json(json_bytes(obj))`` for a plain-JSON object, without
    serializing and parsing it first (a 500-ID chunk is ~20 KB)."""
    return _CANONICAL.encode(obj).encode("ascii")


@lru_cache(maxsize=64)
def _scope_digest(text):
    """sha256 hex of a key scope's text, kept for the few channels a process serves."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


class RememberedKey(LineAction):
    """A send whose retry key is remembered with the content sent under it."""
    retry_key = True

    def key_scope(self):
        """Which channel a key belongs to (LINE remembers keys per channel),
        as a hash: the API URL plus the client id, or the channel token."""
        who = self.asset.get("client_id") or self.asset.get("token") or ""
        return _scope_digest("%s\n%s" % (self.asset.get("url", ""), who))

    @cached_property
    def known_content(self):
        """Retry keys whose record already held this very content before this
        call: a 409 for them is this content's earlier acceptance."""
        return set()

    #: whether line_request works out each body's content hash as it builds
    #: it (multicast chunks are not recorded: their keys come from their content)
    records_content = True

    def line_request(self, body=None, **kwargs):
        request = super().line_request(body=body, **kwargs)
        if body is not None and self.records_content:
            # content_hash(request.body), from the object just serialized:
            # the canonical form without parsing the bytes back
            request.content_sha256 = hashlib.sha256(_canonical_of(body)).hexdigest()
        return request

    @staticmethod
    def digest_of(request):
        """The sha256 of the request's canonical JSON body (``content_hash``),
        worked out once per request."""
        digest = request.__dict__.get("content_sha256")
        if digest is None:
            digest = request.content_sha256 = content_hash(request.body)
        return digest

    @cached_property
    def made_keys(self):
        """Retry keys this call made (``Store.made_key``): their records are
        in the store's journal of made keys, not per-key entries."""
        return set()

    def remember(self, request):
        """Record the request's content under its retry key before it is
        sent; refuse (InputError) a key already used for other content.

        A key this call made (the caller gave none): no record can exist
        under it and no other call can be adding one, so it is appended to
        the store's journal of made keys (``Store.add_made``), without a
        lock or a file of its own. The caller learns the key from the result
        and may resend with it, so it is still recorded: a resend with it
        finds that record (``get_made``) and is judged as before."""
        key = request.headers[RETRY_KEY_HEADER]
        digest = self.digest_of(request)
        store = self.key_store
        record = {"sha256": digest}
        if key in self.made_keys:
            store.add_made(KEY_NAMESPACE, key, self.key_scope() + "\n" + key, record, KEY_MEMORY_SECONDS)
            return request
        made = store.get_made(KEY_NAMESPACE, key, self.key_scope() + "\n" + key)
        if isinstance(made, dict) and isinstance(made.get("sha256"), str):
            # a resend of a key the pack made for an earlier call
            if made["sha256"] != digest:
                raise self.input_error("retry_key", self._reused_key_rule(key))
            self.known_content.add(key)
        try:
            existing = store.add_shared(KEY_NAMESPACE, self.key_scope() + "\n" + key, record,
                                        KEY_MEMORY_SECONDS, wait=state.wait_budget())
        except state.LockTimeout as exc:
            raise ActionError("the retry key could not be checked; nothing was sent", [dict(
                request.extra, status_code=0, reason="Retry-key lock wait timed out", response_headers={},
                json_body=None, error=str(exc), delivery="not sent", ok=False)]) from None
        if isinstance(existing, dict) and existing.get("sha256") == digest:
            self.known_content.add(key)
            if not existing.get("joined"):
                # tell the call that made the record that another call sends the
                # same content under this key: if LINE accepts ours first, its
                # 409 is this very content's acceptance, not a stranger's
                try:
                    store.put(KEY_NAMESPACE, self.key_scope() + "\n" + key, dict(record, joined=True),
                              KEY_MEMORY_SECONDS)
                except state.LockTimeout:
                    pass  # not marked: the other call's 409 reads "delivery unknown" (more careful)
            return request
        if existing is None:
            return request
        if not (isinstance(existing, dict) and isinstance(existing.get("sha256"), str)):
            try:
                store.put(KEY_NAMESPACE, self.key_scope() + "\n" + key, record, KEY_MEMORY_SECONDS)  # damaged: replace
            except state.LockTimeout as exc:
                raise ActionError("the retry key could not be checked; nothing was sent", [dict(
                    request.extra, status_code=0, reason="Retry-key lock wait timed out", response_headers={},
                    json_body=None, error=str(exc), delivery="not sent", ok=False)]) from None
            return request
        raise self.input_error("retry_key", self._reused_key_rule(key))

    @staticmethod
    def _reused_key_rule(key):
        return ("%s was already used in the last 24 h for a different request (other recipients or other messages): "
                "LINE would answer 409 (already accepted) and deliver nothing. Use a new retry_key for new content; "
                "reuse a key only to resend exactly the same inputs" % key)

    def _record(self, key):
        """The record under a retry key of this call (made or given)."""
        if key in self.made_keys:
            return self.key_store.get_made(KEY_NAMESPACE, key, self.key_scope() + "\n" + key)
        return self.key_store.get(KEY_NAMESPACE, self.key_scope() + "\n" + key)

    def forget(self, request):
        """Release the key's record if it still holds this request's content:
        LINE keeps only accepted keys, so after a request it surely did not
        accept the key may carry corrected content. False when the record
        could not be read or released (its lock held by a stopped process,
        ``state.LockTimeout``): the caller tells the user (``KEPT_NOTE``)."""
        key = request.headers[RETRY_KEY_HEADER]
        try:
            record = self._record(key)
            if isinstance(record, dict) and record.get("sha256") == self.digest_of(request):
                if key in self.made_keys:
                    self.key_store.drop_made(KEY_NAMESPACE, key, self.key_scope() + "\n" + key)
                else:
                    self.key_store.delete(KEY_NAMESPACE, self.key_scope() + "\n" + key)
        except state.LockTimeout:
            return False
        return True

    KEPT_NOTE = ("the retry key's record could not be released (its lock stayed held): a resend with "
                 "corrected content under this key may be refused as already used; use a new retry_key")

    def _forget_or_note(self, request, result):
        if self.forget(request) is False:
            note = result.get("note")
            result["note"] = self.KEPT_NOTE if not note else "%s; %s" % (note, self.KEPT_NOTE)

    def accepted_is_ours(self, request, result):
        key = request.headers[RETRY_KEY_HEADER]
        if key in self.known_content:
            return True
        # this call made the record; a concurrent call of this store that sent
        # the same content under the key marked it "joined" before sending
        try:
            record = self._record(key)
        except state.LockTimeout:  # unknown: not taken as ours (more careful)
            record = None
        if isinstance(record, dict) and record.get("joined") and record.get("sha256") == self.digest_of(request):
            return True
        return super().accepted_is_ours(request, result)

    def judge(self, request, result):
        # read before LineAction.judge rewrites it: did an attempt of this
        # call possibly reach LINE without a clear answer?
        maybe_processed = result.get("delivery") == "unknown"
        ok = super().judge(request, result)
        if request is not None and RETRY_KEY_HEADER in request.headers and not maybe_processed:
            status = result["status_code"]
            # a definite 4xx, or a 409 for a request that was not this one
            # (LINE blocks every request once a key is accepted): not accepted
            if 400 <= status < 500 and (status != 409 or not ok):
                self._forget_or_note(request, result)
        return ok

    def send_one(self, request):
        result = super().send_one(request)
        if result.get("delivery") == "not sent" and RETRY_KEY_HEADER in request.headers:
            self._forget_or_note(request, result)  # LINE never saw the key (connection refused, token fetch failed...)
        return result

    @cached_property
    def key_store(self):
        """The state store of this run, taken once in the calling thread
        (a --sandbox run's private store is a context of that thread; the
        judging of multicast chunks happens in worker threads)."""
        return self.state_store

    def execute(self, inputs):
        self.state_store  # noqa: B018 - bind the run's store before any worker thread starts
        if not inputs.get("retry_key"):
            # the pack's own key, made by the store that keeps its record
            made = self.key_store.made_key()
            self.made_keys.add(made)
            inputs = dict(inputs, retry_key=made)
        requests = self.build(inputs)
        for request in requests:
            self.remember(request)
        return self.send_all(requests)


class SendPush(RememberedKey):
    """POST /v2/bot/message/push: one recipient, 1-5 messages."""
    method = "POST"
    path = "/v2/bot/message/push"
    fields = ("to", "messages", "notificationDisabled", "customAggregationUnits")


class SendReply(LineAction):
    """POST /v2/bot/message/reply: answer a webhook event's reply token."""
    method = "POST"
    path = "/v2/bot/message/reply"
    fields = ("replyToken", "messages", "notificationDisabled")
    idempotent = False


class SendBroadcast(RememberedKey):
    """POST /v2/bot/message/broadcast: every friend of the account."""
    method = "POST"
    path = "/v2/bot/message/broadcast"
    fields = ("messages", "notificationDisabled")


class SendNarrowcast(RememberedKey):
    """POST /v2/bot/message/narrowcast: answered 202; the result's
    ``request_id`` is what line_get_narrowcast_progress needs."""
    method = "POST"
    path = "/v2/bot/message/narrowcast"
    fields = ("messages", "recipient", "filter", "limit", "notificationDisabled")


class SendMulticast(ChunkedAction, RememberedKey):
    """POST /v2/bot/message/multicast, in chunks of 500 user IDs.

    Accepts any number of IDs; drops duplicates and sends ceil(n/500)
    requests. Chunks hold the IDs *sorted*, not in the caller's order: a
    chunk's key is derived from its content, so the same set of IDs must make
    the same chunks whatever order it comes in, or a reordered resend would
    get new keys and deliver twice. Each result says which chunk it was and
    which IDs it carried (``recipients``), so a caller can resend exactly the
    chunks that failed, with the same ``retry_key``.
    """
    method = "POST"
    path = "/v2/bot/message/multicast"
    chunk_size = MULTICAST_CHUNK
    records_content = False
    shared_fields = ("messages", "notificationDisabled", "customAggregationUnits")

    def items(self, inputs):
        return inputs["to"]

    def chunks(self, inputs):
        items = sorted(set(self.items(inputs)))
        return [items[i:i + self.chunk_size] for i in range(0, len(items), self.chunk_size)]

    def accepted_is_ours(self, request, result):
        # a chunk's key is derived from the chunk's own content (chunk_key),
        # so a request LINE accepted under it carried this very content: a
        # 409 here proves this chunk was delivered before
        return True

    def chunk_request(self, inputs, index, chunk, total):
        body = dict(to=chunk, **{k: inputs[k] for k in self.shared_fields if k in inputs})
        base = inputs.get("retry_key")
        # chunk_key(base, json_bytes(body)), computed from the object: the body
        # is serialized once (by line_request), and not at all for the key
        # when the caller gave none (then the key is a fresh UUID)
        key = None if base is None else _derived_key(base, hashlib.sha256(_canonical_of(body)).hexdigest())
        return self.line_request(body=body, key=key, extra=self.chunk_extra(index, chunk, total))

    def forget(self, request):
        """Nothing to release: chunk keys are not recorded. A chunk's key is
        derived from its content (``chunk_key``), so no other content can
        come under it (there is nothing a record could refuse) and a 409
        under it is this chunk's own earlier acceptance (``accepted_is_ours``).
        Recording 200 keys for 100,000 recipients cost 600 file creations
        and as many lock round-trips, for no answer that could change."""

    def execute(self, inputs):
        return ChunkedAction.execute(self, inputs)
