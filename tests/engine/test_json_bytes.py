"""``json_bytes`` writes every JSON body the pack sends (and signs: NXCloud's
md5 covers the exact bytes). Its fast path for a long list of plain strings
(a bulk send's recipients) must give, byte for byte, what Python's own
``json.dumps(obj, ensure_ascii=False, separators=(",", ":"))`` gives, or
raise what it raises: the reference here is the standard library, not the
pack's own encoder."""
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from line_connector.http import _PLAIN_LIST_MIN, json_bytes


def reference(obj):
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def outcome(fn, obj):
    try:
        return fn(obj)
    except Exception as exc:  # the same kind of failure counts as the same outcome
        return type(exc)


# characters the encoder escapes or that could confuse the fast path: quotes,
# backslashes, control characters, DEL, separators of other kinds, non-ASCII,
# characters outside the BMP, lone surrogates (not UTF-8 encodable)
TRICKY = st.sampled_from(['"', "\\", "\x00", "\x1f", "\n", "\t", "\x7f", ",", '","', "\u2028", "é", "😀",
                          "\ud800", "]", "[", " "])
TEXT = st.one_of(st.text(alphabet="0123456789", min_size=1, max_size=20),
                 st.text(max_size=12),
                 st.lists(st.one_of(TRICKY, st.characters()), max_size=6).map("".join))
ITEM = st.one_of(TEXT, TEXT, TEXT, st.integers(), st.none(), st.floats(), st.booleans())
LONG_LIST = st.one_of(st.lists(TEXT, min_size=_PLAIN_LIST_MIN - 1, max_size=_PLAIN_LIST_MIN + 40),
                      st.lists(ITEM, min_size=_PLAIN_LIST_MIN, max_size=_PLAIN_LIST_MIN + 8))
VALUE = st.one_of(LONG_LIST, TEXT, st.integers(), st.floats(), st.none(),
                  st.dictionaries(TEXT, st.one_of(LONG_LIST, TEXT), max_size=2))
KEY = st.one_of(TEXT, TEXT, TEXT, st.integers(), st.floats(), st.booleans(), st.none())


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(KEY, VALUE, max_size=4))
def test_same_bytes_as_the_standard_library(body):
    assert outcome(json_bytes, body) == outcome(reference, body)


def test_a_bulk_send_body():
    phones = [str(85290000000 + i) for i in range(2000)]
    body = {"appkey": "k", "phones": phones, "message": {"textMessage": {"text": "สวัสดี \"hi\"\n"}}}
    assert json_bytes(body) == reference(body)
    ids = ["U%032x" % i for i in range(500)]
    assert json_bytes({"to": ids, "messages": [{"type": "text", "text": "x"}]}) == reference(
        {"to": ids, "messages": [{"type": "text", "text": "x"}]})


def test_lists_the_fast_path_must_refuse():
    base = ["85290000000"] * (_PLAIN_LIST_MIN - 1)
    for odd in ['a"b', "a\\b", "a\nb", "\x00", "\ud800", "\x7f", 1, None, 1.5, ["x"], {"a": "b"}, True]:
        body = {"to": base + [odd]}
        assert outcome(json_bytes, body) == outcome(reference, body), odd
    # a str subclass is written as its text, as the encoder does
    class Phone(str):
        pass
    body = {"to": [Phone("85290000000")] * _PLAIN_LIST_MIN}
    assert json_bytes(body) == reference(body)
