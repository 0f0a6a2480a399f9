"""Every fenced block of README.md and of the documentation site (``docs/**/*.md``) is run
here, so that neither can drift from the code.

A fence may be indented (inside a list or an admonition); any line that starts with three
backticks but is no fence this module reads fails :func:`test_every_block_has_a_runner`, so
that no block is skipped unseen. How a block is run depends on its kind (:func:`kind_of`); a
block of any other kind fails :func:`test_every_block_has_a_runner` too:

* ``python`` whose first line is ``# NAME.py`` is a file. ``test_*.py`` runs under pytest in a
  fresh interpreter, in pytest-asyncio's default strict mode, without the cache provider
  (tests/sandbox's ``run_pytest``). Any other runs as ``python NAME.py`` in a subprocess,
  against the sandbox its comment says to start (``#   capillary-points sandbox ...``) and, if
  it names Redis, a redis-server started for it: once with Redis up (exit 0) and once with
  Redis on a closed port (exit 1 and the cause printed).
* any other ``python`` block is a snippet: it runs in this process, in a fresh namespace, with
  top-level ``await`` allowed. It gets only the names its comments say it continues from:
  ``client`` (an open client on a sandbox, as in Getting started) and ``pairs`` (pairs of the
  sandbox's mobile numbers); anything else it imports, so that a reader can paste it. The
  sandbox takes Getting started's till credentials and the OAuth guide's key and secret. A
  ``print(...)  # "text"`` promises that ``text`` is printed. The logging set-up a snippet
  makes is undone after it.
* ``sh`` runs line by line. ``capillary-points sandbox ...`` (with or without a trailing
  ``&``) starts in the background, on a free port instead of the one written; ``export
  NAME=value ...`` sets variables, with the sandbox's address for the one written; every
  other ``capillary-points`` command runs in this process with ``CAPILLARY_*`` pointing at
  that sandbox (or at one in this process, when no line started one) and must exit 0.
  :data:`SAMPLE_CODE` stands for the code the customer received: it is replaced by the code
  the in-process sandbox sent the command's ``--mobile``. The README's test command must be
  the one ``.ci/run`` runs. Any other line must be in :data:`NOT_RUN`, with the reason.
* ``text`` is the exception tree when its first line is ``CapillaryError`` (checked against the
  classes, and complete); any other ``text`` block is shown, not run: output, a sample file.
* ``json`` must parse.

Never the internet. The fixed addresses the blocks show are replaced before they run
(:func:`redirected`): ``Region.EU`` by the URL of a sandbox started here,
``http://127.0.0.1:8787`` likewise, and ``redis://127.0.0.1:6379/0`` by a redis-server started
here. Each replacement must still find its text on a page, and a block that still names a
``Region``, a non-loopback URL or one of those fixed ports after replacement fails before it
runs; in this process, name resolution refuses any host but loopback too.
"""

from __future__ import annotations

import ast
import asyncio
import builtins
import contextlib
import inspect
import json
import logging
import os
import re
import shlex
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest

import capillary_points_async
from capillary_points_async import BasicAuth, CapillaryClient
from capillary_points_async.cli import main as cli_main
from capillary_points_async.cli.arguments import ENV_BASE_URL, ENV_PASSWORD, ENV_USERNAME

from .cli.conftest import (
    SandboxThread,
    clean_environment,
    free_port,
    loopback_only,
    sandbox_command,
)
from .redis.redis_helpers import RedisServer
from .sandbox.test_sandbox_plugin import run_pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
#: Every page whose blocks run: the README and the documentation site's.
SOURCES = [README, *sorted((ROOT / "docs").rglob("*.md"))]

#: Shell lines that are not run, and why.
NOT_RUN = {
    "python3 -m venv .venv && .venv/bin/pip install -e '.[cli]' && .venv/bin/capillary-points demo":
        "creates a venv and installs from the network; .ci/run makes the same install (its "
        "'[test]' extra includes '[cli]'), and the demo is the next entry",
    "capillary-points demo":
        "takes about 10 s at its defaults; tests/cli/test_sandbox_and_demo.py runs it with "
        "smaller counts",
    ".venv/bin/pip install -e '.[docs]' && .venv/bin/mkdocs serve":
        "installs the docs extra from the network and serves until stopped; .ci/run installs "
        "it and runs mkdocs build --strict",
    "pip install capillary-points-async":
        "installs from the network; .ci/run installs this package from the work tree",
    "pip install 'capillary-points-async[cli,redis]'":
        "installs from the network; .ci/run's '[test]' extra includes both",
    "pip install 'capillary-points-async[redis]'":
        "installs from the network; .ci/run's '[test]' extra includes it",
}  # fmt: skip
#: Shell lines that CI runs itself: each must be a line of .ci/run, verbatim.
RUN_BY_CI = {"python3 -m venv .venv && .venv/bin/pip install -e '.[test]' && .venv/bin/pytest"}

