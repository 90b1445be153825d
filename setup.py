"""Packaging for line-connector.

The repository keeps the pack's parts where a reader looks for them
(``connector.yaml``, ``actions/``, ``schemas/``, ``assets/`` at the top), but
the installed distribution must expose one import name, ``line_connector``,
and never a bare top-level ``actions`` package. So:

* ``actions/`` is mapped to the sub-package ``line_connector.actions``;
* ``connector.yaml``, ``schemas/`` and ``assets/`` are copied into
  ``line_connector/_pack/`` when a wheel is built. An editable install reads
  them from the checkout instead (see ``line_connector.paths``).

The sdist carries everything a wheel is built from (MANIFEST.in), so
``python -m build`` (sdist, then a wheel from that sdist) and ``pip install
line_connector-*.tar.gz`` work for any packager, not only from a checkout.
No ``py.typed``: the package is not annotated (a handful of functions out of
hundreds), and the marker would tell type checkers otherwise.
"""
import os
import shutil

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))
PACK_PARTS = ("connector.yaml", "schemas", "assets")


class BuildPyWithPack(build_py):
    """build_py that also ships the manifest, schemas and assets."""

    def run(self):
        super().run()
        target = os.path.join(self.build_lib, "line_connector", "_pack")
        shutil.rmtree(target, ignore_errors=True)  # no stale files from an earlier build
        for part in PACK_PARTS:
            src = os.path.join(HERE, part)
            dst = os.path.join(target, part)
            if os.path.isdir(src):
                shutil.copytree(src, dst, dirs_exist_ok=True,
                                ignore=shutil.ignore_patterns("__pycache__"))
            else:
                os.makedirs(target, exist_ok=True)
                shutil.copy2(src, dst)


def read(name):
    with open(os.path.join(HERE, name), encoding="utf-8") as fh:
        return fh.read()


setup(
    name="line-connector",
    version="0.1.0",
    description="Connector pack for the LINE Messaging API, NXCloud and Sobot: "
                "JSON-Schema actions, a CLI, a Python runner and a local sandbox.",
    long_description=read("README.md"),
    long_description_content_type="text/markdown",
    license="Apache-2.0",  # no License classifier: setuptools now deprecates them for this field
    keywords=["line", "line-messaging-api", "nxcloud", "sobot", "viber", "sms", "soar",
              "connector", "webhook", "sandbox", "chatops"],
    project_urls={
        # the vendor references the actions implement; the pack's own home is
        # added when it has a public address
        "LINE Messaging API reference": "https://developers.line.biz/en/reference/messaging-api/",
    },
    classifiers=[
        "Development Status :: 3 - Alpha",
        "Environment :: Console",
        "Intended Audience :: Developers",
        "Intended Audience :: System Administrators",
        "Operating System :: OS Independent",
        "Programming Language :: Python :: 3",
        "Programming Language :: Python :: 3 :: Only",
        "Programming Language :: Python :: 3.10",
        "Programming Language :: Python :: 3.11",
        "Programming Language :: Python :: 3.12",
        "Programming Language :: Python :: 3.13",
        "Topic :: Communications :: Chat",
        "Topic :: Software Development :: Testing :: Mocking",
        "Topic :: System :: Monitoring",
    ],
    python_requires=">=3.10",
    packages=[
        "line_connector",
        "line_connector.sandbox",
        "line_connector.service",
        "line_connector.actions",
        "line_connector.actions.line",
        "line_connector.actions.nxcloud",
        "line_connector.actions.sobot",
    ],
    package_dir={
        "line_connector": "line_connector",
        "line_connector.sandbox": "line_connector/sandbox",
        "line_connector.service": "line_connector/service",
        "line_connector.actions": "actions",
        "line_connector.actions.line": "actions/line",
        "line_connector.actions.nxcloud": "actions/nxcloud",
        "line_connector.actions.sobot": "actions/sobot",
    },
    cmdclass={"build_py": BuildPyWithPack},
    install_requires=[
        "requests>=2.25",
        "jsonschema>=4.18",
        "pyyaml>=5.4",
        # grapheme clusters (\X) for the LINE properties counted in graphemes;
        # imported only for strings long enough for the count to differ
        "regex>=2022.1.18",
    ],
    extras_require={
        # setuptools is listed so the packaging test can build a wheel
        # offline (--no-build-isolation) instead of reaching a package index;
        # 70.1 is the first setuptools that builds wheels without the wheel package.
        # build: the packaging test runs `python -m build --no-isolation`, the
        # command a packager runs, to prove the sdist builds a working wheel.
        "test": ["pytest>=7", "responses>=0.23", "hypothesis>=6", "setuptools>=70.1", "build>=1",
                 # the official SDK, to prove the sandbox answers as LINE does
                 "line-bot-sdk>=3.11",
                 # the line_channel_jwt asset's signing, and the sandbox's check of it
                 "PyJWT>=2.4", "cryptography>=3.4",
                 # the official MCP SDK's own stdio client drives `line-connector mcp` (tests/doors)
                 "mcp>=2,<3",
                 # service mode's own dependencies, so its tests run in the test venv
                 "waitress>=3", "redis>=5", "prometheus_client>=0.20",
                 # the served OpenAPI document is checked by an independent validator,
                 # and the running service is fuzzed against it (tests/service)
                 "openapi-spec-validator>=0.7", "schemathesis>=3.30",
                 # a code generator no one here wrote must make a typed client of every operation
                 # (0.29 needs Python 3.11+; CI's test run uses the machine's python3, 3.11)
                 "openapi-python-client==0.29.1; python_version >= '3.11'",
                 # the service must run unchanged under gunicorn with several workers (a test does it)
                 "gunicorn>=22; sys_platform != 'win32'"],
        # `line-connector serve`: a production WSGI server (pure Python, every platform),
        # the official Redis client for the shared state store, and Prometheus metrics
        "service": ["waitress>=3", "redis>=5", "prometheus_client>=0.20"],
        # the line_channel_jwt asset (channel access tokens v2.1): PyJWT signs the
        # assertion, cryptography gives it RS256; the sandbox verifies with the same
        "jwt": ["PyJWT>=2.4", "cryptography>=3.4"],
        # `line-connector mcp`: the official Model Context Protocol SDK (2.x needs Python 3.10, the pack's floor)
        "mcp": ["mcp>=2,<3"],
    },
    entry_points={
        "console_scripts": ["line-connector = line_connector.cli:main"],
        "pytest11": ["line_connector = line_connector.pytest_plugin"],
    },
)
