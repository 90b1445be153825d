"""Keeps secrets out of everything the pack prints, logs or raises.

Every secret value of the asset in use (and every token derived from one, and
the user and password of any URL in the asset) is registered with a
``Redactor`` before anything can fail; all output passes through ``scrub``
before it leaves the pack.

Masked forms of each secret (``_forms``): plain; URL-encoded (``quote`` with
and without ``/`` safe, ``quote_plus``), as in query strings, form bodies and
URLs, with upper- and lower-case escapes (``%2B`` and ``%2b``: RFC 3986
makes them equal and servers echo either; LINE tokens hold ``+ / =``);
JSON-escaped (ASCII and non-ASCII, and with ``/`` escaped, as PHP writes it); hex
(lower and upper case); base64 (standard and URL-safe, padded and
unpadded), and its part that stays the same when the secret sits inside a
longer base64'd string at any byte offset (``base64("Bearer " + token)``,
Basic auth's ``user:password``); and repr-escaped (``repr(s)``,
``repr(s.encode())``, ``unicode_escape`` and ``backslashreplace``), the way
Python's own exception texts quote a value (requests' ``InvalidHeader``
prints ``repr`` of the header value).

A body cut at 64 KiB can end in the middle of a secret the server echoed
back: ``scrub_cut`` masks any tail that is the beginning of a secret form, down
to ``MIN_CUT_PREFIX`` (1) character. Masking the last few characters of a body
that is already marked truncated costs nothing; printing even two characters
of a secret would be a partial leak, so no longer minimum is used.
"""
import base64
import json
import re
from urllib.parse import quote, quote_plus, unquote, unquote_plus

MASK = "***"
# Shorter values would mask innocent text everywhere (a 1-character "secret"
# would blank every occurrence of that letter); real credentials are longer.
MIN_SECRET_LENGTH = 4
#: The inner part of a base64 form at a byte offset is masked only when at
#: least this long: shorter runs of base64 characters occur by chance.
MIN_INNER_BASE64 = 8
#: The shortest tail of a truncated text that is masked when it begins a secret form.
MIN_CUT_PREFIX = 1
_REPLACEMENT = "\ufffd"  # a multi-byte character cut by the byte limit decodes to this


class Secret(str):
    """A str whose repr never shows the value (safe in tracebacks and logs)."""

    def __repr__(self):
        return "Secret('***')"


def _forms(value):
    """Every form of ``value`` to mask. Never fails, whatever the value holds
    (a lone surrogate cannot be URL-encoded: that form is skipped, the
    others still apply)."""
    forms = {value}
    makers = (lambda v: quote(v, safe=""), quote, quote_plus,
              lambda v: json.dumps(v)[1:-1], lambda v: json.dumps(v, ensure_ascii=False)[1:-1],
              lambda v: repr(v)[1:-1],
              lambda v: v.encode("unicode_escape").decode("ascii"),
              lambda v: v.encode("ascii", "backslashreplace").decode("ascii"))
    for make in makers:
        try:
            forms.add(make(value))
        except (UnicodeError, ValueError):
            pass
    forms |= {f.replace("/", "\\/") for f in forms if "/" in f}  # JSON's optional escape of "/"
    forms |= {_PERCENT.sub(lambda m: m.group(0).lower(), f) for f in forms if "%" in f}
    raw = value.encode("utf-8", "surrogatepass")  # never fails, even on a lone surrogate
    forms.add(repr(raw)[2:-1])
    forms.add(raw.hex())
    forms.add(raw.hex().upper())
    inner = set()
    for enc in (base64.b64encode, base64.urlsafe_b64encode):
        text = enc(raw).decode("ascii")
        forms.add(text)
        forms.add(text.rstrip("="))
        for offset in (0, 1, 2):
            inner.add(_inner_base64(enc, raw, offset))
    return {f for f in forms if len(f) >= MIN_SECRET_LENGTH} | {f for f in inner if len(f) >= MIN_INNER_BASE64}


_PERCENT = re.compile(r"%[0-9A-F]{2}")