SANDBOX_URL = "http://127.0.0.1:8787"
REDIS_URL = "redis://127.0.0.1:6379/0"
#: What the snippets' sandbox accepts: Getting started's credentials, and the OAuth guide's.
SNIPPET_LOGIN = ("till_code", "till-password")
SNIPPET_OAUTH = {"api-key": "api-secret"}
#: The validation code of Capillary's samples; in a shell block, the code the customer got.
SAMPLE_CODE = "NS3U05"
PAIRS = [(f"918{i:09d}", f"918{i + 1:09d}") for i in range(5)]
#: Files the shell blocks' commands read, made in their working directory (docs/guides/bulk.md
#: shows this one).
FILES = {
    "checks.csv": "from,to,points,program_id\n"
    "mobile:9777785206,mobile:9777785207,1,973\n"
    "mobile:918000000001,mobile:918000000002,10,\n"
}
_NOT_REDIRECTED = re.compile(r"\bRegion\.[A-Z]|\bhttps?://(?!127\.0\.0\.1:)|:(?:8787|6379)\b")


@attrs.frozen
class Block:
    path: str  # of the page, relative to the repository
    line: int  # of the opening fence
    lang: str
    text: str  # without the fence's indentation

    @property
    def id(self) -> str:
        return f"{self.path}:{self.line}:{self.lang or 'plain'}"


#: An opening or closing fence: its indentation, and the language of an opening one.
_FENCE = re.compile(r"( *)```\s*([\w+-]*)\s*")


def fenced_blocks(page: Path) -> list[Block]:
    """The page's fenced blocks; a line that starts like a fence but is none is an error."""
    path = page.relative_to(ROOT).as_posix()
    blocks, opened, lines = [], None, page.read_text().splitlines()
    for number, line in enumerate(lines, 1):
        if not line.lstrip().startswith("```"):
            continue
        fence = _FENCE.fullmatch(line)
        assert fence, f"{path}:{number}: {line.strip()!r} is no fence {__name__} can read"
        if opened is None:
            opened = (number, fence[1], fence[2])
            continue
        start, indent, lang = opened
        where = f"{path}:{number}: not the closing fence of line {start}"
        assert fence[1] == indent, where
        assert not fence[2], where
        body = [text.removeprefix(indent) for text in lines[start : number - 1]]
        blocks.append(Block(path, start, lang, "\n".join(body) + "\n"))
        opened = None
    assert opened is None, f"{path}:{opened[0]}: a code fence that is never closed"
    return blocks


BLOCKS = [block for page in SOURCES for block in fenced_blocks(page)]


def file_name(block: Block) -> str | None:
    """``NAME.py`` of a block whose first line is ``# NAME.py``."""
    name = re.match(r"#\s*(\w+\.py)\b", block.text)
    return None if name is None else name[1]


def kind_of(block: Block) -> str | None:
    """How the block is run (see the module docstring); None: no runner for it."""
    first = block.text.split("\n", 1)[0]
    if block.lang == "python":
        name = file_name(block)
        if name is None:
            # A test function in a snippet would never run: its block must name its file.
            defines_tests = re.search(r"^(async )?def test_", block.text, re.MULTILINE)
            return None if defines_tests else "snippet"
        return "pytest file" if name.startswith("test_") else "python file"
    if block.lang == "sh":
        return "shell"
    if block.lang == "text":
        return "exception tree" if first.strip() == "CapillaryError" else "shown"
    if block.lang == "json":
        return "json"
    return None


def of_kind(kind: str) -> list[Any]:
    return [pytest.param(b, id=b.id) for b in BLOCKS if kind_of(b) == kind]


