"""A quick yes for valid input, without the JSON Schema library.

Importing ``jsonschema`` (and ``referencing``, ``attrs``) costs ~80-130 ms, more
than the rest of a CLI run, and walking its validator costs ~0.3 ms per
send. Nearly every input a program sends is valid, and a valid input needs
no error messages. So each of the pack's schemas is compiled here, once per
process, into plain Python predicates that answer one question: *is this
instance valid?* Only a "no" (or a "not sure") goes on to the full validator
(``line_connector.validation``), which then finds and words every error, so
messages, paths and the rules' meaning all stay in one place.

The predicates are exact for the keywords the pack's schemas use (draft
2020-12 plus the pack's own: ``maxUtf16Length``, ``maxGraphemes``,
``sameLengthAcrossItems``, ``numericMaximum``, ``finite``,
``discriminator``, ECMA-262 ``pattern``, the asserted formats). Whatever they
are not sure of raises ``Unsure`` and the full validator decides: a keyword
this module does not know, a ``$ref`` it cannot resolve, ``enum``/``const``
with an object or array value, ``uniqueItems`` over non-strings, a
``multipleOf`` on floats, a NaN, a string longer in code points than its
``maxGraphemes`` (segmenting is the full validator's, done once). So a "yes" here is never given where the
full validator would say no (tests/engine/test_quickcheck.py compares both
on every action's example inputs and on their mutations).
"""
import datetime
import math
import os
import re



class Unsure(Exception):
    """This module cannot decide: the full validator must."""


#: keywords that assert nothing (annotations), in draft 2020-12 and the pack
_ANNOTATIONS = frozenset({"$schema", "$id", "$comment", "$defs", "definitions", "title", "description",
                          "default", "examples", "deprecated", "readOnly", "writeOnly", "errorMessage",
                          "contentEncoding", "contentMediaType", "contentSchema"})
#: formats the full validator asserts (validation._validator_class); any other is an annotation
_ASSERTED_FORMATS = frozenset({"uuid", "date", "ipv4", "yyyymmdd", "line-date", "line-datetime"})

_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\Z")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}\Z", re.ASCII)


def _is_type(instance, name):
    """draft 2020-12's types, as jsonschema's type checker has them."""
    if name == "string":
        return isinstance(instance, str)
    if name == "object":
        return isinstance(instance, dict)
    if name == "array":
        return isinstance(instance, list)
    if name == "boolean":
        return isinstance(instance, bool)
    if name == "null":
        return instance is None
    if isinstance(instance, bool):
        return False
    if name == "integer":
        return isinstance(instance, int) or (isinstance(instance, float) and instance.is_integer())
    if name == "number":
        return isinstance(instance, (int, float))
    raise Unsure("type " + repr(name))


def _equal(one, two):
    """jsonschema's equality for enum/const, for scalars: 1 == 1.0, but
    True != 1. Objects and arrays are left to the full validator."""
    for v in (one, two):
        if isinstance(v, (dict, list)) or not (v is None or isinstance(v, (str, bool, int, float))):
            raise Unsure("enum of a container")
    if isinstance(one, str) or isinstance(two, str):
        return one == two
    if isinstance(one, bool) or isinstance(two, bool):
        return type(one) is type(two) and one == two
    return one == two


def _number(instance):
    return isinstance(instance, (int, float)) and not isinstance(instance, bool)


def _format_ok(name, value):
    if not isinstance(value, str):
        return True
    if name == "uuid":
        return _UUID.match(value) is not None
    try:
        if name == "date":
            return _DATE.match(value) is not None and bool(datetime.date.fromisoformat(value))
        if name == "yyyymmdd":  # ASCII digits: Python's \d takes fullwidth ones too
            if not re.fullmatch(r"[0-9]{8}", value):
                return False
            datetime.date(int(value[:4]), int(value[4:6]), int(value[6:]))
            return True
        if name == "line-date":
            if re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
                datetime.date(int(value[:4]), int(value[5:7]), int(value[8:10]))
            return True
        if name == "line-datetime":
            if re.fullmatch(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}", value):
                datetime.date(int(value[:4]), int(value[5:7]), int(value[8:10]))
            return True
    except ValueError:
        return False
    raise Unsure("format " + name)


