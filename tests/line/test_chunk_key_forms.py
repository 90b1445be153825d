"""A multicast chunk's retry key is computed from the chunk object (no
serialize-and-parse round trip, for speed); it must be exactly the key
``chunk_key`` derives from the body bytes actually sent, or a resend would
get other keys and deliver twice (SPEC 7)."""
import uuid

from line_connector import run_action
from line_connector.actions.line.send import canonical_json, chunk_key, _canonical_of
from line_connector.http import json_bytes

USERS = ["U%032x" % i for i in range(1203)]
MESSAGES = [{"type": "text", "text": "caf\u00e9 \U0001F600 \"q\" \\ </script>", "quoteToken": "x"},
            {"type": "location", "title": "t", "address": "a", "latitude": 35.6586, "longitude": -0.0}]


def test_the_canonical_form_of_the_object_is_that_of_its_serialized_body():
    for body in ({"to": USERS[:500], "messages": MESSAGES}, {"b": [1, 2.5, None, True], "a": {"z": "\u2028"}}):
        assert _canonical_of(body) == canonical_json(json_bytes(body))


def test_every_chunk_sent_carries_the_key_chunk_key_derives_from_its_body():
    base = str(uuid.uuid4())
    requests = run_action("line_send_multicast", {"url": "https://api.line.me", "token": "t" * 20},
                          {"to": USERS, "messages": MESSAGES[:1], "retry_key": base}, dry_run=True)
    assert len(requests) == 3
    for request in requests:  # a dry run shows each body parsed back from the bytes built
        assert request["headers"]["X-Line-Retry-Key"] == chunk_key(base, json_bytes(request["body"]))
