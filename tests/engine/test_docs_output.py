"""Each action page's Output table lists only that action's fields (issue
21: it listed every field of every action) and never misses one the action
returns: every action with an example is run against the sandbox and each
key of its results must be in its own table."""
import re

import pytest

from line_connector import docs
from line_connector.errors import ActionError, InputError
from line_connector.manifest import manifest
from line_connector.runner import run_action
from line_connector.sandbox import Sandbox

HTTP_RESULTS = "common/http_results.json"


def _table(spec):
    page = docs.action_page(spec)
    section = page.split("## Output", 1)[1].split("## Example", 1)[0]
    return re.findall(r"^\| `([^`]+)` \|", section, re.M)


def _results(output):
    if isinstance(output, list):
        return [r for r in output if isinstance(r, dict)]
    if isinstance(output, dict):
        return [r for v in output.values() for r in _results(v)]
    return []


@pytest.fixture(scope="module")
def sandbox():
    with Sandbox() as sb:
        yield sb


def test_tables_differ_by_action():
    m = manifest()
    quota = _table(m.actions["line_get_quota"])
    assert "content_base64" not in quota and "vendor_code" not in quota and "chunk" not in quota
    assert "retry_key" not in quota  # a read has no retry key
    assert set(docs.COMMON_RESULT_FIELDS) <= set(quota)
    assert {"content_type", "sha256", "content_base64"} <= set(_table(m.actions["line_get_message_content"]))
    assert {"chunk", "chunks", "recipients", "vendor_code"} <= set(_table(m.actions["nxcloud_send_super_message"]))
    assert {"retry_key", "accepted_request_id"} <= set(_table(m.actions["line_send_push"]))
    assert "audienceGroupId" in _table(m.actions["line_create_audience"])


@pytest.mark.parametrize("name", [n for n, s in manifest().actions.items()
                                  if s.outputs == HTTP_RESULTS and s.example is not None])
def test_every_field_an_action_returns_is_in_its_table(name, sandbox):
    spec = manifest().actions[name]
    try:
        output = run_action(name, {}, spec.example, sandbox=sandbox)
    except ActionError as exc:  # a refusal still returns results in the documented shape
        output = exc.output
    except InputError:  # an example that needs a file of this machine (images): nothing to check
        pytest.skip("the example needs a local file")
    results = _results(output)
    assert results
    table = set(_table(spec))
    for result in results:
        assert set(result) <= table, (name, sorted(set(result) - table))