class Compiler:
    """Compiles the schemas of one document (a file under ``schemas/``, or an
    inline schema) and those it refers to; ``$ref``s are resolved on first
    use, so recursive schemas (flex boxes) compile."""

    def __init__(self, load):
        self._load = load        # relpath -> parsed schema file
        self._refs = {}          # (relpath, pointer) -> predicate

    def document(self, relpath, root=None):
        """The predicate of a whole document: ``schemas/<relpath>``, or
        ``root`` (an inline schema, whose refs may only be local)."""
        if root is None:
            root = self._load(relpath)
        return self.compile(root, relpath, root)

    # ------------------------------------------------------------ refs
    def _target(self, ref, relpath, root):
        """(relpath, pointer, root) of what ``ref`` written in ``relpath`` names."""
        if not isinstance(ref, str):
            raise Unsure("ref")
        target, _, pointer = ref.partition("#")
        if target:
            if relpath is None or "://" in target or target.startswith("/") or ":" in target:
                raise Unsure("ref " + ref)
            relpath = os.path.normpath(os.path.join(os.path.dirname(relpath), target)).replace(os.sep, "/")
            root = None
        return relpath, pointer, root

    def _node(self, relpath, pointer, root):
        doc = root if root is not None else self._load(relpath)
        node = doc
        if pointer:
            if not pointer.startswith("/"):
                raise Unsure("anchor " + pointer)
            for part in pointer[1:].split("/"):
                if "%" in part:
                    raise Unsure("escaped pointer")
                part = part.replace("~1", "/").replace("~0", "~")
                if isinstance(node, dict) and part in node:
                    node = node[part]
                elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
                    node = node[int(part)]
                else:
                    raise Unsure("unresolvable #" + pointer)
        return node, doc

    def _ref(self, ref, relpath, root):
        relpath, pointer, root = self._target(ref, relpath, root)
        key = (relpath, pointer, id(root) if root is not None else None)
        found = self._refs.get(key)
        if found is not None:
            return found
        cell = []

        def deferred(instance):
            # compiled on first use: a union (the message object) compiles
            # only the variants an input has used; recursive schemas work
            if not cell:
                node, doc = self._node(relpath, pointer, root)
                cell.append(self.compile(node, relpath, doc))
            return cell[0](instance)

        self._refs[key] = deferred
        return deferred

    # ------------------------------------------------------------ keywords
    def compile(self, schema, relpath, root):
        """A predicate(instance) -> bool for ``schema``; raises Unsure (now
        or when called) for what it cannot decide."""
        if schema is True:
            return lambda instance: True
        if schema is False:
            return lambda instance: False
        if not isinstance(schema, dict):
            raise Unsure("schema is not an object")
        checks = []
        add = checks.append
        for key, value in schema.items():
            if key in _ANNOTATIONS:
                continue
            method = getattr(self, "_kw_" + key.replace("$", "S_"), None)
            if method is None:
                raise Unsure("keyword " + key)
            check = method(value, schema, relpath, root)
            if check is not None:
                add(check)
        if not checks:
            return lambda instance: True
        if len(checks) == 1:
            return checks[0]
        checks = tuple(checks)

        def all_of(instance):
            for check in checks:
                if not check(instance):
                    return False
            return True
        return all_of

    def _kw_S_ref(self, ref, schema, relpath, root):
        return self._ref(ref, relpath, root)

    def _kw_type(self, value, *_):
        names = (value,) if isinstance(value, str) else tuple(value)
        if not set(names) <= {"string", "object", "array", "boolean", "null", "integer", "number"}:
            raise Unsure("type %r" % (value,))
        if names == ("string",):
            return lambda instance: isinstance(instance, str)
        if names == ("object",):
            return lambda instance: isinstance(instance, dict)
        return lambda instance: any(_is_type(instance, name) for name in names)

    def _kw_properties(self, props, schema, relpath, root):
        compiled = {name: self.compile(sub, relpath, root) for name, sub in props.items()}

        def check(instance):
            if isinstance(instance, dict):
                for name, value in instance.items():
                    sub = compiled.get(name)
                    if sub is not None and not sub(value):
                        return False
            return True
        return check

    def _kw_additionalProperties(self, value, schema, relpath, root):
        if "patternProperties" in schema:
            raise Unsure("patternProperties")
        known = frozenset(schema.get("properties", ()))
        if value is False:
            return lambda instance: not isinstance(instance, dict) or known.issuperset(instance)
        sub = self.compile(value, relpath, root)
        return lambda instance: not isinstance(instance, dict) or all(
            sub(v) for k, v in instance.items() if k not in known)

    def _kw_required(self, names, *_):
        names = tuple(names)
        return lambda instance: not isinstance(instance, dict) or all(n in instance for n in names)

    def _kw_minProperties(self, n, *_):
        return lambda instance: not isinstance(instance, dict) or len(instance) >= n

    def _kw_maxProperties(self, n, *_):
        return lambda instance: not isinstance(instance, dict) or len(instance) <= n

    def _kw_propertyNames(self, value, schema, relpath, root):
        sub = self.compile(value, relpath, root)
        return lambda instance: not isinstance(instance, dict) or all(sub(k) for k in instance)

    def _kw_dependentRequired(self, value, *_):
        pairs = tuple((k, tuple(v)) for k, v in value.items())
        return lambda instance: not isinstance(instance, dict) or all(
            all(n in instance for n in needs) for k, needs in pairs if k in instance)

    def _kw_items(self, value, schema, relpath, root):
        if "prefixItems" in schema:
            raise Unsure("prefixItems")
        plain = value
        if isinstance(value, dict) and set(value) - _ANNOTATIONS == {"$ref"}:
            plain = self._node(*self._target(value["$ref"], relpath, root))[0]
        if isinstance(plain, dict) and plain.get("type") == "string" and set(plain) <= {
                "type", "pattern", "minLength", "maxLength"} | _ANNOTATIONS:
            value = plain
            # a list of IDs: C-level loops, as validation's own fast path
            from .validation import all_match

            every = all_match(value.get("pattern", ""))
            low, high = value.get("minLength", 0), value.get("maxLength", math.inf)
            lengths = "minLength" in value or "maxLength" in value

            def strings(instance):
                if not isinstance(instance, list) or not instance:
                    return True
                return every(instance) and (not lengths or (
                    min(map(len, instance)) >= low and max(map(len, instance)) <= high))
            return strings
        sub = self.compile(value, relpath, root)
        return lambda instance: not isinstance(instance, list) or all(sub(x) for x in instance)

    def _kw_prefixItems(self, value, *_):
        raise Unsure("prefixItems")

    def _kw_contains(self, value, schema, relpath, root):
        if "minContains" in schema or "maxContains" in schema:
            raise Unsure("minContains")
        sub = self.compile(value, relpath, root)
        return lambda instance: not isinstance(instance, list) or any(sub(x) for x in instance)

    def _kw_minItems(self, n, *_):
        return lambda instance: not isinstance(instance, list) or len(instance) >= n

    def _kw_maxItems(self, n, *_):
        return lambda instance: not isinstance(instance, list) or len(instance) <= n

    def _kw_uniqueItems(self, value, *_):
        if not value:
            return None

        def check(instance):
            if not isinstance(instance, list):
                return True
            if all(type(x) is str for x in instance):
                return len(set(instance)) == len(instance)
            raise Unsure("uniqueItems")
        return check

    def _kw_minLength(self, n, *_):
        return lambda instance: not isinstance(instance, str) or len(instance) >= n

    def _kw_maxLength(self, n, *_):
        return lambda instance: not isinstance(instance, str) or len(instance) <= n

    def _kw_pattern(self, pattern, *_):
        from .validation import ecma_search

        # compiled on first use (ecma_search caches it): most patterns of a
        # schema guard fields a given input does not have
        return lambda instance: not isinstance(instance, str) or ecma_search(pattern)(instance) is not None

    def _kw_format(self, name, *_):
        if name not in _ASSERTED_FORMATS:
            return None
        return lambda instance: _format_ok(name, instance)

    def _kw_enum(self, choices, *_):
        choices = tuple(choices)
        if all(type(c) is str for c in choices):
            allowed = frozenset(choices)

            def check(instance):
                if isinstance(instance, str):
                    return instance in allowed
                return any(_equal(c, instance) for c in choices)
            return check
        return lambda instance: any(_equal(c, instance) for c in choices)

    def _kw_const(self, value, *_):
        return lambda instance: _equal(value, instance)

    def _bound(self, limit, test):
        if not _number(limit):
            raise Unsure("bound")

        def check(instance):
            if not _number(instance):
                return True
            if isinstance(instance, float) and not math.isfinite(instance):
                raise Unsure("non-finite number")
            return test(instance, limit)
        return check

    def _kw_minimum(self, limit, *_):
        return self._bound(limit, lambda x, m: x >= m)

    def _kw_maximum(self, limit, *_):
        return self._bound(limit, lambda x, m: x <= m)

    def _kw_exclusiveMinimum(self, limit, *_):
        return self._bound(limit, lambda x, m: x > m)

    def _kw_exclusiveMaximum(self, limit, *_):
        return self._bound(limit, lambda x, m: x < m)

    def _kw_multipleOf(self, limit, *_):
        if not (isinstance(limit, int) and not isinstance(limit, bool) and limit > 0):
            raise Unsure("multipleOf")

        def check(instance):
            if not _number(instance):
                return True
            if not isinstance(instance, int):
                raise Unsure("multipleOf of a float")
            return instance % limit == 0
        return check

    def _kw_allOf(self, subs, schema, relpath, root):
        compiled = tuple(self.compile(s, relpath, root) for s in subs)
        return lambda instance: all(c(instance) for c in compiled)

    def _kw_anyOf(self, subs, schema, relpath, root):
        compiled = tuple(self.compile(s, relpath, root) for s in subs)
        return lambda instance: any(c(instance) for c in compiled)

    def _kw_oneOf(self, subs, schema, relpath, root):
        compiled = tuple(self.compile(s, relpath, root) for s in subs)
        return lambda instance: sum(1 for c in compiled if c(instance)) == 1

    def _kw_not(self, sub, schema, relpath, root):
        compiled = self.compile(sub, relpath, root)
        return lambda instance: not compiled(instance)

    def _kw_if(self, sub, schema, relpath, root):
        test = self.compile(sub, relpath, root)
        then = self.compile(schema["then"], relpath, root) if "then" in schema else None
        other = self.compile(schema["else"], relpath, root) if "else" in schema else None

        def check(instance):
            if test(instance):
                return then is None or then(instance)
            return other is None or other(instance)
        return check

    def _kw_then(self, *_):
        return None  # applied by "if" (alone it does nothing)

    _kw_else = _kw_then

    # -------------------------------------------- the pack's own keywords
    def _kw_maxUtf16Length(self, limit, *_):
        from .validation import _utf16_len

        def check(instance):
            if not isinstance(instance, str):
                return True
            n = len(instance)
            return not (n * 2 > limit and (n > limit or _utf16_len(instance) > limit))
        return check

    def _kw_maxGraphemes(self, limit, *_):
        def check(instance):
            if isinstance(instance, str) and len(instance) > limit:
                # more code points than the limit: only segmenting can tell,
                # and the full validator does it (once, not twice)
                raise Unsure("grapheme count")
            return True
        return check

    def _kw_sameLengthAcrossItems(self, key, *_):
        def check(instance):
            if not isinstance(instance, list):
                return True
            counts = {len(item[key]) for item in instance
                      if isinstance(item, dict) and isinstance(item.get(key), list)}
            return len(counts) <= 1
        return check

    def _kw_numericMaximum(self, limit, *_):
        return lambda instance: not (isinstance(instance, str) and instance.isdigit() and int(instance) > limit)

    def _kw_finite(self, wanted, *_):
        if not wanted:
            return None
        return lambda instance: not (isinstance(instance, float) and not math.isfinite(instance))

    def _kw_discriminator(self, spec, schema, relpath, root):
        name, mapping = spec["propertyName"], spec["mapping"]
        compiled = {value: self._ref(ref, relpath, root) for value, ref in mapping.items()}

        def check(instance):
            if not isinstance(instance, dict):
                return True
            value = instance.get(name)
            sub = compiled.get(value) if isinstance(value, str) else None
            return sub is None or sub(instance)
        return check

