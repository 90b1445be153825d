"""Fixtures for the service tests (issue 14): the real app, on waitress, in
a subprocess (``line-connector serve``), against a real sandbox.

* ``service_sandbox``: a Sandbox on 127.0.0.1 (function scope); pass
  ``faults`` through ``request.param``-free ``make_sandbox(faults=...)``.
* ``service_config(sandbox, **extra)``: a config dict whose assets point at
  the sandbox, with canary secrets (``SERVICE_CANARIES``) in them and in the
  API key, so any test can check that none leaks.
* ``start_service(config, env=None, args=(), expect_ready=True)``: writes the
  config, runs ``line-connector serve --config FILE --port 0`` and returns
  its base URL (a ``str`` with ``.proc``, ``.stderr_path``, ``.log_lines()``,
  ``.stop()``); every service is stopped at the end of the test.
* ``http_call(url, method, body, headers, key)``: one request ->
  ``(status, headers with lower-cased names, body bytes)``.
* ``raw_exchange(url, data, ...)``: bytes on a raw socket -> what came back.
"""
import http.client
import json
import os
import socket
import subprocess
import sys
import time
import urllib.parse

import pytest

#: canaries: each must never appear in a response, a log line or /metrics
CANARY_API_KEY = "svcKEYcanary-7e1d0c9b8a7f6e5d4c3b"
CANARY_OTHER_KEY = "svcKEYcanary-2b4d6f8a0c1e3a5c7e9f"
CANARY_WRONG_TOKEN = "wrongTOKENcanary-9f8e7d6c5b4a3210"
SERVICE_CANARIES = (CANARY_API_KEY, CANARY_OTHER_KEY, CANARY_WRONG_TOKEN)
READY_TIMEOUT = 30.0


def _serve_command():
    return [sys.executable, "-c", "import sys; from line_connector.cli import main; sys.exit(main())", "serve"]


@pytest.fixture
def make_sandbox():
    """``make_sandbox(faults=None)`` -> a started Sandbox, stopped after the test."""
    from line_connector.sandbox import Sandbox

    started = []

    def make(faults=None):
        sandbox = Sandbox(faults=faults).start()
        started.append(sandbox)
        return sandbox

    yield make
    for sandbox in started:
        sandbox.stop()


@pytest.fixture
def service_sandbox(make_sandbox):
    return make_sandbox()


@pytest.fixture
def service_config():
    """``service_config(sandbox, **extra)`` -> config dict: ``ops_line``
    (the sandbox's token, read from ``${SVC_LINE_TOKEN}`` when ``env_token``),
    ``wrong_line`` (a canary token the sandbox refuses), ``ops_secret``,
    ``ops_nx``, ``ops_sobot``; API keys: the two canaries."""

    def build(sandbox, **extra):
        demo = sandbox.demo_assets()
        doc = {"assets": {
            "ops_line": demo["line_channel_access_token"],
            "wrong_line": {"url": sandbox.url, "token": CANARY_WRONG_TOKEN},
            "ops_secret": demo["line_channel_secret"],
            "ops_nx": demo["nxcloud"],
            "ops_sobot": demo["sobot"],
        }, "api_keys": [CANARY_API_KEY, CANARY_OTHER_KEY]}
        doc.update(extra)
        return doc
    return build


class Service(str):
    """The base URL of a running service, plus its process and log."""

    proc = None
    stderr_path = None

    def log_text(self):
        with open(self.stderr_path, "r", encoding="utf-8", errors="replace") as fh:
            return fh.read()

    def log_lines(self):
        """Every stderr line parsed as JSON (fails the test on a non-JSON line)."""
        lines = []
        for line in self.log_text().splitlines():
            if line.strip():
                try:
                    lines.append(json.loads(line))
                except ValueError:
                    pytest.fail("service wrote a non-JSON line on stderr: %r" % line[:300])
        return lines

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.returncode


