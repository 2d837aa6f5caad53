"""Does watching a run cost it anything? Iterations per second of one style transfer served as ``--serve`` serves
it, with no viewer and with two (one of which leaves halfway), in alternating pairs.

    python -m benchmarks.serve --size 256 --iterations 30 --repeats 4 --weights trained.h5

What runs is what ``nst-jax CONTENT STYLE -o OUT --serve 0`` runs: ``stylize`` with chunks of about 2 s
(``progress_seconds``), ``Publisher.update`` as its progress callback, the server in a thread. A viewer does what
the page does: it reads ``/events`` and, for each new frame, fetches ``/frame.png`` once it has the previous one;
the leaving one closes its connection at half the iterations. The speed is the iterations over the optimization's
own time (``StyleResult.elapsed``: preparing the targets is not in it; compiling is done by a warm-up run first).
Each pair runs both modes, in turn first; the ratio (2 viewers over none) is taken pair by pair, so that a machine
whose speed drifts still compares like with like. ``--modes off,0,2`` adds runs without any server.
Images: examples/content.jpg and examples/style.jpg.
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import sys
import threading
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.report import json_output_problem
from nst_jax import RandomWeightsWarning, StyleConfig, load_weights, stylize
from nst_jax.files import write_json
from nst_jax.live import Feed, LiveServer, Publisher
from nst_jax.optimize import OPTIMIZERS
from nst_jax.weights import VGGWeights

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
MODES = ("off", "0", "2")
"""No server at all; served with no viewer; served with two viewers, one leaving halfway."""


def watch(port: int, leave_at: int | None, seen: dict[str, int]) -> None:
    """One viewer, as the page behaves: follow /events, fetch each new frame after the previous one; leave (close the
    connection mid-run) once the run passes ``leave_at`` iterations. Counts frames and bytes in ``seen``."""
    events = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    events.request("GET", "/events")
    response = events.getresponse()
    name, shown = None, None
    for raw in response:
        line = raw.decode().rstrip("\n")
        if line.startswith("event: "):
            name = line[len("event: "):]
            continue
        if not line.startswith("data: ") or name == "done":
            if name == "done":
                break
            continue
        message = json.loads(line[len("data: "):])
        if leave_at is not None and message["iteration"] >= leave_at:
            seen["left_at"] = message["iteration"]
            break
        if message["frame"] is not None and message["frame"] != shown:
            frame = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
            frame.request("GET", f"/frame.png?v={message['frame']}")
            body = frame.getresponse().read()
            frame.close()
            seen["frames"] += 1
            seen["bytes"] += len(body)
            shown = message["frame"]
    events.close()


class TimedFeed(Feed):
    """A ``Feed`` adding up the seconds its server threads spend rendering and encoding pictures."""

    def __init__(self) -> None:
        super().__init__()
        self.png_seconds = 0.0

    def png(self, name: str) -> bytes | None:
        start = time.perf_counter()
        try:
            return super().png(name)
        finally:
            self.png_seconds += time.perf_counter() - start


class TimedPublisher(Publisher):
    """A ``Publisher`` adding up the seconds its ``update`` takes on the optimizer's thread."""

    seconds = 0.0

    def update(self, progress: Any, **kwargs: Any) -> None:
        start = time.perf_counter()
        super().update(progress, **kwargs)
        self.seconds += time.perf_counter() - start


