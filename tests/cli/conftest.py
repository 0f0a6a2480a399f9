"""Fixtures for the command's end-to-end tests.

``main(argv)`` runs its own event loop (``asyncio.run``), so these tests are synchronous and
the sandbox runs on a loop of its own in a background thread: the CLI then talks to it over
real loopback sockets, as it would to Capillary.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import attrs
import pytest

from capillary_points_async.cli import main as cli_main
from capillary_points_async.cli.arguments import ENV_BASE_URL, ENV_USERNAME, SECRET_VARIABLES
from capillary_points_async.testing import FakeCapillary

T = TypeVar("T")

USERNAME = "sandbox"
PASSWORD = "sandbox"


class SandboxThread:
    """A FakeCapillary served from a loop in a daemon thread."""

    def __init__(self, **kwargs: Any) -> None:
        self._kwargs = kwargs
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self.fake: FakeCapillary | None = None

    def _call(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=30)

    def read(self, look: Callable[[FakeCapillary], T]) -> T:
        """``look(fake)`` on the sandbox's loop: its clock (code validity) is that loop's."""

        async def looked() -> T:
            assert self.fake is not None
            return look(self.fake)

        result: T = self._call(looked())
        return result

    def __enter__(self) -> FakeCapillary:
        self._thread.start()

        async def start() -> FakeCapillary:
            return await FakeCapillary(**self._kwargs).start()

        self.fake = self._call(start())
        return self.fake

    def __exit__(self, *exc_info: object) -> None:
        try:
            if self.fake is not None:
                self._call(self.fake.close())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=30)
            self._loop.close()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "cli_sandbox(**kwargs): arguments of the CLI tests' sandbox")


@pytest.fixture(autouse=True)
def _loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """A test that would reach a real Capillary host (``--region eu`` with credentials)
    fails at name resolution instead of going to the internet."""
    loopback_only(monkeypatch)


def loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make name resolution in this process refuse any host but loopback."""
    resolve = socket.getaddrinfo

    def loopback(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host not in (None, "127.0.0.1", "::1", "localhost", b"127.0.0.1"):
            raise OSError(f"the CLI tests stay on loopback; something tried to reach {host!r}")
        return resolve(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", loopback)


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    clean_environment(monkeypatch)


def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unset the developer's own CAPILLARY_* settings: they must not leak into the tests."""
    for name in (ENV_BASE_URL, ENV_USERNAME, *SECRET_VARIABLES):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def sandbox_thread(request: pytest.FixtureRequest) -> Iterator[SandboxThread]:
    """A started sandbox's thread; ``@pytest.mark.cli_sandbox(...)`` passes arguments to it."""
    marker = request.node.get_closest_marker("cli_sandbox")
    kwargs = {"customers": 40, "seed": 3, **(marker.kwargs if marker else {})}
    thread = SandboxThread(**kwargs)
    with thread:
        yield thread


@pytest.fixture
def sandbox(sandbox_thread: SandboxThread) -> FakeCapillary:
    """The started sandbox of ``sandbox_thread``."""
    assert sandbox_thread.fake is not None
    return sandbox_thread.fake


@attrs.frozen
class Result:
    status: int
    out: str
    err: str


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., Result]:
    """Run ``main(argv)`` in-process; returns the exit status and what it printed."""

    def run(*argv: str) -> Result:
        capsys.readouterr()
        status = cli_main(list(argv))
        captured = capsys.readouterr()
        return Result(status, captured.out, captured.err)

    return run


@pytest.fixture
def connect(sandbox: FakeCapillary) -> list[str]:
    """The connection flags for the sandbox."""
    return ["--base-url", sandbox.url, "--username", USERNAME, "--password", PASSWORD]


def wait_until(
    condition: Callable[[], bool],
    process: subprocess.Popen[Any],
    what: str,
    timeout: float = 30.0,
) -> None:
    """Poll ``condition`` until it holds, waiting on ``process`` between polls so that a
    process that exits meanwhile is reported at once; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout:g} s")
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=0.02)
            pytest.fail(f"{what}: the process exited first, with status {process.returncode}")


def listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


@contextlib.contextmanager
def sandbox_command(
    *args: str, port: int | None = None
) -> Iterator[tuple[subprocess.Popen[str], int]]:
    """``capillary-points sandbox ARGS`` in a subprocess, on ``port`` or else a free one
    (replacing any ``--port`` in ARGS); yields it and its port once it listens, and kills it at
    the end if it still runs."""
    argv = list(args)
    port = free_port() if port is None else port
    if "--port" in argv:
        argv[argv.index("--port") + 1] = str(port)
    else:
        argv += ["--port", str(port)]
    process = subprocess.Popen(
        [sys.executable, "-m", "capillary_points_async.cli", "sandbox", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        wait_until(lambda: listening(port), process, f"the sandbox listens on port {port}")
        yield process, port
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=30)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port
