"""Requests and answers judged by LINE's OpenAPI (tests/fixtures/line-openapi):
which operation a request is, whether its path parameters, query and body are
what that operation declares, and whether an answer fits its 200 schema.
Used by test_users_groups.py and test_insight.py."""
import json
import os
import re
from functools import lru_cache
from urllib.parse import parse_qsl, unquote, urlsplit

import yaml
from jsonschema import Draft202012Validator

from openapi import SPEC_DIR, validator


@lru_cache(maxsize=None)
def _spec(filename):
    with open(os.path.join(SPEC_DIR, filename), encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def operation(method, url, filename):
    """(path template, operation, path params) of the OpenAPI operation
    ``method url`` is, or AssertionError."""
    path = urlsplit(url).path
    for template, item in _spec(filename)["paths"].items():
        regex = "^" + re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(template)) + "$"
        found = re.match(regex, path)
        if found and method.lower() in item:
            return template, item[method.lower()], {k: unquote(v) for k, v in found.groupdict().items()}
    raise AssertionError("%s %s is no operation of %s" % (method, path, filename))


def request_problems(method, url, body, filename="messaging-api.yml"):
    """Everything in the request that LINE's OpenAPI does not allow."""
    template, op, path_params = operation(method, url, filename)
    problems = []
    declared = {(p["in"], p["name"]): p for p in op.get("parameters", [])}
    query = dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))
    for name in path_params:
        if ("path", name) not in declared:
            problems.append("path parameter %s not declared" % name)
    for name, value in query.items():
        param = declared.get(("query", name))
        if param is None:
            problems.append("query parameter %s not declared by %s" % (name, template))
            continue
        schema = dict(param["schema"])
        if schema.get("type") == "integer":
            if not re.fullmatch(r"-?[0-9]+", value):
                problems.append("query %s: not an integer" % name)
                continue
            value = int(value)
        problems += ["query %s: %s" % (name, e.message) for e in Draft202012Validator(schema).iter_errors(value)]
    for (where, name), param in declared.items():
        if where == "query" and param.get("required") and name not in query:
            problems.append("required query parameter %s missing" % name)
    content = op.get("requestBody", {}).get("content", {}).get("application/json")
    if content is None:
        if body not in (None, b"", ""):
            problems.append("%s takes no body" % template)
    else:
        ref = content["schema"]["$ref"].rpartition("/")[2]
        data = json.loads(body)
        problems += ["body: %s" % e.message for e in validator(ref, filename).iter_errors(data)]
    return problems


def answer_problems(method, url, status, body, filename="messaging-api.yml"):
    """Everything in a 2xx answer that the operation's response schema does
    not allow (an operation without a schema for that status: body must be
    an empty object or nothing)."""
    _, op, _ = operation(method, url, filename)
    declared = op["responses"].get(str(status))
    if declared is None:
        return ["status %d not declared" % status]
    content = declared.get("content", {}).get("application/json")
    if content is None:
        return [] if body in (None, {}) else ["a body where LINE declares none"]
    ref = content["schema"]["$ref"].rpartition("/")[2]
    return [e.message for e in validator(ref, filename).iter_errors(body)]
