"""The one validation path: JSON Schema files -> compiled validators -> errors
that name the field and the rule.

Schemas live in ``schemas/`` and refer to each other with relative ``$ref``s
(``../common/line_messages.json#/$defs/messages``). Each file is read once and
each validator is compiled once per process.

Rules JSON Schema lacks are added as keywords, so they stay in the data:

* ``maxUtf16Length``: LINE counts text length in UTF-16 code units, so an
  emoji outside the BMP counts 2, where ``maxLength`` would count 1.
* ``maxGraphemes``: the properties LINE's "Character counting in a text" page
  lists (action labels, postback displayText, buttons text, ...) are counted
  in extended grapheme clusters (Unicode UAX #29), so a family emoji of 7
  code points counts 1. Segmenting uses the ``regex`` package's ``\\X``,
  imported only when the string has more code points than the limit: a
  string has at most as many grapheme clusters as code points (and at most
  as many code points as UTF-16 units), so a shorter one cannot fail and the
  common case costs one ``len()``.
* ``sameLengthAcrossItems: "<key>"`` on an array of objects: every item's
  ``<key>`` array has the same length (LINE: every carousel column has the
  same number of actions). The error points at the first column that differs.
* ``numericMaximum``: an upper bound for a number written as a digit string.
* ``finite: true``: not NaN or infinite. Python's json module reads ``NaN``
  and ``Infinity``, and NaN passes every ``minimum``/``maximum`` (all its
  comparisons are false), so a bounded number needs this too.
* ``discriminator`` (as in OpenAPI: ``{"propertyName", "mapping"}``): a
  union such as LINE's message object is checked against the one variant its
  ``type`` names, instead of probing every variant with ``if``/``then``
  (10x faster, and errors point into the right variant). An unknown value is
  reported by the union's own ``properties.<name>.enum``.
* format ``yyyymmdd``: a real calendar date written as 8 digits.
* formats ``line-date`` / ``line-datetime``: the date part of a datetime
  picker's ``yyyy-MM-dd`` / ``yyyy-MM-ddTHH:mm`` is a real calendar date
  (the schema's pattern alone lets 2023-02-31 through).

One keyword is given a faster implementation with the same meaning:
``items`` whose item schema is a plain string rule (type, pattern, length;
directly or through a ``$ref``) checks each item with a compiled regex and
only hands the failing ones to the full validator, so a multicast to
100,000 user IDs does not resolve a reference 100,000 times.

Error messages never quote the offending value: it may be a secret.
"""
import itertools
import json
import math
import os
import re
import sys
from functools import lru_cache, partial
from pathlib import Path

from .errors import InputError, ManifestError
from .paths import SCHEMAS_DIR

MAX_DETAILS = 25


@lru_cache(maxsize=None)
def load_schema_file(relpath):
    """Parsed contents of ``schemas/<relpath>`` with ``$id`` set to its file URI."""
    path = os.path.join(SCHEMAS_DIR, relpath)
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except FileNotFoundError:
        raise ManifestError("schema file not found: schemas/%s" % relpath) from None
    except ValueError as exc:
        raise ManifestError("schema file schemas/%s is not valid JSON: %s" % (relpath, exc)) from None
    if isinstance(data, dict):
        data.setdefault("$id", Path(path).resolve().as_uri())
    return data


@lru_cache(maxsize=None)
def _retrieve(uri):
    from referencing import Resource
    from referencing.jsonschema import DRAFT202012

    if not uri.startswith("file:"):
        raise ManifestError("schema reference outside the pack: %s" % uri)
    from urllib.parse import unquote, urlparse

    abspath = os.path.realpath(unquote(urlparse(uri).path))
    rel = os.path.relpath(abspath, os.path.realpath(SCHEMAS_DIR))
    return Resource.from_contents(load_schema_file(rel), default_specification=DRAFT202012)


def _utf16_len(text):
    # surrogatepass: JSON text may carry a lone surrogate ("\\ud800"), which
    # Python's json reads into a str that strict UTF-16 cannot encode
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def _max_utf16_length(validator, limit, instance, schema):
    # a code point is 1 or 2 UTF-16 units: only strings between limit/2 and
    # limit code points long need encoding
    if type(instance) is not str and not validator.is_type(instance, "string"):
        return
    n = len(instance)
    if n * 2 > limit and (n > limit or _utf16_len(instance) > limit):
        from jsonschema import ValidationError

        yield ValidationError("is longer than %d characters (UTF-16 units)" % limit)


