"""Where the tests find the pinned third-party clients (.ci/package.json,
installed by .ci/run with ``npm ci`` into .ci/node_modules).

Under ``CI=true`` a missing client fails the test (a green run must mean the
client really ran); elsewhere the test is skipped and says how to install.
"""
import os
import shutil

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NODE_MODULES = os.environ.get("LINE_CONNECTOR_NODE_MODULES") or os.path.join(ROOT, ".ci", "node_modules")
HERE = os.path.dirname(os.path.abspath(__file__))


def missing(what):
    text = "%s is not installed" % what
    if "pip" not in what:
        text += ": run `cd .ci && npm ci` (pinned in .ci/package.json; .ci/run does it)"
    if os.environ.get("CI") == "true":
        pytest.fail(text)
    pytest.skip(text)


def node():
    found = shutil.which("node")
    if not found:
        missing("node")
    return found


def npm_bin(name):
    """The path of an installed npm package's executable."""
    path = os.path.join(NODE_MODULES, ".bin", name)
    if not os.path.exists(path):
        missing(name)
    node()
    return path


def npm_package(name):
    """The folder of an installed npm package (for `node <folder>/<script>`)."""
    path = os.path.join(NODE_MODULES, *name.split("/"))
    if not os.path.isdir(path):
        missing(name)
    node()
    return path


def node_env():
    return dict(os.environ, NODE_PATH=NODE_MODULES, NO_UPDATE_NOTIFIER="1", DO_NOT_TRACK="1")
