"""The compact MCP rendering (schema_views.mcp_input_schema) describes and
never refuses what the pack accepts: a client that validates arguments with
the tool schema before calling must never block a call the pack would run.
Checked with every example of the manifest and every message of the labelled
corpus that LINE's reference calls valid (tests/line/message_corpus.py)."""
import jsonschema

from line.message_corpus import CASES
from line_connector.manifest import manifest
from line_connector.schema_views import FILE_INPUTS, mcp_input_schema
from line_connector.validation import iter_errors

USER = "U4af4980629a0b1c2d3e4f5a6b7c8d9e0"


def test_every_manifest_example_fits_its_compact_schema():
    checked = 0
    for spec in manifest().actions.values():
        if spec.example is None:
            continue
        inputs = {k: v for k, v in spec.example.items() if k not in FILE_INPUTS}
        if list(iter_errors(spec.inputs, inputs)):
            continue  # needs a file input: not an MCP call
        validator = jsonschema.Draft202012Validator(mcp_input_schema(spec.inputs))
        assert not [e.message for e in validator.iter_errors(inputs)], spec.name
        checked += 1
    assert checked >= len(manifest().actions) - 1


def test_every_message_the_pack_accepts_fits_the_compact_push_schema():
    relpath = manifest().action("line_send_push").inputs
    validator = jsonschema.Draft202012Validator(mcp_input_schema(relpath))
    accepted = 0
    for case in CASES:
        inputs = {"to": USER, "messages": case["messages"]}
        if list(iter_errors(relpath, inputs)):
            continue
        assert not [e.message for e in validator.iter_errors(inputs)], case["id"]
        accepted += 1
    assert accepted >= 20  # the corpus's valid cases really ran
