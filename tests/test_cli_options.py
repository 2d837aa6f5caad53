"""Every option of every command line (``nst-jax``, ``nst-jax reconstruct``, ``python -m convert_weights``) given
out-of-range values: exit 2, one error line, no traceback, nothing written, before anything slow.

The cases are generated from the parsers themselves, by each option's type (numbers below their range and, where
there is one, above it; NaN and infinity; unknown choices; empty lists; files that do not exist), so that an option
added later is covered or fails ``test_every_option_has_cases``."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import pytest

from convert_weights.cli import build_parser as converter_parser
from convert_weights.cli import main as convert_main
from nst_jax import cli
from nst_jax.cli import loading
from nst_jax.cli import reconstruct as cli_reconstruct
from nst_jax.cli.options import build_parser as main_parser

# Values above the range of the options that have an upper bound (the others: any size is a request, refused by
# the memory check where it would not fit, which the lists below include through --image-size).
ABOVE = {
    "seed": [str(2**32), str(2**64)],
    "chunk_size": ["100001"],
    "distributed_timeout": ["86401", "99999999999"],
    "num_processes": [str(2**31)],
    "bit_depth": ["16000"],
    "image_size": ["99999999", "131072"],  # the second fits no memory here
    "history_size": ["99999999999"],
    "normalize_size": ["4097", "99999999"],
    "serve": ["65536"],
}

# Options whose values name things (files, patterns, addresses): what is out of range for each.
NAMED = {
    "output": ["{missing}/out.png", ""],
    "log_json": ["{missing}/log.json", "", "{folder}"],
    "weights": ["{missing}/w.h5", "", "{folder}"],
    "init": ["{missing}/init.png", ""],
    "batch": ["{missing}/*.png", ""],
    "style_masks": ["{missing}/m.png", ""],
    "style_source_masks": ["{missing}/m.png", ""],
    "content_layers": ["", "fc7"],
    "style_layers": ["", "fc7"],
    "layers": ["", "fc7"],
    "coordinator": ["localhost", "localhost:99999", "localhost:0", ":1234", ""],
    "pth": ["{missing}/vgg19.pth", ""],
    "normalize_on": ["{missing}", ""],
    "style_blend_weights": ["-1", "nan", "inf", "0"],  # only their ratios count: large ones are fine
    "serve_host": ["", "http://localhost/"],
}

FLOATS = ["-1", "nan", "inf", "1e39"]
INTEGERS = ["-1"]


def _values(action: argparse.Action) -> list[str]:
    """Out-of-range values for ``action``, by its type."""
    if action.dest in NAMED:
        return NAMED[action.dest]
    if action.choices is not None:
        return ["bogus", *ABOVE.get(action.dest, [])]
    name = getattr(action.type, "__name__", "")
    if action.type is int or name in ("_positive_int", "_seed", "_normalize_size", "_port"):
        return INTEGERS + ABOVE.get(action.dest, [])
    if action.type is float or name in ("_weights", "_numbers"):
        return FLOATS
    if name == "parse":  # comma-separated integers (--scales, --scale-iterations)
        return ["-1", "", "a"]
    raise AssertionError(f"no out-of-range values for {action.option_strings or action.dest}")


def _options(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    """The options of ``parser`` that take a value (flags have no range)."""
    return [action for action in parser._actions if action.option_strings and action.nargs != 0]


PARSERS: dict[str, Callable[[], argparse.ArgumentParser]] = {
    "nst-jax": main_parser, "nst-jax reconstruct": cli_reconstruct.build_parser, "convert_weights": converter_parser,
}
CASES = [(command, action.option_strings[-1], action.dest, value)
         for command, parser in PARSERS.items() for action in _options(parser()) for value in _values(action)]


def test_every_option_has_cases():
    """A new option must come with out-of-range values here (or a type ``_values`` knows)."""
    for command, parser in PARSERS.items():
        for action in _options(parser()):
            assert any(case[0] == command and case[2] == action.dest for case in CASES), (command, action.dest)
    assert len(CASES) > 120


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory, inputs: dict[str, Path], weights_file: Path) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("options")
    return {"content": str(inputs["content"]), "style": str(inputs["style"]), "weights": str(weights_file),
            "missing": str(folder / "missing"), "folder": str(folder)}


def _argv(command: str, option: str, dest: str, value: str, paths: dict[str, str]) -> list[str]:
    """A command otherwise valid, and fast, with ``option value`` last (argparse keeps the last value)."""
    value = value.format(**paths)
    if command == "convert_weights":
        source = [] if dest in ("pth", "random", "torchvision") else ["--random"]
        return [*source, "-o", f"{paths['out']}/w.h5", option, value]
    if command == "nst-jax reconstruct":
        return ["content", paths["content"], "-o", f"{paths['out']}/recon", "--weights", paths["weights"],
                "--image-size", "32", "--iterations", "1", "--quiet", option, value]
    base = [paths["content"], paths["style"], "-o", f"{paths['out']}/out.png", "--weights", paths["weights"],
            "--image-size", "32", "--iterations", "1", "--quiet"]
    if dest in ("coordinator", "num_processes", "process_id", "distributed_timeout"):
        base.append("--distributed")  # the values themselves are wrong, not the lack of --distributed
    if dest == "serve_host":
        base += ["--serve", "0"]  # the host itself is wrong, not the lack of --serve
    if dest == "batch_format":
        base[base.index("-o") + 1] = paths["out"]
        base += ["--batch", paths["folder"]]
    return [*base, option, value]


def _run(command: str, argv: list[str]) -> int:
    if command == "convert_weights":
        return convert_main(argv)
    if command == "nst-jax reconstruct":
        return cli.main(["reconstruct", *argv])
    return cli.main(argv)


@pytest.mark.parametrize("command, option, dest, value", CASES, ids=[f"{c}:{o}={v!r}" for c, o, _, v in CASES])
def test_out_of_range_values_are_one_line_and_exit_2(command, option, dest, value, files, tmp_path, monkeypatch,
                                                    capsys):
    monkeypatch.setattr(loading, "load_weights",
                        lambda *args: pytest.fail("the network was loaded before the input was checked"))
    monkeypatch.setattr(cli_reconstruct, "load_weights_loudly",
                        lambda *args: pytest.fail("the network was loaded before the input was checked"))
    out = tmp_path / "out"
    out.mkdir()
    argv = _argv(command, option, dest, value, {**files, "out": str(out)})
    assert _run(command, argv) == 2, argv
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    prefix = {"convert_weights": "convert_weights: error: "}.get(command, f"{command}: error: ")
    assert len(lines) == 1 and lines[0].startswith(prefix), captured.err
    assert "Traceback" not in captured.err and captured.out == ""
    assert list(out.iterdir()) == []