def redirected(block: Block, sandbox: str, redis: str | None = None) -> str:
    """The block's text with its fixed addresses replaced (see the module docstring)."""
    text = block.text.replace("Region.EU", repr(sandbox)).replace(SANDBOX_URL, sandbox)
    if redis is not None:
        text = text.replace(REDIS_URL, redis)
    code = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    leftover = _NOT_REDIRECTED.search(code)
    assert leftover is None, f"{block.id}: {leftover[0]!r} is not redirected; see {__name__}"
    return text


@pytest.fixture(autouse=True)
def _loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    loopback_only(monkeypatch)


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    clean_environment(monkeypatch)


# ----------------------------------------------------------------------------- the list


def test_every_block_has_a_runner() -> None:
    assert len(BLOCKS) >= 10  # the fences were read, the README's and the site's
    assert {block.path.split("/")[0] for block in BLOCKS} >= {"README.md", "docs"}
    unrun = [block.id for block in BLOCKS if kind_of(block) is None]
    assert not unrun, f"no runner for these blocks; see {__name__}"


#: A Markdown link's target.
_LINK = re.compile(r"\]\(([^)\s]+)\)")


def test_the_readme_links_every_guide_and_the_reference() -> None:
    """The README's "where next" list links each guide of the site and its reference, by
    paths relative to the repository, so that they work on GitHub; none leads nowhere."""
    targets = [t.partition("#")[0] for t in _LINK.findall(README.read_text())]
    files = [t for t in targets if t and "://" not in t]
    missing = [t for t in files if not (ROOT / t).is_file()]
    assert not missing, f"README.md links to files that do not exist: {missing}"
    linked = {(ROOT / t).resolve() for t in files}
    guides = {path.resolve() for path in (ROOT / "docs" / "guides").glob("*.md")}
    assert guides, "no guides found"
    assert guides - linked == set(), "README.md does not link these guides"
    reference = (ROOT / "docs" / "reference").resolve()
    assert any(path.parent == reference for path in linked), "nor the API reference"


def test_the_lists_and_redirects_match_the_pages() -> None:
    pages = "\n".join(page.read_text() for page in SOURCES)
    for text in [*NOT_RUN, *RUN_BY_CI, "Region.EU", SANDBOX_URL, REDIS_URL, SAMPLE_CODE]:
        assert text in pages, f"{text!r} is no longer on any page: update {__name__}"


# ----------------------------------------------------------------------------- python


@pytest.fixture
def _logging_restored() -> Iterator[None]:
    """Undo what a snippet does to logging (handlers, levels), which outlives the test."""
    loggers = [logging.getLogger(), logging.getLogger(capillary_points_async.__name__)]
    saved = [(logger, logger.level, logger.handlers[:]) for logger in loggers]
    yield
    for logger, level, handlers in saved:
        logger.setLevel(level)
        logger.handlers[:] = handlers