def timed_run(mode: str, content: Path, style: Path, vgg: VGGWeights, config: StyleConfig) -> dict[str, Any]:
    """One run in ``mode`` (``MODES``): its iterations per second, the seconds spent publishing (on the optimizer's
    thread) and encoding (on the server's), and what its viewers saw."""
    seen: list[dict[str, int]] = []
    callback_seconds = png_seconds = 0.0
    if mode == "off":
        result = stylize(content, style, vgg=vgg, config=config)
    else:
        feed = TimedFeed()
        with LiveServer(feed, port=0) as server:
            publisher = TimedPublisher(feed, total=config.iterations)
            viewers = []
            for leave_at in [None, config.iterations // 2][: int(mode)]:
                seen.append({"frames": 0, "bytes": 0})
                viewers.append(threading.Thread(target=watch, args=(server.port, leave_at, seen[-1]), daemon=True))
                viewers[-1].start()
            deadline = time.monotonic() + 30
            while feed.viewers < int(mode) and time.monotonic() < deadline:
                time.sleep(0.01)
            result = stylize(content, style, vgg=vgg, config=config, callback=publisher.update)
            publisher.finish("completed", "benchmark")
        for viewer in viewers:
            viewer.join(30)
        callback_seconds, png_seconds = publisher.seconds, feed.png_seconds
    return {"mode": mode, "iterations": result.iterations, "seconds": result.elapsed,
            "iterations_per_second": result.iterations / result.elapsed, "callback_seconds": callback_seconds,
            "png_seconds": png_seconds, "dispatches": result.dispatches, "viewers": seen}


def main(argv: Sequence[str] | None = None) -> int:
    """Time the modes in alternating pairs and print what was measured."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256, help="output size, longest side in pixels")
    parser.add_argument("--iterations", type=int, default=30, help="iterations per run")
    parser.add_argument("--repeats", type=int, default=4, help="pairs (each runs every mode once)")
    parser.add_argument("--modes", default="0,2", help=f"comma-separated modes among {', '.join(MODES)}")
    parser.add_argument("--optimizer", default=OPTIMIZERS[0], choices=OPTIMIZERS)
    parser.add_argument("--weights", type=Path, default=None, help="VGG19/VGG16 HDF5 weights")
    parser.add_argument("--json", type=Path, default=None, help="also write the measurements as JSON here")
    args = parser.parse_args(argv)
    modes = [mode.strip() for mode in args.modes.split(",") if mode.strip()]
    problem = json_output_problem(args.json, args.weights)
    if not modes or any(mode not in MODES for mode in modes):
        problem = f"--modes takes a comma list of {', '.join(MODES)}, got {args.modes!r}"
    if problem:
        print(f"benchmarks.serve: error: {problem}", file=sys.stderr)
        return 2
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RandomWeightsWarning)
        vgg = load_weights(args.weights)
    if caught:
        print("WARNING: random VGG19 weights: timings are real, images and losses are not style transfer")
    content, style = EXAMPLES / "content.jpg", EXAMPLES / "style.jpg"
    config = StyleConfig(image_size=args.size, iterations=args.iterations, optimizer=args.optimizer,
                         progress_seconds=2.0)
    warm = config.replace(iterations=min(args.iterations, config.chunk_size))  # the same compiled chunk
    timed_run(modes[-1], content, style, vgg, warm)
    runs = []
    for repeat in range(args.repeats):
        for mode in modes if repeat % 2 == 0 else modes[::-1]:
            runs.append({**timed_run(mode, content, style, vgg, config), "repeat": repeat})
            run = runs[-1]
            viewers = "; ".join(f"{v['frames']} frames, {v['bytes'] / 1e6:.1f} MB" + (
                f", left at iteration {v['left_at']}" if "left_at" in v else "") for v in run["viewers"])
            print(f"pair {repeat + 1}, {mode:>3} viewer(s): {run['iterations_per_second']:.4f} it/s "
                  f"({run['iterations']} its in {run['seconds']:.1f} s, {run['dispatches']} chunks; publishing "
                  f"{run['callback_seconds'] * 1e3:.0f} ms, pictures {run['png_seconds'] * 1e3:.0f} ms)"
                  f"{'; ' + viewers if viewers else ''}", flush=True)
    speeds = {mode: [run["iterations_per_second"] for run in runs if run["mode"] == mode] for mode in modes}
    for mode, values in speeds.items():
        print(f"{mode:>3} viewer(s): median {statistics.median(values):.4f} it/s (min {min(values):.4f}, "
              f"max {max(values):.4f})")
    settings = {name: str(value) if isinstance(value, Path) else value for name, value in vars(args).items()}
    summary: dict[str, Any] = {"runs": runs, "settings": settings}
    if "0" in speeds and "2" in speeds:
        ratios = [watched / alone for watched, alone in zip(speeds["2"], speeds["0"])]
        summary["ratios"] = ratios
        print(f"2 viewers / 0, pair by pair: {', '.join(f'{r:.3f}' for r in ratios)}; median "
              f"{statistics.median(ratios):.3f}")
    if args.json is not None:
        write_json(args.json, summary)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
