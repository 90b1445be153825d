"""Strict JSON in and out, in one place (SPEC 7).

RFC 8259 has no NaN or Infinity, yet Python's ``json`` reads and writes
them by default. Everything the pack reads as JSON from outside (CLI inputs,
the service's request bodies, vendors' answers) goes through ``loads``, and
everything it prints or serves through ``dumps``/``encode``, so no door can
let one in or out.
"""
import json
import math


def _refuse_constant(name):
    raise ValueError("%s is not JSON (RFC 8259 has no NaN or Infinity)" % name)


def _finite_float(text):
    value = float(text)
    if not math.isfinite(value):
        shown = text[:20] + "..." if len(text) > 20 else text
        raise ValueError("number %s is out of range (it would be Infinity)" % shown)
    return value


#: ``json.loads`` with keyword arguments builds a decoder on every call; one
#: decoder serves every call and thread (as json's own default decoder does)
_DECODER = json.JSONDecoder(parse_constant=_refuse_constant, parse_float=_finite_float)


def loads(text):
    """``json.loads`` refusing NaN, Infinity and numbers that overflow to
    Infinity (ValueError). A nesting too deep for the parser raises
    RecursionError, for the caller to report in its own terms."""
    if type(text) is str and not text.startswith("\ufeff"):
        return _DECODER.decode(text)
    # bytes, a str subclass, a BOM: json.loads' own checks and messages
    return json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)


def finite(obj):
    """``obj`` with every non-finite float replaced by None."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite(v) for v in obj]
    return obj


def dumps(obj, ascii=False):
    """The text the pack prints: indented, strict (a non-finite number, should
    one reach here, is null); ``ascii`` escapes every non-ASCII character."""
    try:
        return json.dumps(obj, indent=2, ensure_ascii=ascii, allow_nan=False)
    except ValueError:
        return json.dumps(finite(obj), indent=2, ensure_ascii=ascii, allow_nan=False)


def encode(obj):
    """``dumps`` plus a newline as UTF-8 bytes; a string UTF-8 cannot hold (a
    lone surrogate) is \\u-escaped rather than a crash."""
    try:
        return (dumps(obj) + "\n").encode("utf-8")
    except UnicodeEncodeError:
        return (dumps(obj, ascii=True) + "\n").encode("ascii")
