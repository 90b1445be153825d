"""The ways a run can end badly, each with its own exit code.

* ``ManifestError``: the pack itself is inconsistent (a developer's bug).
* ``InputError``: inputs or asset are invalid; nothing was sent (exit 2).
* ``ActionError``: the service refused or could not be reached (exit 1);
  carries the full output so nothing the vendor said is lost.
* ``InternalError``: anything else that escaped ``run_action`` (a bug),
  with secrets masked and the original exception not chained.

Every message, ``args`` and ``repr`` of these is free of secrets: the runner
builds them from scrubbed text.
"""


class ConnectorError(Exception):
    """Base of every error the pack raises on purpose."""


class ManifestError(ConnectorError):
    """connector.yaml, a schema, an asset file or an action class is wrong."""


class InputError(ConnectorError):
    """Invalid inputs or asset. Nothing was sent.

    ``details`` is a list of ``{"path": str, "message": str}``; paths start
    with ``inputs`` or ``asset`` so a caller can point at the field.
    """

    def __init__(self, message, details=None):
        super().__init__(message)
        self.message = message
        self.details = list(details or [])

    def to_json(self):
        return {"error": self.message, "details": self.details}

    def __str__(self):
        if not self.details:
            return self.message
        lines = "; ".join("%s: %s" % (d["path"], d["message"]) for d in self.details)
        return "%s (%s)" % (self.message, lines)


class ActionError(ConnectorError):
    """The service refused a request or could not be reached.

    ``output`` is exactly what the CLI prints on stdout for the same run.
    """

    def __init__(self, message, output):
        super().__init__(message)
        self.message = message
        self.output = output


class AuthFailed(ConnectorError):
    """Getting credentials (e.g. an OAuth token) failed; ``result`` is that
    request's result, reported in place of the call it was needed for."""

    def __init__(self, message, result):
        super().__init__(message)
        self.result = result


class InternalError(ConnectorError):
    """Something unexpected failed inside the pack (a bug, exit 1).

    Raised by ``run_action`` in place of any other exception: the message
    names the original type and carries its text with secrets masked. The
    original is deliberately not chained (no ``__cause__``/``__context__``):
    its args, repr and traceback can hold a secret (``UnicodeEncodeError``
    keeps the whole string it failed on). Nothing is known about delivery.
    """

    def __init__(self, message, kind):
        super().__init__(message)
        self.message = message
        self.kind = kind  # the original exception's class name
