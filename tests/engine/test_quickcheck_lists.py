"""Lists of IDs (multicast ``to``: up to any number of user IDs) are checked
by one compiled regex over the items joined with newlines
(``validation.all_match``) instead of a search per item. Its verdicts must be
exactly the full validator's (jsonschema, draft 2020-12, ECMA-262 ``$``) on
the valid list and on mutations of it: every kind of bad item (a trailing or
embedded newline that could fake a separator, wrong case, wrong length, not
a string) in the first, a middle and the last place. LINE's user ID format:
https://developers.line.biz/en/docs/messaging-api/getting-user-ids/ ("U"
followed by 32 hexadecimal characters)."""
import json
import os
import re

import pytest

from line_connector import quickcheck
from line_connector.manifest import manifest
from line_connector.validation import all_match, ecma_search, load_schema_file, validator_for

ID = "U4af4980629a0b1c2d3e4f5a6b7c8d9e0"
IDS = ["U%032x" % i for i in range(50)]
BAD_ITEMS = [ID + "\n", "\n" + ID, ID + "\n" + ID, ID + "\r", ID.upper(), ID[:-1], ID + "0", "", "U", 0, None,
             ["x"], {"a": 1}, True, ID.replace("a", "\u0661"), " " + ID, ID + "\n" + ID[:-1]]
SCHEMAS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "schemas")


def _mutations():
    yield IDS
    yield [ID]
    yield []
    for bad in BAD_ITEMS:
        for where in (0, 25, 49):
            yield IDS[:where] + [bad] + IDS[where + 1:]
        yield [bad]
    yield [ID + "\n" + ID[:-1] + "0"] * 2  # two valid IDs per item would join like four items
    yield IDS[:-1] + [IDS[-1] + "\n"]


@pytest.mark.parametrize("index", range(len(list(_mutations()))))
def test_the_quick_check_of_multicast_to_agrees_with_jsonschema(index):
    spec = manifest().action("line_send_multicast")
    to = list(_mutations())[index]
    inputs = {"to": to, "messages": [{"type": "text", "text": "hi"}]}
    predicate = quickcheck.Compiler(load_schema_file).document(spec.inputs)
    full = [e.message for e in validator_for(spec.inputs).iter_errors(inputs)]
    try:
        quick = predicate(inputs) is True
    except quickcheck.Unsure:  # only for non-string items, which the full validator words
        assert full
        return
    assert quick == (not full), (to[:3], full[:2])


def _patterns():
    found = set()
    for folder, _, names in os.walk(SCHEMAS):
        for name in names:
            if name.endswith(".json"):
                with open(os.path.join(folder, name), encoding="utf-8") as fh:
                    found.update(re.findall(r'"pattern":\s*("(?:[^"\\]|\\.)*")', fh.read()))
    return sorted(json.loads(p) for p in found)


@pytest.mark.parametrize("pattern", _patterns())
def test_all_match_is_a_search_per_item_for_every_pattern_of_the_schemas(pattern):
    search = ecma_search(pattern)
    strings = [ID, "abc", "", "1234567890", "12", "x\n", "\n", "Cabc", "R" + "0" * 32, "2023-01-01", "a" * 200,
               "https://example.com/a", ID + "\n" + ID]
    lists = [[s] for s in strings] + [strings, [s for s in strings if search(s)] * 3, [], [1], ["a", None]]
    for values in lists:
        expected = all(isinstance(v, str) and search(v) is not None for v in values)
        assert all_match(pattern)(values) == expected, (pattern, values)


def test_only_anchored_newline_free_patterns_take_the_joined_regex():
    joinable = "^U[0-9a-f]{32}$"
    assert all_match(joinable)([ID, ID]) and not all_match(joinable)([ID + "\n" + ID])
    for pattern in ("^[^x]+$", "^.+$", "^a|b$", "^(a)$", "U[0-9a-f]{32}", r"^\w+$"):
        assert all_match(pattern)(["a\nb"]) == (ecma_search(pattern)("a\nb") is not None)


@pytest.mark.parametrize("where", [0, 1023, 1024, 2047, 2999])
def test_long_lists_are_checked_across_every_slice(where):
    many = ["U%032x" % i for i in range(3000)]
    assert all_match("^U[0-9a-f]{32}$")(many)
    for bad in (ID + "\n", ID.upper(), 7):
        assert not all_match("^U[0-9a-f]{32}$")(many[:where] + [bad] + many[where + 1:])
