"""The redactor's caches (per secret value, per set of secrets) and its
short-text fast path change no answer: every form is still masked on both
sides of the fast path's length limit, and one run's secrets never mask (or
unmask) another's. The full canary is tests/reliability/test_secrets.py."""
import base64
from urllib.parse import quote

from line_connector import redaction
from line_connector.redaction import MASK, Redactor

TOKEN = "tok+en/With=Signs-0123456789"
OTHER = "another-secret-value-42"


def _warm(red):
    """Scrub enough short clean texts that the alternation is compiled
    (distinct ones: a clean text seen before is remembered, not searched)."""
    for i in range(redaction._REGEX_AFTER + 1):
        red.scrub("clean-%d" % i)
    assert red._regex() is not None


def _forms_in_texts(secret):
    raw = secret.encode()
    return [secret, quote(secret, safe=""), base64.b64encode(raw).decode(), raw.hex(),
            base64.b64encode(b"Bearer " + raw).decode()]


def test_every_form_masked_on_both_sides_of_the_fast_path_limit():
    cold, red = Redactor([TOKEN + "-cold"]), Redactor([TOKEN])
    _warm(red)
    for form in _forms_in_texts(TOKEN + "-cold"):               # before the alternation is compiled
        assert MASK in cold.scrub("x" + form + "y") and form not in cold.scrub("x" + form + "y")
    for form in _forms_in_texts(TOKEN):
        for pad in (0, redaction._REGEX_MAX, redaction._REGEX_MAX * 4):
            text = "x" * pad + "[" + form + "]"
            out = red.scrub(text)
            assert TOKEN not in out and form not in out and MASK in out, (pad, form)


def test_clean_text_is_returned_unchanged_on_both_paths():
    red = Redactor([TOKEN])
    _warm(red)
    for text in ("OK", "application/json", "y" * (redaction._REGEX_MAX * 3)):
        assert red.scrub(text) is text


def test_one_runs_secrets_never_reach_anothers_redactor():
    first = Redactor([TOKEN])
    second = Redactor([OTHER])
    assert first.scrub(OTHER) == OTHER
    assert second.scrub(TOKEN) == TOKEN
    assert second.scrub(OTHER) == MASK
    both = Redactor([OTHER, TOKEN])
    assert both.scrub("%s %s" % (TOKEN, OTHER)) == "%s %s" % (MASK, MASK)
    # adding a secret later also reaches the fast path (another set, another alternation)
    _warm(first)
    first.add(OTHER)
    _warm(first)
    assert first.scrub("a " + OTHER) == "a " + MASK


def test_same_secrets_in_any_order_give_the_same_forms_as_computed_fresh():
    a = Redactor([TOKEN, OTHER, TOKEN])
    b = Redactor([OTHER, TOKEN])
    assert a._needles == b._needles
    fresh = redaction._forms(TOKEN) | redaction._forms(OTHER)
    assert set(a._needles) == fresh
    assert [len(n) for n in a._needles] == sorted((len(n) for n in fresh), reverse=True)


def test_full_caches_are_emptied_not_grown():
    redaction._FORMS.clear()
    redaction._NEEDLES.clear()
    for i in range(redaction._CACHE_SIZE + 10):
        Redactor(["secret-number-%d" % i])
    assert len(redaction._FORMS) <= redaction._CACHE_SIZE
    assert len(redaction._NEEDLES) <= redaction._CACHE_SIZE
    assert Redactor(["secret-number-3"]).scrub("x secret-number-3") == "x " + MASK


def test_lists_of_digit_strings_still_lose_every_form_made_of_digits():
    """A list of phone numbers is told clean by its characters alone unless a
    form of a secret is itself made of digits: a secret of digits, or one
    whose hex form is digits only ("ABCDEFGHI" is 414243444546474849)."""
    phones = [str(85290000000 + i) for i in range(50)]
    for secret, form in (("85290001234", "85290001234"), ("ABCDEFGHI", "414243444546474849"),
                         ("ABCDEFGHI", "ABCDEFGHI")):
        red = Redactor([secret])
        for where in (0, 25, 49):
            listed = phones[:where] + [form] + phones[where + 1:]
            out = red.scrub_obj({"recipients": listed})["recipients"]
            assert out[where] == MASK and form not in "".join(out), (secret, form, where)
        assert red.scrub_obj({"recipients": phones}) == {"recipients": phones}
    # a form split across two phones is not in either: the lists stay as they are
    red = Redactor(["85290001234"])
    assert red.scrub_obj(["8529000", "1234"]) == ["8529000", "1234"]


def test_texts_found_clean_form_by_form_are_remembered_and_only_those():
    secret = TOKEN + "-remembered"
    red = Redactor([secret])
    for _ in range(3):
        assert red.scrub("status_code") == "status_code"
        for form in _forms_in_texts(secret):
            out = red.scrub("x" + form + "y")
            assert form not in out and MASK in out, form
    remembered = red._entry[3]
    assert "status_code" in remembered
    assert not any(form in text for text in remembered for form in _forms_in_texts(secret))


def test_a_scrub_between_the_steps_of_add_never_remembers_a_secret_as_clean():
    """``add`` moves a redactor to a new set of forms; a scrub on another
    thread in the middle of it (simulated: the entry is moved, the rest of
    ``add`` not yet done) must judge a text by the forms of the entry whose
    clean texts it would join, else the new secret is remembered clean for
    every redactor of that set (review finding of issue 22's fifth pass)."""
    from line_connector.redaction import _needles_of

    red = Redactor([OTHER + "-race"])
    text = "Authorization: Bearer " + TOKEN + "-race"
    red._values = red._values | {TOKEN + "-race"}
    red._entry = _needles_of(red._values)  # add(): the entry is moved first...
    assert TOKEN not in red.scrub(text)  # ...a scrub now...
    red._needles = red._entry[0]  # ...the rest of add()
    assert TOKEN not in red.scrub(text)
    assert TOKEN not in Redactor([OTHER + "-race", TOKEN + "-race"]).scrub_obj({"h": text})["h"]
