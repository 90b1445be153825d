"""LINE's routes, derived from its four official OpenAPI files
(tests/fixtures/line-openapi): what the sandbox must serve, and the
operations a parity test must cover."""
import os
from functools import lru_cache

import yaml

from openapi import SPEC_DIR

FILES = ("messaging-api.yml", "insight.yml", "manage-audience.yml", "channel-access-token.yml")
HTTP_METHODS = ("GET", "PUT", "POST", "DELETE", "OPTIONS", "HEAD", "PATCH", "TRACE")


@lru_cache(maxsize=None)
def operations():
    """[(file, METHOD, path, operationId)] of every operation of the four files."""
    found = []
    for filename in FILES:
        with open(os.path.join(SPEC_DIR, filename), encoding="utf-8") as fh:
            spec = yaml.safe_load(fh)
        for path, item in spec["paths"].items():
            for method, op in item.items():
                if method.upper() in HTTP_METHODS:
                    found.append((filename, method.upper(), path, op["operationId"]))
    return found


def routes():
    """{path template: set of METHODs LINE serves on it}."""
    table = {}
    for _, method, path, _ in operations():
        table.setdefault(path, set()).add(method)
    return table


def concrete(path, value="x1"):
    """The template with every {name} filled in (one path segment each)."""
    import re

    return re.sub(r"\{[^}]+\}", value, path)