def launch(tmp_path, command, env=None, name="svc"):
    """Start ``command`` with stderr to a file; (proc, stderr path)."""
    n = len(list(tmp_path.glob(name + "-*.stderr")))
    stderr_path = tmp_path / ("%s-%d.stderr" % (name, n))
    full_env = dict(os.environ)
    full_env.update(env or {})
    with open(stderr_path, "wb") as err:
        proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                                env=full_env, cwd=str(tmp_path))
    return proc, stderr_path


def wait_listening(proc, stderr_path, timeout=READY_TIMEOUT):
    """The ``url`` of the service's ``listening`` log line."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        text = stderr_path.read_text(encoding="utf-8", errors="replace")
        for line in text.splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict) and record.get("event") == "listening":
                return record["url"]
        if proc.poll() is not None:
            pytest.fail("the service exited with %s before listening: %s" % (proc.returncode, text[-2000:]))
        time.sleep(0.05)
    proc.kill()
    pytest.fail("the service did not listen within %g s" % timeout)


@pytest.fixture
def start_service(tmp_path):
    """``start_service(config_dict, env=None, args=()) -> Service`` (a str: the base URL)."""
    running = []

    def start(config, env=None, args=(), host="127.0.0.1"):
        n = len(running)
        cfg = tmp_path / ("service-%d.yaml" % n)
        cfg.write_text(json.dumps(config), encoding="utf-8")  # JSON is YAML
        command = _serve_command() + ["--config", str(cfg), "--host", host, "--port", "0"] + list(args)
        proc, stderr_path = launch(tmp_path, command, env)
        service = Service(wait_listening(proc, stderr_path))
        service.proc, service.stderr_path = proc, stderr_path
        running.append(service)
        return service

    yield start
    for service in running:
        service.stop()


def http_call(url, method="GET", body=None, headers=None, key=None, timeout=60):
    """One request; ``body``: a JSON-able object, or bytes sent as they are.
    ``key``: an API key sent as ``Authorization: Bearer``."""
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    sent = dict(headers or {})
    data = None
    if body is not None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode("utf-8")
        sent.setdefault("Content-Type", "application/json")
    if key is not None:
        sent["Authorization"] = "Bearer " + key
    try:
        conn.request(method, parts.path + ("?" + parts.query if parts.query else ""), body=data, headers=sent)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


@pytest.fixture
def api():
    """``api(url, method="GET", body=None, headers=None, key=None)``: see ``http_call``."""
    return http_call


def raw_exchange(url, data, read_timeout=35.0, close_write=False):
    """Send raw bytes, then read until the server closes (or the timeout).
    Returns (bytes received, seconds until the server closed or None)."""
    parts = urllib.parse.urlsplit(url)
    started = time.monotonic()
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        try:
            sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed before taking it all: read what it said
        if close_write:
            sock.shutdown(socket.SHUT_WR)
        sock.settimeout(read_timeout)
        got = bytearray()
        try:
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    return bytes(got), time.monotonic() - started
                got += chunk
        except socket.timeout:
            return bytes(got), None
        except ConnectionResetError:
            return bytes(got), time.monotonic() - started


@pytest.fixture
def raw():
    return raw_exchange


def status_of(raw_response):
    """The status code of a raw HTTP/1.1 response (0 when there is none)."""
    first = raw_response.split(b"\r\n", 1)[0].split()
    return int(first[1]) if len(first) >= 2 and first[1].isdigit() else 0


@pytest.fixture
def assert_no_secrets():
    """``assert_no_secrets(text_or_bytes, *more)``: no canary in any of them."""

    def check(*blobs):
        for blob in blobs:
            text = blob.decode("utf-8", "replace") if isinstance(blob, (bytes, bytearray)) else str(blob)
            for canary in SERVICE_CANARIES:
                assert canary not in text, "a secret leaked"
    return check


@pytest.fixture
def keys():
    """The canary credentials: ``keys.api``, ``keys.other``, ``keys.wrong_token``."""
    class Keys:
        api, other, wrong_token = CANARY_API_KEY, CANARY_OTHER_KEY, CANARY_WRONG_TOKEN
    return Keys


@pytest.fixture
def raw_status():
    return status_of