@pytest.mark.usefixtures("_logging_restored")
@pytest.mark.parametrize("block", of_kind("snippet"))
def test_snippet(block: Block, capsys: pytest.CaptureFixture[str]) -> None:
    login = {"username": SNIPPET_LOGIN[0], "password": SNIPPET_LOGIN[1], "oauth": SNIPPET_OAUTH}
    with SandboxThread(customers=len(PAIRS) * 2, **login) as fake:
        source = "\n" * block.line + redirected(block, fake.url)  # line numbers as on the page
        code = compile(source, str(ROOT / block.path), "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
        namespace: dict[str, Any] = {"__name__": "readme_snippet"}
        if code.co_flags & inspect.CO_COROUTINE:

            async def run() -> None:
                auth = BasicAuth(*SNIPPET_LOGIN)
                async with CapillaryClient(fake.url, auth, rate_limit=None) as client:
                    namespace.update(client=client, pairs=PAIRS)
                    await eval(code, namespace)

            asyncio.run(run())
        else:
            exec(code, namespace)

    printed = capsys.readouterr().out
    for promised in re.findall(r'print\(.*#\s*"([^"]+)"', block.text):
        assert promised in printed, f"{block.id}: {promised!r} was not printed: {printed!r}"


@pytest.mark.parametrize("block", of_kind("pytest file"))
def test_pytest_file(block: Block, tmp_path: Path) -> None:
    """Its tests pass as written, and without their ``@pytest.mark.asyncio`` the plugin says
    that the mark is missing, as the pages say. One pytest run for both: it takes a second."""
    tests = len(re.findall(r"^async def test_", block.text, re.MULTILINE))
    unmarked = re.sub(r"def (test_\w+)", r"def \1_unmarked", block.text)
    unmarked = unmarked.replace("@pytest.mark.asyncio\n", "")

    # The mode a user has by default, said explicitly; and a config file of its own, so that
    # pytest looks for none above (this repository's says asyncio_mode = "auto").
    (tmp_path / "pytest.ini").write_text("[pytest]\nasyncio_mode = strict\n")
    output = run_pytest(tmp_path, block.text + "\n\n" + unmarked, with_pytest_asyncio=True)

    errors = "1 error" if tests == 1 else f"{tests} errors"
    assert re.search(rf"^{tests} passed, {errors} in ", output, re.MULTILINE), output
    unmarked_errors = re.findall(r"^ERROR test_user.py::test_\w+_unmarked - ", output, re.MULTILINE)
    assert len(unmarked_errors) == tests, output
    assert "is not an asyncio test: mark it @pytest.mark.asyncio" in output, output


@pytest.mark.parametrize("block", of_kind("python file"))
def test_python_file(block: Block, tmp_path: Path) -> None:
    """Run as its comments say, against the sandbox they say to start; one that uses Redis
    runs twice at once, with Redis up (exit 0) and with Redis unreachable (exit 1, the cause
    printed)."""
    match = re.search(r"^#\s+capillary-points sandbox\b(.*?)\s*&?$", block.text, re.MULTILINE)
    assert match, f"{block.id}: the comment that starts the sandbox is missing"
    name, port = str(file_name(block)), free_port()
    sandbox = f"http://127.0.0.1:{port}"
    with contextlib.ExitStack() as stack:
        down, closed, redis = None, f"redis://127.0.0.1:{free_port()}/0", None
        if REDIS_URL in block.text:
            # Started first: it fails at the limiter, so it needs no sandbox, and it takes
            # acquire_timeout; meanwhile the sandbox starts and the other run runs.
            down = start_file(tmp_path / "down" / name, redirected(block, sandbox, closed))
            stack.callback(finish, down, timeout=0)  # at once, if the test fails before
            pytest.importorskip("redis")
            server = RedisServer(tmp_path)
            stack.callback(server.stop)
            redis = server.url
        stack.enter_context(sandbox_command(*shlex.split(match[1]), port=port))
        up = finish(start_file(tmp_path / "up" / name, redirected(block, sandbox, redis)))
        assert up.returncode == 0, up.stdout + up.stderr
        assert "failed" not in up.stdout + up.stderr
        if down is not None:
            unreachable = finish(down)
            assert unreachable.returncode == 1, unreachable.stdout + unreachable.stderr
            assert "RateLimiterUnavailableError" in unreachable.stderr
            assert closed.split("/")[2] in unreachable.stderr  # the cause names the server


def start_file(path: Path, text: str) -> subprocess.Popen[str]:
    """``python NAME.py`` in the file's directory, in a process group of its own."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return subprocess.Popen(
        [sys.executable, path.name],
        cwd=path.parent,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def finish(process: subprocess.Popen[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Its result once it has ended; past ``timeout`` it is killed with the processes it
    started (which would otherwise keep its pipes open)."""
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        out, err = process.communicate()
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


# ----------------------------------------------------------------------------- shell


def shell_lines(block: Block) -> Iterator[str]:
    """The block's commands, each without its trailing comment (and ``&``: see
    :func:`test_shell_block`)."""
    for line in block.text.splitlines():
        command = re.sub(r"\s+#.*$", "", line).strip()
        if command and not command.startswith("#"):
            yield command.removesuffix("&").rstrip()


@pytest.mark.parametrize("block", of_kind("shell"))
def test_shell_block(
    block: Block,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    for name, content in FILES.items():
        (tmp_path / name).write_text(content)
    ci_lines = (ROOT / ".ci" / "run").read_text().splitlines()

    def use_sandbox(url: str) -> None:
        for name, value in [
            (ENV_BASE_URL, url),
            (ENV_USERNAME, "sandbox"),
            (ENV_PASSWORD, "sandbox"),
        ]:
            monkeypatch.setenv(name, value)

    in_process: SandboxThread | None = None
    started: str | None = None  # the URL of the sandbox a line started
    with contextlib.ExitStack() as stack:
        for command in shell_lines(block):
            if command in NOT_RUN:
                continue
            if command in RUN_BY_CI:
                assert command in ci_lines, f"{command!r} is not what .ci/run runs"
                continue
            argv = shlex.split(command)
            if argv[0] == "export":
                if SANDBOX_URL in command:
                    assert started, f"{block.id}: {SANDBOX_URL} before a sandbox line"
                for assignment in argv[1:]:
                    name, _, value = assignment.partition("=")
                    monkeypatch.setenv(name, value.replace(SANDBOX_URL, started or SANDBOX_URL))
                continue
            assert argv[0] == "capillary-points", (
                f"{block.id}: {command!r} is neither run by {__name__} nor in NOT_RUN"
            )
            if argv[1] == "sandbox":
                _, port = stack.enter_context(sandbox_command(*argv[2:]))
                started = f"http://127.0.0.1:{port}"
                use_sandbox(started)
                continue
            if ENV_BASE_URL not in os.environ:  # no sandbox line came first
                in_process = SandboxThread(customers=10)
                use_sandbox(stack.enter_context(in_process).url)
            if SAMPLE_CODE in argv:
                assert in_process is not None, f"{block.id}: {SAMPLE_CODE} needs no sandbox line"
                argv = with_code_received(argv, in_process)
            capsys.readouterr()
            status = cli_main(argv[1:])
            result = capsys.readouterr()
            assert status == 0, f"{command!r} exited {status}: {result.err}"
            if "--output" in argv:
                written = (tmp_path / argv[argv.index("--output") + 1]).read_text()
                rows = len(FILES[argv[2]].splitlines()) - 1
                if "--output-format=csv" in command or "--output-format csv" in command:
                    rows += 1  # the header
                assert len(written.splitlines()) == rows, f"{command!r} wrote {written!r}"


def with_code_received(argv: list[str], sandbox: SandboxThread) -> list[str]:
    """``argv`` with :data:`SAMPLE_CODE` replaced by the code ``sandbox`` sent its customer."""
    mobile = argv[argv.index("--mobile") + 1]
    code = sandbox.read(lambda fake: fake.state.otp_for(mobile))
    assert code, f"no code was sent to {mobile} before {shlex.join(argv)!r}"
    return [code if arg == SAMPLE_CODE else arg for arg in argv]


# ----------------------------------------------------------------------------- shown, json


@pytest.mark.parametrize("block", of_kind("json"))
def test_json_block(block: Block) -> None:
    try:
        json.loads(block.text)
    except ValueError:  # JSON lines, then
        for line in filter(str.strip, block.text.splitlines()):
            json.loads(line)


# ----------------------------------------------------------------------------- exception tree


@pytest.mark.parametrize("block", of_kind("exception tree"))
def test_exception_tree(block: Block) -> None:
    """Each class drawn is exported and a subclass of the one it hangs from, and of the
    built-in exception named beside it."""
    lines = block.text.splitlines()
    parents: list[tuple[int, type]] = [(-1, getattr(capillary_points_async, lines[0].strip()))]
    for line in lines[1:]:
        match = re.fullmatch(r"([\s|]*)\+-- (\w+)(?: \((\w+)\))?.*", line)
        assert match, f"{block.id}: cannot read {line!r}"
        depth, cls = len(match[1]), getattr(capillary_points_async, match[2])
        while parents[-1][0] >= depth:
            parents.pop()
        assert issubclass(cls, parents[-1][1]), line
        if match[3]:
            assert issubclass(cls, getattr(builtins, match[3])), line
        parents.append((depth, cls))


@pytest.mark.parametrize("block", of_kind("exception tree"))
def test_exception_tree_is_complete(block: Block) -> None:
    """Every error class the package exports is drawn."""
    drawn = set(re.findall(r"\b(\w+Error)\b", block.text))
    exported = {
        name
        for name in capillary_points_async.__all__
        if isinstance(cls := getattr(capillary_points_async, name), type)
        and issubclass(cls, capillary_points_async.CapillaryError)
    }
    assert exported - drawn == set()