def grapheme_count(text, limit=None):
    """Number of extended grapheme clusters in ``text`` (what a reader sees
    as one character: an emoji ZWJ sequence, a flag, a letter with its
    combining accents).

    With ``limit``, counting stops at ``limit + 1`` clusters: the answer to
    "is it longer than limit?" stays exact, and a megabyte string costs
    O(limit) instead of segmenting all of it."""
    import regex  # imported lazily: only long strings need it

    if limit is None:
        return len(regex.findall(r"\X", text))
    return sum(1 for _ in itertools.islice(regex.finditer(r"\X", text), limit + 1))


def _max_graphemes(validator, limit, instance, schema):
    # grapheme clusters <= code points: a string of at most `limit` code
    # points passes without segmenting
    if type(instance) is not str and not validator.is_type(instance, "string"):
        return
    if len(instance) > limit and grapheme_count(instance, limit) > limit:
        from jsonschema import ValidationError

        yield ValidationError("is longer than %d characters (grapheme clusters)" % limit)


def _same_length_across_items(validator, key, instance, schema):
    """Every item's ``key`` array has as many elements as the first item's."""
    if not validator.is_type(instance, "array"):
        return
    counts = [(i, len(item[key])) for i, item in enumerate(instance)
              if isinstance(item, dict) and isinstance(item.get(key), list)]
    for index, count in counts[1:]:
        if count != counts[0][1]:
            from jsonschema import ValidationError

            yield ValidationError(
                "must have the same number of %s as every other item (item %d has %d, this one %d)"
                % (key, counts[0][0], counts[0][1], count), path=[index, key])
            return


def _numeric_maximum(validator, limit, instance, schema):
    """For numbers the vendor wants as digit strings (NXCloud's videoSize)."""
    if validator.is_type(instance, "string") and instance.isdigit() and int(instance) > limit:
        from jsonschema import ValidationError

        yield ValidationError("must be at most %d" % limit)


def _finite(validator, wanted, instance, schema):
    if wanted and isinstance(instance, float) and not math.isfinite(instance):
        from jsonschema import ValidationError

        yield ValidationError("must be a finite number")


def _discriminator(validator, spec, instance, schema):
    if not validator.is_type(instance, "object"):
        return
    value = instance.get(spec["propertyName"])
    ref = spec["mapping"].get(value) if isinstance(value, str) else None
    if ref is not None:
        yield from validator.descend(instance, {"$ref": ref})


# ------------------------------------------- items of plain strings (fast path)

_ANNOTATIONS = {"description", "title", "examples", "default", "$comment"}
_PLAIN_STRING_KEYS = {"type", "pattern", "minLength", "maxLength"} | _ANNOTATIONS
_ITEMS_ORIGIN = {}  # id(item schema) -> (item schema, file it is written in); see _referenced_files
_PLAIN_CHECKS = {}  # id(item schema) -> (item schema, check function or None)


def _resolve(relpath, ref):
    """The schema a ``$ref`` written in ``schemas/<relpath>`` points to,
    looked up the way the validator itself looks it up."""
    from referencing import Registry

    base = load_schema_file(relpath)["$id"]
    return Registry(retrieve=_retrieve).resolver(base_uri=base).lookup(ref).contents


_ECMA_PATTERNS = {}


def ecma_search(pattern):
    """``re.search`` of a JSON Schema ``pattern`` with ECMA-262's meaning of
    ``$``. JSON Schema patterns are ECMA-262 regexes, where ``$`` (without
    the multiline flag) matches only at the very end; Python's ``$`` also
    matches before a final newline, so ``^U[0-9a-f]{32}$`` would let
    a user ID followed by a newline through into a request body. Every
    unescaped ``$`` outside a character class becomes ``\\Z``."""
    found = _ECMA_PATTERNS.get(pattern)
    if found is None:
        out, escaped, in_class = [], False, False
        for ch in pattern:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif in_class:
                in_class = ch != "]"
            elif ch == "[":
                in_class = True
            elif ch == "$":
                out.append("\\Z")
                continue
            out.append(ch)
        found = _ECMA_PATTERNS[pattern] = re.compile("".join(out)).search
    return found


