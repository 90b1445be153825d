"""Keeps secrets out of everything the pack prints, logs or raises.

Every secret value of the asset in use (and every token derived from one) is
registered with a ``Redactor``; all output passes through ``scrub`` before it
leaves the pack. Plain, URL-encoded, JSON-escaped and base64 forms are masked.
"""
import base64
import json
from urllib.parse import quote, quote_plus

MASK = "***"
# Shorter values would mask innocent text everywhere (a 1-character "secret"
# would blank every occurrence of that letter); real credentials are longer.
MIN_SECRET_LENGTH = 4


class Secret(str):
    """A str whose repr never shows the value (safe in tracebacks and logs)."""

    def __repr__(self):
        return "Secret('***')"


def _forms(value):
    forms = {value, quote(value, safe=""), quote_plus(value), json.dumps(value)[1:-1],
             json.dumps(value, ensure_ascii=False)[1:-1]}
    raw = value.encode("utf-8")
    for enc in (base64.b64encode, base64.urlsafe_b64encode):
        text = enc(raw).decode("ascii")
        forms.add(text)
        forms.add(text.rstrip("="))
    return {f for f in forms if len(f) >= MIN_SECRET_LENGTH}


class Redactor:
    def __init__(self, secrets=()):
        self._needles = []
        for s in secrets:
            self.add(s)

    def add(self, value):
        if isinstance(value, str) and len(value) >= MIN_SECRET_LENGTH:
            merged = set(self._needles) | _forms(value)
            self._needles = sorted(merged, key=len, reverse=True)

    def __bool__(self):
        return bool(self._needles)

    def scrub(self, text):
        if not isinstance(text, str):
            return text
        for needle in self._needles:
            if needle in text:
                text = text.replace(needle, MASK)
        return text

    def scrub_obj(self, obj):
        """Return a copy of a JSON-like value with every string scrubbed."""
        if not self._needles:
            return obj
        if isinstance(obj, str):
            return self.scrub(obj)
        if isinstance(obj, dict):
            return {self.scrub(k): self.scrub_obj(v) for k, v in obj.items()}
        if isinstance(obj, (list, tuple)):
            if obj and set(map(type, obj)) == {str}:
                # long lists of plain strings (a chunk's recipients): one search
                # over the joined text instead of one per item when it is clean
                joined = "\n".join(obj)
                if not any(needle in joined for needle in self._needles):
                    return list(obj)
            return [self.scrub_obj(v) for v in obj]
        return obj
