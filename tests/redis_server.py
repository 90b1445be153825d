"""A real ``redis-server`` for tests (issue 14): never a fake.

``redis_url`` (session scope) starts one server on a free 127.0.0.1 port,
without persistence, in its own temporary directory, and stops it at the
end. ``RedisServer`` starts an extra, independent one for tests that must
kill it mid-test (outages). When the binary is missing the tests skip with
the reason, except under ``CI=true`` where a missing Redis is a failure (CI
installs it: see .ci/run), so a green CI run always ran the Redis tests.
"""
import os
import shutil
import socket
import subprocess
import tempfile
import time

import pytest

#: how long a server may take to answer PING after start
START_TIMEOUT = 15.0
#: how long a server may take to exit after SIGTERM before it is killed
STOP_TIMEOUT = 5.0


def redis_binary():
    """The redis-server path, or None."""
    return os.environ.get("REDIS_SERVER_BIN") or shutil.which("redis-server")


def require_redis():
    """The binary path; skip (fail under CI=true) when it is missing."""
    binary = redis_binary()
    if binary:
        return binary
    reason = "redis-server is not installed (apt-get install -y redis-server)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail("CI=true but " + reason)
    pytest.skip(reason)
    return None


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ping(port, timeout=0.5):
    """True when a Redis on 127.0.0.1:port answers PING (raw RESP: no client
    library needed to know the server is up)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.settimeout(timeout)
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith((b"+PONG", b"-NOAUTH"))  # up (a password is set)
    except OSError:
        return False


class RedisServer:
    """One redis-server process on 127.0.0.1. ``start()`` waits (bounded)
    for PING; ``stop()`` terminates, then kills; ``kill()`` simulates a
    crash. Usable as a context manager."""

    def __init__(self, binary=None, port=None, args=()):
        self.binary = binary or require_redis()
        self.port = port
        self.args = list(args)  # extra server options, e.g. ["--requirepass", "..."]
        self.proc = None
        self.dir = None

    @property
    def url(self):
        return "redis://127.0.0.1:%d/0" % self.port

    def start(self):
        self.dir = self.dir or tempfile.mkdtemp(prefix="lc-redis-")
        last_err = None
        for _ in range(5):  # a free port may be taken between probe and bind: retry with another
            port = self.port or free_port()
            log = open(os.path.join(self.dir, "redis.log"), "ab")
            try:
                self.proc = subprocess.Popen(
                    [self.binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                     "--appendonly", "no", "--dir", self.dir, "--protected-mode", "yes", *self.args],
                    stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=self.dir)
            finally:
                log.close()
            deadline = time.monotonic() + START_TIMEOUT
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    break
                if _ping(port):
                    self.port = port
                    return self
                time.sleep(0.05)
            last_err = self._log_tail()
            self._terminate()
            if self.port:  # a fixed port: do not try others
                break
        self.cleanup()
        raise RuntimeError("redis-server did not start on 127.0.0.1: %s" % last_err)

    def _log_tail(self):
        try:
            with open(os.path.join(self.dir, "redis.log"), "rb") as fh:
                return fh.read()[-500:].decode("utf-8", "replace")
        except OSError:
            return "(no log)"

    def _terminate(self):
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(STOP_TIMEOUT)

    def kill(self):
        """SIGKILL: the server vanishes mid-test, as in a crash."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(STOP_TIMEOUT)

    def restart(self):
        """Start again on the same port (after ``kill``)."""
        self.kill()
        self.proc = None
        return self.start()

    def stop(self):
        self._terminate()
        self.cleanup()

    def cleanup(self):
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def __enter__(self):
        return self.start() if self.proc is None else self

    def __exit__(self, *exc):
        self.stop()


@pytest.fixture(scope="session")
def redis_server():
    """The session's shared RedisServer (tests must not kill it: use
    ``RedisServer`` for outages)."""
    server = RedisServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def redis_url(redis_server):
    """``redis://127.0.0.1:<port>/0`` of a real redis-server shared by the
    session. Tests sharing it use distinct keys or namespaces."""
    yield redis_server.url