#: an anchored pattern whose body cannot match a newline: literal letters
#: and digits, classes without negation, counted and plain quantifiers
_JOINABLE = re.compile(r"\^[A-Za-z0-9_\-\[\]{},*+?]*\$\Z")
_ALL_MATCH = {}
#: a possessive quantifier (``*+``) where ``re`` knows it (Python 3.11+)
_POSSESSIVE = "+" if sys.version_info >= (3, 11) else ""


def all_match(pattern):
    """A function telling whether every item of a list is a string that
    ``pattern`` (ECMA-262, as ``ecma_search``) matches. For an ID rule such
    as ``^U[0-9a-f]{32}$`` the items are joined with newlines and matched by
    one compiled regex, ``(?:body\\n)*body``: since the body cannot match a
    newline and no item holds one (the joined text has exactly n - 1), each
    line matches the body exactly when each item matches the pattern. Other
    patterns are searched item by item.

    The repetition is possessive where Python has it (3.11+): each round
    can only consume one whole item and its newline, so there is nothing to
    backtrack into, and the engine then keeps no mark per round (100,000
    phones: ~5 ms instead of ~8)."""
    found = _ALL_MATCH.get(pattern)
    if found is None:
        search = ecma_search(pattern)
        if _JOINABLE.match(pattern):
            body = pattern[1:-1]
            joined = re.compile("(?:%s\n)*%s%s" % (body, _POSSESSIVE, body)).fullmatch

            def found(values):
                # in slices: the regex engine keeps a mark per repetition, so
                # one match over 100,000 items would hold ~10 MiB at once
                for start in range(0, len(values), 1024):
                    part = values[start:start + 1024]
                    try:
                        text = "\n".join(part)
                    except TypeError:  # an item that is not a string
                        return False
                    if text.count("\n") != len(part) - 1 or joined(text) is None:
                        return False
                return True
        else:
            def found(values):
                return set(map(type, values)) <= {str} and all(map(search, values))
        _ALL_MATCH[pattern] = found
    return found


def _pattern(validator, pattern, instance, schema):
    """The ``pattern`` keyword with ECMA-262's ``$`` (see ``ecma_search``)."""
    if validator.is_type(instance, "string") and ecma_search(pattern)(instance) is None:
        from jsonschema.exceptions import ValidationError

        yield ValidationError("%r does not match %r" % (instance, pattern))


def _plain_string_check(items):
    """For an item schema that is a plain string rule, a function giving the
    indexes of the items of a list that break it; None for any other schema
    (then every item is descended)."""
    cached = _PLAIN_CHECKS.get(id(items))
    if cached is not None and cached[0] is items:
        return cached[1]
    failing, target = None, items
    if set(items) - _ANNOTATIONS == {"$ref"}:
        from referencing.exceptions import Unresolvable

        origin, target = _ITEMS_ORIGIN.get(id(items)), None
        if origin is not None and origin[0] is items:
            try:
                target = _resolve(origin[1], items["$ref"])
            except (Unresolvable, ManifestError):
                pass  # left to the full validator, which reports it
    if isinstance(target, dict) and target.get("type") == "string" and set(target) <= _PLAIN_STRING_KEYS:
        search = ecma_search(target.get("pattern", ""))
        every = all_match(target.get("pattern", ""))
        low, high = target.get("minLength", 0), target.get("maxLength", float("inf"))

        def failing(values):
            # the common case (every item fine) is decided by one regex or C-level loops
            if every(values) and (
                    not values or (min(map(len, values)) >= low and max(map(len, values)) <= high)):
                return []
            # type(x) is str: a str subclass is simply left to the full validator
            return [i for i, x in enumerate(values)
                    if type(x) is not str or not low <= len(x) <= high or search(x) is None]
    _PLAIN_CHECKS[id(items)] = (items, failing)
    return failing


