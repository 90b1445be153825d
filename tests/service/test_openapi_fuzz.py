"""Fuzz the running service with schemathesis, given only its /openapi.json
(issue 14 item 2): no server error, and every answer one the document
describes (status code, content type, body schema, headers).

The service is the real one (``line-connector serve`` on waitress, in its
own process: S-APP's ``start_service``), its assets pointed at the sandbox,
so every generated call that passes validation really runs the action
against a vendor emulator on 127.0.0.1. Bounded: a few examples per
operation and mode, no deadline per example (generation of the flex schemas
is slow, not the service), one overall budget the test checks it kept.

Left out of the fuzzing, on purpose: actions with an input naming a local
file (``save_to``, ``image_path``...). Random paths there would make the
service read or write files of the machine running the tests.
"""
import json
import os
import re
import time

import pytest
import requests
from helpers import require_module  # noqa: E402

schemathesis = require_module("schemathesis", "a test dependency: the [test] extra")

from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from hypothesis.errors import Unsatisfiable  # noqa: E402

EXAMPLES = 3
BUDGET = 150.0  # seconds for the whole fuzzing run: a bound, not a measurement
LOCAL_FILE_INPUT = re.compile(r'"(save_to|[a-z_]*_path|path|file_path|[a-z_]*_dir|directory)":\s*\{')


def _checks():
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import (content_type_conformance, response_headers_conformance,
                                                   response_schema_conformance, status_code_conformance)

    def no_server_error_but_a_vendor_refusal(ctx, response, case):
        """``not_a_server_error``, except 502: SPEC 9 answers a vendor's
        refusal with 502 {"error", "output"} (here: the ``wrong_line``
        asset's token, or content the emulator refuses as LINE would); the
        schema check still holds the 502's body to the document."""
        if response.status_code == 502:
            return None
        return not_a_server_error(ctx, response, case)

    return [no_server_error_but_a_vendor_refusal, status_code_conformance, content_type_conformance,
            response_schema_conformance, response_headers_conformance]


def _touches_local_files(doc, operation_id):
    schemas = doc["components"]["schemas"]
    inputs = schemas.get(operation_id + ".inputs")
    if inputs is None:
        return False
    seen, stack, text = set(), [inputs], []
    while stack:  # the inputs schema and every component it reaches
        node = stack.pop()
        blob = json.dumps(node)
        text.append(blob)
        for name in re.findall(r'"#/components/schemas/([^"]+)"', blob):
            if name not in seen:
                seen.add(name)
                stack.append(schemas[name])
    return bool(LOCAL_FILE_INPUT.search("".join(text)))


def test_schemathesis_finds_no_server_error_and_no_undocumented_answer(
        service_sandbox, service_config, start_service, keys, tmp_path, assert_no_secrets):
    from schemathesis import GenerationMode

    config = service_config(service_sandbox, webhooks={"ops": {"asset": "ops_secret",
                                                               "forward": [{"jsonl": str(tmp_path / "ev.jsonl")}]}})
    url = start_service(config)
    assert url.startswith("http://127.0.0.1:")
    doc = requests.get(url + "/openapi.json", timeout=30).json()
    schema = schemathesis.openapi.from_dict(doc)
    checks = _checks()
    auth = {"Authorization": "Bearer " + keys.api}
    started = time.monotonic()
    fuzzed, skipped, calls, statuses = [], [], [0], {}

    for result in schema.get_all_operations():
        operation = result.ok()
        op_id = operation.definition.raw.get("operationId")
        if _touches_local_files(doc, op_id):
            skipped.append(op_id)
            continue
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            strategy = operation.as_strategy(generation_mode=mode)

            @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
                      phases=[Phase.explicit, Phase.generate],
                      suppress_health_check=list(HealthCheck))
            @given(case=strategy)
            def run(case):
                response = case.call(base_url=url, headers=auth, timeout=30)
                calls[0] += 1
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
                assert_no_secrets(response.content)
                case.validate_response(response, checks=checks)

            try:
                run()
            except Unsatisfiable:
                # nothing to make invalid: an operation without parameters or body
                assert mode == GenerationMode.NEGATIVE and not operation.definition.raw.get("requestBody") \
                    and not operation.definition.raw.get("parameters"), op_id
        fuzzed.append(op_id)
        assert time.monotonic() - started < BUDGET, "fuzzing ran past its budget at %s" % op_id

    actions = [o for o in fuzzed if o not in ("list_actions", "healthz", "metrics", "openapi", "webhook")]
    assert len(actions) >= 20 and "webhook" in fuzzed, (fuzzed, skipped)
    assert calls[0] >= len(fuzzed) * 2  # every operation was really called, in both modes
    assert 200 in statuses and 422 in statuses, statuses  # real runs and refusals, not only 401s
    log = url.log_text()
    assert "Traceback" not in log
    assert_no_secrets(log)
    url.log_lines()  # JSON lines only


@pytest.mark.parametrize("action, inputs", [
    ("sobot_query_task_list", {"all_pages": True, "max_pages": 2.0, "page_no": 1.0, "page_size": 10.0}),
])
def test_a_whole_number_written_as_a_float_is_an_integer(action, inputs):
    """What the fuzzer found first: JSON Schema's ``integer`` accepts 2.0 (one
    JSON number type), and an action counting with it crashed mid-run (500,
    "whether anything was sent is unknown"). The runner now hands actions
    such a number as an int, for every door."""
    from line_connector.runner import run_action
    from line_connector.sandbox import Sandbox

    with Sandbox(log_stream=open(os.devnull, "w")) as sandbox:
        output = run_action(action, {}, inputs, sandbox=sandbox)
    results = output if isinstance(output, list) else output["requests"]
    assert results and all(r["ok"] for r in results), results
