"""The Action base class: the contract every action class fulfils.

An action receives validated inputs and its asset and either

* builds requests (``build``) that the engine sends, judging each result
  (``judge``): the output is the list of results; or
* overrides ``execute`` to shape its own output object (a webhook parse, a
  paged query, a cached token), still sending through ``send_one``.

It never parses CLI arguments, prints or exits: that is the runner's job.
"""
from functools import cached_property

from .errors import InputError
from .http import Request


class Action:
    #: set by the runner from the manifest
    spec = None
    #: True for actions that make no HTTP request (e.g. webhook parsing):
    #: a dry run runs them as usual, since they have nothing to send
    local = False
    #: inputs naming a file on this machine (read or written by the action);
    #: doors that serve other callers (the HTTP service, the MCP server) run
    #: with ``run_action(local_files=False)``, which refuses them
    local_paths = ()

    def __init__(self, asset, asset_name, client, redactor, progress=None):
        self.asset = asset
        self.asset_name = asset_name
        self.client = client
        self.redactor = redactor
        #: called as progress(done, total) after each request of a batch
        self.progress = progress

    # ------------------------------------------------------------ override
    def build(self, inputs):
        """Return the list of ``Request``s for these inputs.

        Raise ``InputError`` for rules JSON Schema cannot express; this runs
        before anything is sent, so a bad input never half-sends a batch.
        """
        raise NotImplementedError

    def judge(self, request, result):
        """True if the service accepted the request. Default: HTTP < 400."""
        return 0 < result["status_code"] < 400

    def auth_rejected(self, result):
        """True if the result says the credentials went stale, so the engine
        should refresh them once and resend (LINE 401, Sobot 900001/900002)."""
        return False

    def execute(self, inputs):
        """Return (output, ok). Default: send what ``build`` returns."""
        return self.send_all(self.build(inputs))

    def reveal(self, output, inputs):
        """Top-level output keys to leave unmasked because the caller asked
        for a secret explicitly (e.g. sobot_get_token's reveal_token)."""
        return ()

    # ------------------------------------------------------------ helpers
    @cached_property
    def state_store(self):
        """The run's state store (retry-key records, rate-limit buckets): the
        runner sets the one it checked at the start of the run; else taken
        once, in the thread that builds the requests (a --sandbox run's
        private store is a context of that thread)."""
        from . import state

        return state.store()

    def url(self, path, base_field="url"):
        return self.asset[base_field].rstrip("/") + path

    @staticmethod
    def input_error(path, message):
        return InputError("invalid inputs", [{"path": "inputs." + path if path else "inputs",
                                              "message": message}])

    # ------------------------------------------------------------ engine
    def send_all(self, requests, workers=1, total=None):
        """Send the requests (any iterable, consumed lazily); returns
        (results in the requests' order, all_ok).

        One request's failure never stops the others: each chunk of a batch
        is its own delivery and its result is reported either way. With
        ``workers`` > 1, at most that many are in flight and at most twice
        that many built ahead, so memory stays flat however large the batch.
        """
        results = []
        if workers <= 1:
            for request in requests:
                results.append(self.send_one(request))
                self._tick(len(results), total)
        else:
            import contextvars
            from collections import deque
            from concurrent.futures import ThreadPoolExecutor

            pending = deque()
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="line-connector") as pool:
                for request in requests:
                    # each task runs in a copy of this context, so the action's
                    # deadline (line_connector.http.deadline_scope) binds the workers too
                    pending.append(pool.submit(contextvars.copy_context().run, self.send_one, request))
                    if len(pending) >= 2 * workers:
                        results.append(pending.popleft().result())
                        self._tick(len(results), total)
                while pending:
                    results.append(pending.popleft().result())
                    self._tick(len(results), total)
        return results, all(r["ok"] for r in results)

    def _tick(self, done, total):
        if self.progress is not None and total and total > 1:
            self.progress(done, total)

    def send_one(self, request: Request):
        from .errors import AuthFailed

        try:
            result = self.client.send(request)
            if request.auth is not None and self.auth_rejected(result) and request.auth.refresh():
                result = self.client.send(request)
        except AuthFailed as exc:
            result = dict(exc.result)
            result.setdefault("note", str(exc))
            # the result is the token request's; this request itself never left
            # (or its first attempt was refused as unauthenticated)
            result["delivery"] = "not sent"
            result.update(request.extra)
            result["ok"] = False
            return result
        transport_note = result.get("note")  # e.g. why the body was not parsed
        ok = self.judge(request, result)
        if transport_note and result.get("note") != transport_note:
            result["note"] = "%s (%s)" % (result["note"], transport_note)
        if result.get("error") and result["status_code"]:
            # an answer whose body was cut (deadline, size bound) is a failure
            # whatever its status; the transport's reason stays visible
            ok = False
            if request.method != "GET":
                # the judge may have settled delivery from the status alone (a
                # 409), but the answer was not read whole: say it is not known
                result["delivery"] = "unknown"
            note = result["error"]
            if result.get("delivery") == "unknown":
                note += "; outcome unknown: the request may have been processed"
                if result.get("retry_key"):
                    note += ("; resending with the same retry_key (%s) is safe: the service delivers "
                             "it at most once" % result["retry_key"])
            result["note"] = note
        result["ok"] = bool(ok)
        return result


def _ascending(items):
    """True when each item is less than the next (IDs and phone numbers
    exported in order, say): then no two are equal, so there is nothing to
    de-duplicate. One C-level pass of comparisons, ~3x cheaper than the set
    of 100,000 fresh strings (each string's first hash); an unordered list
    stops it at its first step down and pays the set as before, and items
    that cannot be compared (TypeError) too."""
    from itertools import islice
    from operator import lt

    try:
        return all(map(lt, items, islice(items, 1, None)))
    except TypeError:
        return False


class ChunkedAction(Action):
    """An action that splits one list input into chunks, one request each.

    Subclasses set ``chunk_size`` and define ``items(inputs)`` (the list to
    split) and ``chunk_request(inputs, index, chunk, total)``. Duplicates are
    dropped (first occurrence kept, so the caller's order holds). Bodies are
    built as they are sent (streaming), at most ``max_workers`` in flight;
    the first chunk, the largest, is built before anything is sent, so a
    size error is an InputError with nothing half-sent.
    """
    chunk_size = None

    def items(self, inputs):
        raise NotImplementedError

    def chunk_request(self, inputs, index, chunk, total):
        raise NotImplementedError

    def chunks(self, inputs):
        items = self.items(inputs)
        if type(items) is not list:  # the chunks are slices (copies): a list needs no copy of its own
            items = list(items)
        if not _ascending(items) and len(set(items)) != len(items):  # a set: ~25 % cheaper than the dict
            items = list(dict.fromkeys(items))  # first occurrences, in the caller's order
        return [items[i:i + self.chunk_size] for i in range(0, len(items), self.chunk_size)]

    def _stream(self, inputs, chunks):
        for index, chunk in enumerate(chunks):
            yield self.chunk_request(inputs, index, chunk, len(chunks))

    def build(self, inputs):
        return list(self._stream(inputs, self.chunks(inputs)))

    def execute(self, inputs):
        from itertools import chain

        chunks = self.chunks(inputs)
        stream = self._stream(inputs, chunks)
        first = next(stream)
        return self.send_all(chain([first], stream), workers=inputs.get("max_workers", 1), total=len(chunks))

    @staticmethod
    def chunk_extra(index, chunk, total):
        return {"chunk": index + 1, "chunks": total, "recipients": chunk}