def _items(full_items, validator, items, instance, schema):
    """``items`` with the plain-string fast path; ``full_items`` is
    jsonschema's own implementation, bound in by ``_validator_class``."""
    failing = _plain_string_check(items) if isinstance(items, dict) else None
    if failing is None or "prefixItems" in schema or not validator.is_type(instance, "array"):
        yield from full_items(validator, items, instance, schema)
        return
    for index in failing(instance):
        yield from validator.descend(instance[index], items, path=index)


@lru_cache(maxsize=1)
def _validator_class():
    from jsonschema import Draft202012Validator, FormatChecker, validators

    checker = FormatChecker(formats=("uuid", "date", "ipv4"))

    from .quickcheck import _format_ok

    # one set of date rules: the quick path's (quickcheck._format_ok); the
    # pattern checks the shape, these check the day exists (no 2023-02-31,
    # no "00000000", ASCII digits only)
    for name in ("yyyymmdd", "line-date", "line-datetime"):
        checker.checks(name)(lambda value, name=name: _format_ok(name, value))

    cls = validators.extend(Draft202012Validator, {"maxUtf16Length": _max_utf16_length,
                                                       "maxGraphemes": _max_graphemes,
                                                       "sameLengthAcrossItems": _same_length_across_items,
                                                       "numericMaximum": _numeric_maximum,
                                                       "finite": _finite,
                                                       "discriminator": _discriminator,
                                                       "pattern": _pattern,
                                                       "items": partial(_items, Draft202012Validator.VALIDATORS["items"])})
    return cls, checker


def _referenced_files(relpath, seen=None):
    """relpath and every schema file it reaches through $ref, transitively.

    The same walk notes which file each ``items`` schema is written in, so
    the fast path can resolve its ``$ref`` when it first meets it."""
    seen = set() if seen is None else seen
    if relpath in seen:
        return seen
    seen.add(relpath)
    stack = [load_schema_file(relpath)]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if isinstance(node.get("items"), dict):
                _ITEMS_ORIGIN[id(node["items"])] = (node["items"], relpath)
            ref = node.get("$ref")
            if isinstance(ref, str) and not ref.startswith("#"):
                target = os.path.normpath(os.path.join(os.path.dirname(relpath), ref.partition("#")[0]))
                _referenced_files(target, seen)
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return seen


def _registry_for(relpath):
    """A registry holding every file the schema refers to, so a validation
    never retrieves (and re-crawls) a file: registries are immutable, and
    one filled on demand would start empty again for every validation."""
    from referencing import Registry

    registry = Registry(retrieve=_retrieve)
    for rel in sorted(_referenced_files(relpath)):
        uri = load_schema_file(rel)["$id"]
        registry = registry.with_resource(uri, _retrieve(uri))
    return registry  # no crawl(): the schemas use plain pointers, no $anchor or nested $id


@lru_cache(maxsize=None)
def validator_for(relpath):
    """A compiled validator for ``schemas/<relpath>`` (cached).

    The schema itself is checked against the JSON Schema meta-schema by
    ``check_schema_file`` (``line-connector check`` and the tests), not on
    every start: the pack's schemas do not change at run time."""
    cls, checker = _validator_class()
    return cls(load_schema_file(relpath), registry=_registry_for(relpath), format_checker=checker)


def check_schema_file(relpath):
    """Raise ManifestError if ``schemas/<relpath>`` is not a valid JSON Schema."""
    cls, _ = _validator_class()
    try:
        cls.check_schema(load_schema_file(relpath))
    except Exception as exc:  # SchemaError: the pack's own bug
        raise ManifestError("schema schemas/%s is not a valid JSON Schema: %s"
                            % (relpath, getattr(exc, "message", exc))) from None


# ---------------------------------------------------------------- messages

def _join(prefix, parts):
    out = prefix
    for p in parts:
        out += "[%d]" % p if isinstance(p, int) else ("." + p if out else p)
    return out


def _plural(n, word):
    return "%d %s%s" % (n, word, "" if n == 1 else "s")


_TYPE_NAMES = {dict: "object", list: "array", str: "string", bool: "boolean",
               int: "integer", float: "number", type(None): "null"}


