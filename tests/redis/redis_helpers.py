"""Starting and stopping a throw-away redis-server, for the tests and the multi-process workers.

Without the ``redis-server`` binary, :class:`RedisServer` skips the test with a hint on how to
install it, except under CI (``CI=true``), where a missing binary fails the run.
"""

from __future__ import annotations

import collections
import os
import shutil
import socket
import subprocess
import threading
from pathlib import Path

import pytest

IN_CI = os.environ.get("CI", "").lower() == "true"

INSTALL_HINT = (
    "redis-server not found on PATH; install it to run the shared rate limiter's tests: "
    "`apt-get install redis-server` (Debian/Ubuntu), `brew install redis` (macOS)"
)
STARTUP_TIMEOUT = 15.0


class RedisServer:
    """A redis-server process on a loopback port, started and stopped by the tests.

    Readiness is read from the server's own log ("Ready to accept connections"), streamed by a
    thread that keeps draining the pipe so that the server can never block on a full one.
    """

    def __init__(self, directory: Path, port: int | None = None) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            if IN_CI:
                pytest.fail(f"CI=true but {INSTALL_HINT}", pytrace=False)
            pytest.skip(INSTALL_HINT)
        self.host = "127.0.0.1"
        self.port = free_port() if port is None else port
        self.log: collections.deque[str] = collections.deque(maxlen=200)
        # fmt: off
        command = [
            binary,
            "--port", str(self.port),
            "--bind", self.host,
            "--save", "",
            "--appendonly", "no",
            "--dir", str(directory),
            "--daemonize", "no",
            "--loglevel", "notice",
        ]
        # fmt: on
        self._process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        self._ready = threading.Event()
        self._drainer = threading.Thread(
            target=self._drain, name=f"redis-server:{self.port}", daemon=True
        )
        self._drainer.start()
        if not self._ready.wait(STARTUP_TIMEOUT) or self._process.poll() is not None:
            self.stop()
            pytest.fail("redis-server did not start:\n" + "\n".join(self.log), pytrace=False)

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    def _drain(self) -> None:
        assert self._process.stdout is not None
        for line in self._process.stdout:
            self.log.append(line.rstrip())
            if "Ready to accept connections" in line:
                self._ready.set()
        self._ready.set()  # EOF: the server exited; the starter sees it from poll()

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL) and release the pipe."""
        self._process.terminate()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._drainer.join(timeout=10)
        if self._process.stdout is not None:
            self._process.stdout.close()


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