def _inner_base64(encode, raw, offset):
    """The characters of ``encode(prefix + raw + suffix)`` that depend on
    ``raw`` alone, for any prefix of ``offset`` bytes (mod 3) and any
    suffix: base64 character i holds bits 6i..6i+5 of the input, and ``raw``
    fills bits 8*offset..8*(offset+len(raw))-1."""
    text = encode(b"\0" * offset + raw).decode("ascii")
    first = -(-4 * offset // 3)                # ceil(8*offset / 6)
    end = 4 * (offset + len(raw)) // 3         # floor(8*(offset+len) / 6)
    return text[first:end]


def url_secrets(url, usernames=True):
    """The user and password parts of ``url``'s ``user:password@`` (raw and
    percent-decoded, and each piece around a stray ``@`` or ``:``), found
    without a URL parser: the URL may be one that parsers refuse, and their
    error text is exactly where it would leak.

    ``usernames=False`` (Redis URLs, SPEC 12): only the password and what
    holds it. A Redis ACL user name (``line``, ``default``) is no secret, and
    masking it blanks every occurrence of that word in logs
    (``/v1/actions/***_send_push``)."""
    if not isinstance(url, str) or "@" not in url:
        return []
    rest = url.split("://", 1)[1] if "://" in url else url
    for stop in "/?#":
        rest = rest.split(stop, 1)[0]
    if "@" not in rest:
        return []
    userinfo = rest.rsplit("@", 1)[0]
    user, _, password = userinfo.partition(":")
    if not usernames:
        if not password:
            return []
        parts = {userinfo, password}
        for sep in "@:":
            parts.update(password.split(sep))
    else:
        parts = {userinfo, user, password}
        for sep in "@:":
            parts.update(userinfo.split(sep))
    for p in list(parts):
        parts.add(unquote(p))
        parts.add(unquote_plus(p))
    return sorted(p for p in parts if p)


#: the private members of an RSA JSON Web Key (RFC 7518 section 6.3.2)
JWK_PRIVATE_MEMBERS = ("d", "p", "q", "dp", "dq", "qi")


def jwk_private_members(value):
    """A secret that is a JSON Web Key's text (the line_channel_jwt asset's
    ``private_key``) is re-serialized in many ways (other spacing, key order,
    one member quoted alone in an error): each private member is a secret of
    its own. Returns them, or [] for any other text."""
    if not value.lstrip().startswith("{"):
        return []
    try:
        jwk = json.loads(value)
    except (ValueError, RecursionError):
        return []
    if not isinstance(jwk, dict):
        return []
    return [jwk[m] for m in JWK_PRIVATE_MEMBERS if isinstance(jwk.get(m), str) and len(jwk[m]) >= MIN_SECRET_LENGTH]


#: Bounded caches of the work that depends only on the secrets' values: a
#: warm run registers the same few secrets every call (~0.2 ms of forms to
#: compute and sort), and a service or a loop runs many calls per process.
#: Plain dicts (their get/set are atomic under the GIL); cleared, not
#: evicted one by one, when full: they only ever hold recomputable values.
_CACHE_SIZE = 256
_FORMS = {}    # secret value -> frozenset of its forms
_NEEDLES = {}  # frozenset of registered values -> [needles longest first, compiled alternation or None]
#: Texts up to this long are first searched with one precompiled alternation
#: of every form (one C-level pass); longer ones by ``in`` per form, which is
#: faster on long texts (a 24 KB recipient list: ~45 us vs ~200 us).
_REGEX_MAX = 512
#: The alternation is compiled (~0.4 ms) only once a set of secrets has
#: scrubbed this many short texts (a warm process's second or third run):
#: a one-shot CLI run would pay more to compile it than it saves.
_REGEX_AFTER = 64
#: Short texts the alternation found clean, remembered per set of secrets (the
#: entry's fourth item): a warm run scrubs the same keys and header values
#: ("status_code", "application/json"...) every call. Only texts up to
#: _CLEAN_MAX characters, at most _CLEAN_SIZE of them; a text that holds no
#: form of these secrets holds none the next time either.
_CLEAN_MAX = 128
_CLEAN_SIZE = 4096
#: A list of digit strings (phone numbers) joined with newlines can only
#: hold a form made of digits and newlines; the entry's fifth item lists
#: those forms (most sets of secrets have none: their hex and base64 forms
#: hold letters). Telling such a text costs one bytes.translate (~8 us for
#: 2,000 phones) instead of one search per form (~3 us each, a dozen forms).
_DIGIT_BYTES = b"0123456789\n"
_DIGIT_LINES = frozenset(_DIGIT_BYTES.decode("ascii"))


def _cached_forms(value):
    found = _FORMS.get(value)
    if found is None:
        forms = set(_forms(value))
        for part in jwk_private_members(value):  # a JWK's private members are secrets of their own
            forms |= _forms(part)
        found = frozenset(forms)
        if len(_FORMS) >= _CACHE_SIZE:
            _FORMS.clear()
        _FORMS[value] = found
    return found


def _needles_of(values):
    """The shared [needles, regex] entry of a set of registered values."""
    found = _NEEDLES.get(values)
    if found is None:
        merged = set()
        for value in values:
            merged |= _cached_forms(value)
        # longest first (a form inside a longer one is masked with it); ties in
        # a fixed order, so the same secrets always scrub a text the same way
        needles = tuple(sorted(merged, key=lambda n: (-len(n), n)))
        found = [needles, None, 0, set(), tuple(n for n in needles if _DIGIT_LINES.issuperset(n))]
        if len(_NEEDLES) >= _CACHE_SIZE:
            _NEEDLES.clear()
        _NEEDLES[values] = found
    return found


def _remember_clean(clean, text):
    """Keep a short text found clean among its entry's clean texts (bounded)."""
    if len(text) <= _CLEAN_MAX and len(clean) < _CLEAN_SIZE:
        clean.add(text)


class Redactor:
    def __init__(self, secrets=()):
        self._values = frozenset()
        self._entry = [(), None, 0, set(), ()]
        self._needles = ()
        for s in secrets:
            self.add(s)

    def add(self, value):
        if isinstance(value, str) and len(value) >= MIN_SECRET_LENGTH and value not in self._values:
            self._values = self._values | {value}
            self._entry = _needles_of(self._values)
            self._needles = self._entry[0]

    def add_url(self, url, usernames=True):
        """Register the user and password inside ``url``, if it has any
        (only the password with ``usernames=False``: see ``url_secrets``)."""
        for part in url_secrets(url, usernames):
            self.add(part)

    def __bool__(self):
        return bool(self._needles)

    def __repr__(self):
        return "Redactor(%d forms)" % len(self._needles)

    def _regex(self, entry=None):
        """The compiled alternation of every form of ``entry`` (default: this
        redactor's), or None while this set of secrets has scrubbed fewer
        than ``_REGEX_AFTER`` short texts (a count shared by the threads
        without a lock: a lost increment only delays the compile)."""
        if entry is None:
            entry = self._entry
        if entry[1] is None:
            entry[2] += 1
            if entry[2] <= _REGEX_AFTER:
                return None
            entry[1] = re.compile("|".join(map(re.escape, entry[0])))
        return entry[1]

    def scrub(self, text):
        # one snapshot of the entry for the whole call: its forms, its
        # alternation and its clean texts always belong together, even while
        # another thread's ``add`` moves this redactor to a new entry (a text
        # judged by old forms must never land among the new entry's clean texts)
        entry = self._entry
        needles = entry[0]
        if not isinstance(text, str) or not needles:
            return text
        # fast path for the many short strings of a result (status, reason,
        # header values): one search for every form at once; a text that
        # holds none is returned as is, one that holds any is masked below
        # exactly as before
        clean = None
        if len(text) <= _REGEX_MAX:
            clean = entry[3]
            if text in clean:
                return text
            regex = self._regex(entry)
            if regex is not None and regex.search(text) is None:
                _remember_clean(clean, text)
                return text
        original = text
        for needle in needles:
            if needle in text:
                text = text.replace(needle, MASK)
        if text is original and clean is not None:
            # found clean form by form (before the alternation is compiled):
            # remembered too, so a result's keys and header values repeated
            # across 50 chunks are searched once
            _remember_clean(clean, text)
        return text

    def scrub_cut(self, text):
        """``scrub`` for a text cut at a size limit: also mask a tail that
        begins a secret form (the rest of it was cut off)."""
        text = self.scrub(text)
        if not isinstance(text, str) or not self._needles:
            return text
        body = text.rstrip(_REPLACEMENT)
        longest = 0
        for needle in self._needles:
            for k in range(min(len(needle) - 1, len(body)), MIN_CUT_PREFIX - 1, -1):
                if k > longest and body.endswith(needle[:k]):
                    longest = k
                    break
        if longest:
            return body[:-longest] + MASK
        return text

    def scrub_obj(self, obj):
        """Return a copy of a JSON-like value with every string scrubbed.
        A result marked ``raw_body_truncated`` has its ``raw_body`` scrubbed
        with ``scrub_cut``. Iterative, so a value nested deeper than Python's
        recursion limit (a hostile server's answer) is scrubbed too."""
        if not self._needles:
            return obj
        if not isinstance(obj, (dict, list, tuple)):
            return self.scrub(obj)
        root = [None]
        stack = [(obj, root, 0, False)]  # (value, where the copy goes, its key there, cut?)
        while stack:
            value, parent, key, cut = stack.pop()
            if isinstance(value, str):
                parent[key] = self.scrub_cut(value) if cut else self.scrub(value)
            elif isinstance(value, dict):
                out = parent[key] = {}
                truncated = bool(value.get("raw_body_truncated"))
                for k, v in value.items():
                    k2 = self.scrub(k)
                    out[k2] = None  # keeps the key order; filled when popped
                    stack.append((v, out, k2, truncated and k == "raw_body"))
            elif isinstance(value, (list, tuple)):
                if len(value) > 1:
                    # long lists of strings (a chunk's recipients): one search over
                    # the joined text instead of one per item when it is clean (a
                    # form found across two items only sends it the long way)
                    try:
                        joined = "\n".join(value)  # TypeError unless every item is a str
                    except TypeError:
                        joined = None
                    if joined is not None:
                        entry = self._entry  # one snapshot: its forms and its digit forms together
                        needles = entry[0]
                        if joined.isascii() and not joined.encode("ascii").translate(None, _DIGIT_BYTES):
                            needles = entry[4]  # only digits and newlines: only such forms can be there
                        if not any(needle in joined for needle in needles):
                            parent[key] = list(value)
                            continue
                out = parent[key] = [None] * len(value)
                for i, v in enumerate(value):
                    stack.append((v, out, i, False))
            else:
                parent[key] = value
        return root[0]