def _describe(error):
    """(extra path parts, message) for one jsonschema error, value not quoted.

    A schema object may carry ``errorMessage``: it replaces the message of
    any keyword that fails in that same object (keep such objects small)."""
    v, val, inst = error.validator, error.validator_value, error.instance
    if isinstance(error.schema, dict) and error.schema.get("errorMessage"):
        return [], error.schema["errorMessage"]
    if v == "required":
        # one error per missing property; jsonschema names it (a key, not a value)
        named = re.match(r"^'((?:[^'\\]|\\.)*)' is a required property$", error.message)
        missing = [named.group(1)] if named else [p for p in val if isinstance(inst, dict) and p not in inst]
        return [missing[0] if missing else "?"], "is required"
    if v == "additionalProperties":
        allowed = set(error.schema.get("properties", {}))
        extra = sorted(k for k in inst if k not in allowed) if isinstance(inst, dict) else []
        return [extra[0] if extra else "?"], "is not an allowed field"
    if v == "type":
        want = val if isinstance(val, str) else " or ".join(val)
        return [], "must be of type %s (got %s)" % (want, _TYPE_NAMES.get(type(inst), type(inst).__name__))
    if v == "minItems":
        return [], "must have at least %s (got %d)" % (_plural(val, "item"), len(inst))
    if v == "maxItems":
        return [], "must have at most %s (got %d)" % (_plural(val, "item"), len(inst))
    if v == "minLength":
        return [], "must be at least %s long" % _plural(val, "character")
    if v == "maxLength":
        return [], "must be at most %s long (got %d)" % (_plural(val, "character"), len(inst))
    if v == "uniqueItems":
        return [], "must not contain duplicate items"
    if v == "minProperties":
        return [], "must have at least %s" % _plural(val, "field")
    if v in ("enum", "const"):
        choices = val if v == "enum" else [val]
        return [], "must be one of %s" % ", ".join(json.dumps(c, ensure_ascii=False) for c in choices)
    if v == "pattern":
        return [], "must match the pattern %s" % val
    if v == "format":
        if val == "yyyymmdd":
            return [], "must be a real calendar date written yyyyMMdd (e.g. 20191231)"
        if val == "line-date":
            return [], "must be a real calendar date written yyyy-MM-dd (e.g. 2017-06-18)"
        if val == "line-datetime":
            return [], "must be a real calendar date and time written yyyy-MM-ddTHH:mm (e.g. 2017-06-18T06:15)"
        return [], "must be a valid %s" % val
    if v in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"):
        words = {"minimum": ">=", "maximum": "<=", "exclusiveMinimum": ">",
                 "exclusiveMaximum": "<", "multipleOf": "a multiple of"}
        return [], "must be %s %s" % (words[v], val)
    if v == "not" and isinstance(val, dict) and "required" in val:
        return [], "must not have %s" % " together with ".join(val["required"])
    if v in ("oneOf", "anyOf"):
        return [], "matches none of the allowed forms"
    if v in ("maxUtf16Length", "maxGraphemes", "numericMaximum", "sameLengthAcrossItems", "finite"):
        return [], error.message
    if v == "dependentRequired":
        for key, needs in val.items():
            if isinstance(inst, dict) and key in inst:
                for n in needs:
                    if n not in inst:
                        return [n], "is required when %s is given" % key
    return [], "violates the %s rule" % v


def errors_to_details(errors, prefix):
    details, seen = [], set()
    for error in sorted(errors, key=lambda e: (list(map(str, e.absolute_path)), e.validator)):
        extra, message = _describe(error)
        path = _join(prefix, list(error.absolute_path) + extra)
        if (path, message) in seen:
            continue
        seen.add((path, message))
        details.append({"path": path, "message": message})
        if len(details) >= MAX_DETAILS:
            break
    return details


@lru_cache(maxsize=None)
def _quick_for(relpath, inline_key=None):
    """The quick validity predicate of a schema (``quickcheck``), or None
    when it cannot be compiled (then every call goes to the full validator)."""
    from . import quickcheck

    try:
        return quickcheck.Compiler(load_schema_file).document(
            relpath, _INLINE[inline_key] if inline_key is not None else None)
    except Exception:  # Unsure, or a schema the full validator will report on
        return None


def _surely_valid(predicate, instance):
    """True only when the quick predicate says valid; its "not sure" (or any
    surprise in it) means the full validator decides."""
    if predicate is None:
        return False
    try:
        return predicate(instance) is True
    except Exception:  # quickcheck.Unsure, RecursionError, a ValueError of int("\u00b2")...
        return False


