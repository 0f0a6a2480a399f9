"""Run every ``benchmarks/bench_*.py`` in turn, each in its own subprocess.

    .venv/bin/python benchmarks/run_all.py [--quick] [--timeout SECONDS]

One at a time, since each benchmark measures timing or memory and two at once would disturb
both. Their output is printed as it comes; the exit status is 1 when any of them failed
(non-zero exit, or still running after ``--timeout``), after all have run.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def run_one(script: Path, quick: bool, timeout: float) -> str | None:
    """Run one benchmark; None when it succeeded, else why it failed."""
    command = [sys.executable, str(script), *(["--quick"] if quick else [])]
    # Flushed first so that our banner is not printed after the child's output.
    sys.stdout.flush()
    try:
        returncode = subprocess.run(command, check=False, timeout=timeout).returncode
    except subprocess.TimeoutExpired:
        return f"still running after {timeout:g} s, stopped"
    return None if returncode == 0 else f"exit status {returncode}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="pass --quick to every benchmark")
    parser.add_argument(
        "--timeout", type=float, default=600.0, help="seconds one benchmark may take"
    )
    args = parser.parse_args()
    scripts = sorted(HERE.glob("bench_*.py"))
    failures: dict[str, str] = {}
    for script in scripts:
        print(f"\n######## {script.name}{' --quick' if args.quick else ''}", flush=True)
        began = time.perf_counter()
        failure = run_one(script, args.quick, args.timeout)
        seconds = time.perf_counter() - began
        if failure is not None:
            failures[script.name] = failure
        print(f"######## {script.name}: {failure or 'ok'} ({seconds:.0f} s)", flush=True)
    print(f"\n{len(scripts) - len(failures)} of {len(scripts)} benchmarks succeeded")
    for name, failure in failures.items():
        print(f"  FAILED {name}: {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
