"""Make the documentation's pictures in docs/images/; run it again to refresh them.

* ``limiter.png`` and ``adaptive.png``: the plots of ``benchmarks/bench_limiter.py`` (arrivals
  per window against the quota) and ``benchmarks/bench_adaptive.py`` (the rate converging after
  a 429), from a run made now. A benchmark whose own checks fail draws no picture for the docs:
  the script stops instead, so that the site never shows a failed run.
* ``request-path.svg``: a request's way through the stack, drawn from :data:`STAGES`.

Needs the ``bench`` extra (matplotlib, and aiolimiter for the limiter's baseline), and
redis-server on PATH for the Redis limiter's curve::

    .venv/bin/pip install -e '.[bench,docs]'
    .venv/bin/python docs/scripts/make_pictures.py            # about a minute
    .venv/bin/python docs/scripts/make_pictures.py --quick    # shorter, noisier runs
    .venv/bin/python docs/scripts/make_pictures.py --diagram-only
"""

from __future__ import annotations

import argparse
import itertools
import shutil
import subprocess
import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display needed
import matplotlib.pyplot as plt
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

ROOT = Path(__file__).resolve().parents[2]
IMAGES = ROOT / "docs" / "images"
RESULTS = ROOT / "benchmarks" / "results"  # where the benchmarks write their pictures
#: The benchmark to run for each picture of the docs.
BENCHMARKS = {"limiter.png": "bench_limiter.py", "adaptive.png": "bench_adaptive.py"}

#: The stages a request passes, top to bottom: (name, what it does, what it may say instead).
STAGES = [
    (
        "client.points.redeem(...)",
        "checks the arguments, builds the request",
        "InvalidRequestError: nothing sent",
    ),
    (
        "outage gate",
        "is the endpoint known to be down?",
        "a single call fails at once, a bulk input waits",
    ),
    (
        "retry loop (RetryPolicy)",
        "each attempt goes through all below",
        "gives up: the last error, or OutcomeUnknownError",
    ),
    ("cooldown gate", "a 429 pauses the endpoint for every caller", ""),
    ("rate limiter", "a token of the endpoint's bucket (in-process or Redis)", ""),
    ("transport (aiohttp)", "sends the request: the only I/O", "TransportError"),
    (
        "decoder (pure)",
        "the JSON envelope: the payload, or the typed error",
        "APIError, ResponseDecodeError",
    ),
    ("converter (cattrs)", "the payload into a frozen attrs result", ""),
]


def run_benchmark(script: str, picture: str, quick: bool) -> None:
    """Run one benchmark and copy the picture it drew into docs/images/."""
    started = time.time()
    command = [sys.executable, str(ROOT / "benchmarks" / script), *(["--quick"] if quick else [])]
    print("$", " ".join(command), flush=True)
    status = subprocess.run(command, cwd=ROOT, check=False).returncode
    drawn = RESULTS / picture
    if status != 0:
        raise SystemExit(f"{script} exited {status}: its checks failed, {picture} is not updated")
    if not drawn.exists() or drawn.stat().st_mtime < started:
        raise SystemExit(f"{script} drew no {drawn}: is matplotlib installed?")
    shutil.copyfile(drawn, IMAGES / picture)
    print(f"-> {IMAGES / picture}")


def draw_request_path(path: Path) -> None:
    """The stack as boxes and arrows, with the retry loop and what each stage may raise."""
    plt.rcParams["svg.fonttype"] = "none"  # text stays text: smaller, and selectable
    plt.rcParams["svg.hashsalt"] = "request-path"  # the same file for the same drawing
    height = 1.1 + 1.3 * len(STAGES)
    figure, axis = plt.subplots(figsize=(10, height * 0.6))
    axis.set_xlim(0, 10)
    axis.set_ylim(0, height)
    axis.axis("off")
    box_x, box_w, box_h = 0.7, 5.0, 0.9
    tops = [height - 0.3 - 1.3 * index for index in range(len(STAGES))]
    for top, (name, does, instead) in zip(tops, STAGES, strict=True):
        retried = name in {"cooldown gate", "rate limiter", "transport (aiohttp)", "decoder (pure)"}
        axis.add_patch(
            FancyBboxPatch(
                (box_x, top - box_h),
                box_w,
                box_h,
                boxstyle="round,pad=0.02,rounding_size=0.12",
                facecolor="#e0f2f1" if retried else "#f5f5f5",
                edgecolor="#00796b" if retried else "#616161",
                linewidth=1.4,
            )
        )
        axis.text(box_x + 0.2, top - 0.3, name, fontsize=13, fontweight="bold", va="center")
        axis.text(box_x + 0.2, top - 0.66, does, fontsize=10.5, va="center", color="#424242")
        if instead:
            axis.add_patch(
                FancyArrowPatch(
                    (box_x + box_w + 0.05, top - box_h / 2),
                    (box_x + box_w + 0.75, top - box_h / 2),
                    arrowstyle="-|>",
                    mutation_scale=12,
                    color="#c62828",
                    linewidth=1.2,
                )
            )
            axis.text(
                box_x + box_w + 0.85,
                top - box_h / 2,
                instead,
                fontsize=10.5,
                va="center",
                color="#c62828",
            )
    for upper, lower in itertools.pairwise(tops):
        axis.add_patch(
            FancyArrowPatch(
                (box_x + box_w / 2, upper - box_h - 0.02),
                (box_x + box_w / 2, lower + 0.02),
                arrowstyle="-|>",
                mutation_scale=14,
                color="#424242",
                linewidth=1.4,
            )
        )
    # The retry loop: from the decoder's side back up to the retry loop's box.
    retry_top, decoder_top = tops[2], tops[6]
    axis.add_patch(
        FancyArrowPatch(
            (box_x - 0.02, decoder_top - box_h / 2),
            (box_x - 0.02, retry_top - box_h / 2),
            connectionstyle="bar,fraction=-0.08",
            arrowstyle="-|>",
            mutation_scale=14,
            color="#00796b",
            linewidth=1.4,
        )
    )
    axis.text(
        0.2,
        (retry_top + decoder_top) / 2 - box_h / 2,
        "retryable: backoff, then again",
        rotation=90,
        fontsize=10.5,
        color="#00796b",
        ha="center",
        va="center",
    )
    axis.text(
        box_x + box_w / 2,
        tops[-1] - box_h - 0.62,
        "result (or, in a bulk run, one Outcome)",
        fontsize=12,
        ha="center",
        va="center",
        fontweight="bold",
    )
    axis.add_patch(
        FancyArrowPatch(
            (box_x + box_w / 2, tops[-1] - box_h - 0.02),
            (box_x + box_w / 2, tops[-1] - box_h - 0.45),
            arrowstyle="-|>",
            mutation_scale=14,
            color="#424242",
            linewidth=1.4,
        )
    )
    figure.tight_layout()
    figure.savefig(path, metadata={"Date": None})
    plt.close(figure)
    print(f"-> {path}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="the benchmarks' shorter runs")
    parser.add_argument("--diagram-only", action="store_true", help="run no benchmark")
    args = parser.parse_args()
    IMAGES.mkdir(parents=True, exist_ok=True)
    draw_request_path(IMAGES / "request-path.svg")
    if not args.diagram_only:
        for picture, script in BENCHMARKS.items():
            run_benchmark(script, picture, args.quick)
    return 0


if __name__ == "__main__":
    sys.exit(main())