def iter_errors(relpath, instance):
    """The schema errors of ``instance``: none at once for an input the quick
    check finds valid, else the full validator's (``quickcheck`` says why)."""
    if _surely_valid(_quick_for(relpath), instance):
        return iter(())
    return validator_for(relpath).iter_errors(instance)


def validate(relpath, instance, prefix, what):
    """Raise InputError naming every bad field of ``instance``."""
    details = errors_to_details(iter_errors(relpath, instance), prefix)
    if details:
        raise InputError("invalid %s" % what, details)


def apply_defaults(schema, instance):
    """Fill top-level defaults of an object schema (a copy)."""
    out = dict(instance)
    for key, prop in schema.get("properties", {}).items():
        if key not in out and isinstance(prop, dict) and "default" in prop:
            out[key] = prop["default"]
    return out


@lru_cache(maxsize=None)
def _dict_validator(key):
    from referencing import Registry

    cls, checker = _validator_class()
    return cls(_INLINE[key], registry=Registry(retrieve=_retrieve), format_checker=checker)


_INLINE = {}


def validator_for_inline(key, schema):
    """A compiled validator for a schema kept inline (an asset's inputs),
    cached under ``key``."""
    _INLINE.setdefault(key, schema)
    return _dict_validator(key)


def inline_errors(key, schema, instance):
    """``iter_errors`` for a schema kept inline (an asset's), cached under
    ``key``: the quick check first, the full validator for the rest."""
    _INLINE.setdefault(key, schema)
    if _surely_valid(_quick_for(None, key), instance):
        return iter(())
    return _dict_validator(key).iter_errors(instance)


# ------------------------------------------------ plain JSON and URLs
# Checks that run before the schema: the schema validator recurses and
# compares numbers, and requests quotes a URL (with its password) in errors.

#: Deepest nesting of objects and arrays accepted in ``inputs`` and ``asset``
#: (the value itself is level 1). A LINE flex message is the deepest payload:
#: inputs > messages > message > carousel > contents > bubble > body box >
#: contents is 8 levels, and each nested box adds 2, so 64 leaves room for 28
#: nested boxes, far more than a chat bubble can show. The limit also keeps the
#: recursive schema validator (several Python frames per level) far from
#: Python's recursion limit: it crashed with RecursionError between 150 and
#: 200 levels of flex boxes (tests/reliability/test_inputs.py checks 64 works).
MAX_DEPTH = 64
#: Integers must fit in 64 bits: every integer the vendors define is a Java
#: int or long (seeds) or a LINE count/timestamp; a bigger number is never
#: valid and may not even serialize (Python refuses ints over 4300 digits).
INT_MIN, INT_MAX = -2 ** 63, 2 ** 63 - 1


def _valid_unicode(text):
    if str.isascii(text):  # a flag of the string, no pass over it: ASCII holds no surrogate
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate (U+D800..U+DFFF): not text
        return False
    return True


def _key_path(path, key):
    if not _valid_unicode(key):
        key = key.encode("utf-8", "backslashreplace").decode("utf-8")
    return "%s.%s" % (path, key)


def _scalar_problem(v):
    """Why a non-container value is not plain JSON (or None)."""
    if v is None or isinstance(v, bool):
        return None
    if isinstance(v, str):
        if _valid_unicode(v):
            return None
        return "contains a lone surrogate (U+D800-U+DFFF): not valid Unicode text"
    if isinstance(v, int):
        if INT_MIN <= v <= INT_MAX:
            return None
        return "is out of range: integers must fit in 64 bits (-2^63 to 2^63-1)"
    if isinstance(v, float):
        if v - v == 0.0:  # finite (inf - inf and nan - nan are nan)
            return None
        return "must be a finite number (NaN and Infinity are not JSON)"
    return "must be a JSON value (got %s)" % type(v).__name__


def _all_text(items):
    """True when every item of the list is a string of valid Unicode text
    (then no item can be a problem): one C-level join, which refuses any item
    that is not a str instance (as ``_scalar_problem`` accepts str
    subclasses), then one encode for the lone surrogates. False sends the
    list to the item-by-item walk."""
    try:
        return _valid_unicode("".join(items))
    except TypeError:
        return False


def json_value_problems(value, prefix, floats=None):
    """Details for everything in ``value`` that is not plain, strict JSON:
    non-finite floats, integers past 64 bits, lone surrogates in keys or
    strings, nesting deeper than ``MAX_DEPTH``, non-string keys, non-JSON
    types. Iterative, so any depth is examined without recursion; a path is
    only built for a problem, and a list of strings (100,000 recipients) is
    checked in one pass. Values are never quoted (they may be secrets).
    ``floats``: a list told (appended the path of) each float met, so a
    caller that treats floats can skip a value that holds none."""
    details = []
    stack = [(value, prefix, 1)]
    while stack and len(details) < 25:
        v, path, depth = stack.pop()
        if not isinstance(v, (dict, list)):
            problem = _scalar_problem(v)
            if problem:
                details.append({"path": path, "message": problem})
            elif floats is not None and isinstance(v, float):
                floats.append(path)
            continue
        if depth > MAX_DEPTH:
            details.append({"path": path, "message": "is nested too deep (more than %d levels of "
                                                     "objects and arrays)" % MAX_DEPTH})
            continue
        if isinstance(v, list):
            if _all_text(v):
                continue
            children = []
            for i, item in enumerate(v):
                if isinstance(item, (dict, list)):
                    children.append((item, "%s[%d]" % (path, i), depth + 1))
                else:
                    problem = _scalar_problem(item)
                    if problem:
                        details.append({"path": "%s[%d]" % (path, i), "message": problem})
                    elif floats is not None and isinstance(item, float):
                        floats.append("%s[%d]" % (path, i))
            stack.extend(reversed(children))
            continue
        children = []
        for k, item in v.items():
            if not isinstance(k, str):
                details.append({"path": path, "message": "has a key that is not a string "
                                                         "(got %s); JSON keys are strings" % type(k).__name__})
                continue
            if not _valid_unicode(k):
                details.append({"path": _key_path(path, k), "message": "is a key with a lone surrogate "
                                                                       "(U+D800-U+DFFF): not valid Unicode text"})
                continue
            children.append((item, path + "." + k, depth + 1))
        stack.extend(reversed(children))
    return details[:25]


#: Asset fields that name where requests go; userinfo there is refused.
_REQUEST_URL_FIELDS = ("url", "data_url", "token_url", "super_message_url")


@lru_cache(maxsize=256)
def _url_problem(value, proxy):
    """Why ``value`` is not a URL requests can use (or None). Uses requests'
    and urllib3's own parsers, so what passes here cannot fail later with an
    error text that quotes the URL and its password. A pure function of the
    string, cached: preparing a URL costs ~0.1 ms, twice per warm send."""
    import requests
    from urllib3.util import parse_url

    if any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7f for c in value):
        return "must not contain spaces or control characters"
    scheme = value.split("://", 1)[0].lower() if "://" in value else ""
    if scheme not in ("http", "https"):
        return "must start with http:// or https://"
    try:
        parsed = parse_url(value)
        if not proxy:
            requests.models.PreparedRequest().prepare_url(value, None)
    except Exception:  # LocationParseError, InvalidURL, ...: their text quotes the URL
        return "is not a valid URL (check the host name and the port)"
    if not parsed.host:
        return "has no host name"
    try:  # what urllib3 does before connecting (a LocationParseError, after the request was counted as sent)
        parsed.host.encode("idna")
    except UnicodeError:
        return "has an invalid host name (each dot-separated part must be 1-63 characters)"
    if parsed.port is not None and not 1 <= parsed.port <= 65535:
        return "has an invalid port (must be 1-65535)"
    if parsed.auth is not None and not proxy:
        return ("must not include credentials (the userinfo part before @host): a URL is printed "
                "and logged; put them in the asset's credential fields")
    return None


def url_problems(values):
    """Details for every URL field of a selected asset that requests could
    not use. Never quotes the value."""
    details = []
    for key in sorted(values):
        value = values[key]
        if isinstance(value, str) and (key in _REQUEST_URL_FIELDS or key == "http_proxy"):
            problem = _url_problem(value, proxy=key == "http_proxy")
            if problem:
                details.append({"path": "asset." + key, "message": problem})
    return details
