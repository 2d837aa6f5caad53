"""``nst-jax video``: end to end on a tiny clip (the MP4, its audio, the log), Ctrl-C muxing the frames finished
then ``--resume``, and bad requests as one line with exit 2 before anything slow. The end-to-end test takes seconds:
it compiles the loop for the command's config (the next ones reuse it)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from video_clips import pan_frames, write_clip

from nst_jax import cli
from nst_jax.cli import loading
from nst_jax.video.io import probe

pytest.importorskip("av")
pytest.importorskip("cv2")

# Shallow layers, tiny frames, Adam (quick to compile): the command's machinery, not the look.
FAST = ["--image-size", "48", "--iterations", "4", "--chunk-size", "2", "--content-layers", "relu2_1",
        "--style-layers", "relu1_1,relu2_1", "--optimizer", "adam", "--quiet"]


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory):
    """A 4-frame 32x48 pan at 30000/1001 fps with AAC audio."""
    return write_clip(tmp_path_factory.mktemp("cli_video") / "pan.mp4", pan_frames(4, 32, 48, step=2, seed=4))


def _one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("nst-jax video: error: "), err
    return lines[0]


def test_a_clip_is_stylized_with_its_audio_and_logged(capsys, tmp_path, clip, inputs, weights_file):
    out, log = tmp_path / "out.mp4", tmp_path / "log.json"
    code = cli.main(["video", str(clip), str(inputs["style"]), "-o", str(out), "--weights", str(weights_file),
                     "--log-json", str(log), *FAST])
    captured = capsys.readouterr()
    assert code == 0 and f"wrote {out}: 4 frames of 48x32, mean warp error" in captured.out, captured.err
    info, source = probe(out), probe(clip)
    assert (info.frames, info.rate, info.audio_codec) == (4, source.rate, "aac")
    record = json.loads(log.read_text())
    assert record["software"] == "nst_jax" and record["status"] == "completed" and len(record["frames"]) == 4
    assert record["frames"][0]["warp_error"] is None and all(f["warp_error"] >= 0 for f in record["frames"][1:])
    assert record["video"]["schedule"] == "single" and record["temporal_weight"] == 1e2  # torchvision's default
    # run again: the output is nst_jax's, so it may be replaced
    assert cli.main(["video", str(clip), str(inputs["style"]), "-o", str(out), "--weights", str(weights_file),
                     "--max-frames", "2", "--no-audio", *FAST]) == 0
    assert probe(out).frames == 2 and probe(out).audio_codec is None


def test_ctrl_c_muxes_the_frames_finished_then_resume(capsys, tmp_path, clip, inputs, weights_file, monkeypatch):
    """Ctrl-C in frame 1's first chunk: frame 0 is muxed and the exit code is 130; --resume does the rest."""
    from nst_jax import optimize
    from nst_jax.video.workdir import WorkDir

    # The first chunk after frame 0 was saved: the command times its chunks (about 2 s each, so that a stop never
    # waits longer), so how many chunks a frame takes depends on the machine.
    real, real_save, saved = optimize.compile_solver, WorkDir.save_step, []

    def save_step(self, results, steps_done):
        real_save(self, results, steps_done)
        saved.append(steps_done)

    def interrupted_after_the_first_frame(*args, **kwargs):
        compiled = real(*args, **kwargs)

        def chunk(*args, **kwargs):
            if saved:
                raise KeyboardInterrupt
            return compiled.chunk(*args, **kwargs)

        return compiled._replace(chunk=chunk)

    monkeypatch.setattr(WorkDir, "save_step", save_step)
    monkeypatch.setattr(optimize, "compile_solver", interrupted_after_the_first_frame)
    out, work = tmp_path / "out.mp4", tmp_path / "work"
    argv = ["video", str(clip), str(inputs["style"]), "-o", str(out), "--weights", str(weights_file),
            "--work-dir", str(work), *FAST]
    assert cli.main(argv) == 130
    err = capsys.readouterr().err
    assert f"interrupted after 1 of 4 frames; muxed them into {out}" in err and "Traceback" not in err
    assert probe(out).frames == 1
    monkeypatch.setattr(optimize, "compile_solver", real)
    assert cli.main([*argv, "--resume"]) == 0
    assert probe(out).frames == 4


def test_help_names_every_video_option(capsys):
    assert cli.main(["video", "--help"]) == 0
    text = capsys.readouterr().out
    for option in ("--flow", "--temporal-weight", "--long-term", "--init", "--first-init", "--schedule", "--passes",
                   "--start", "--end", "--max-frames", "--crf", "--no-audio", "--work-dir", "--resume"):
        assert option in text, option
    assert "--scales" not in text and "62 % marked" in text  # the flows' measured trade-offs


BAD_REQUESTS = {
    "not a video": (["{notes}", "{style}", "-o", "{out}"], "is not a video FFmpeg can read"),
    "a still image": (["{style}", "{style}", "-o", "{out}"], "is a still image, not a video"),
    "no video stream": (["{sound}", "{style}", "-o", "{out}"], "has no video stream"),
    "output folder missing": (["{clip}", "{style}", "-o", "{tmp}/missing/out.mp4"],
                              "output directory '{tmp}/missing' does not exist"),
    "output is the input": (["{clip}", "{style}", "-o", "{clip}"], "is also an input (IN)"),
    "output suffix": (["{clip}", "{style}", "-o", "{tmp}/out.gif"], "unsupported suffix '.gif'"),
    "range outside": (["{clip}", "{style}", "-o", "{out}", "--start", "9"], "--start 9 s is at or past the end"),
    "range empty": (["{clip}", "{style}", "-o", "{out}", "--start", "0.1", "--end", "0.05"],
                    "--end 0.05 s must be after --start 0.1 s"),
    "resume without folder": (["{clip}", "{style}", "-o", "{out}", "--resume"], "--resume needs the --work-dir"),
    "long term in a sweep": (["{clip}", "{style}", "-o", "{out}", "--schedule", "sweep", "--long-term", "1,2"],
                             "--long-term is for the single --schedule"),
    "bad long term": (["{clip}", "{style}", "-o", "{out}", "--long-term", "0,2"],
                      "--long-term must be distinct positive integers"),
    "unreadable style": (["{clip}", "{text}", "-o", "{out}"], "notes.png"),
    "too small": (["{clip}", "{style}", "-o", "{out}", "--image-size", "20"],
                  "a frame is 13x20 pixels at --image-size 20; layers up to relu5_1 need at least 16"),
    "crf": (["{clip}", "{style}", "-o", "{out}", "--crf", "60"], "--crf must be from 0 (lossless) to 51"),
    "scales": (["{clip}", "{style}", "-o", "{out}", "--scales", "24,48"], "unrecognized arguments: --scales"),
}


@pytest.mark.parametrize("case", BAD_REQUESTS)
def test_bad_requests_are_one_line_and_exit_2(case, capsys, tmp_path, clip, inputs, weights_file, monkeypatch):
    def must_not_load(*args, **kwargs):
        raise AssertionError("weights were loaded before the request was checked")

    monkeypatch.setattr(loading, "load_weights", must_not_load)
    import av

    sound = tmp_path / "tone.m4a"
    with av.open(str(sound), "w") as container:
        stream = container.add_stream("aac", rate=44100)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 2048), np.float32), format="fltp", layout="mono")
        frame.sample_rate = 44100
        for packet in [*stream.encode(frame), *stream.encode()]:
            container.mux(packet)
    notes = tmp_path / "notes.mp4"
    notes.write_text("not a video\n")
    paths = {"clip": str(clip), "style": str(inputs["style"]), "text": str(inputs["text"]), "sound": str(sound),
             "notes": str(notes), "tmp": str(tmp_path), "out": str(tmp_path / "out.mp4")}
    template, expected = BAD_REQUESTS[case]
    before = clip.read_bytes()
    assert cli.main(["video", *(arg.format(**paths) for arg in template), "--weights", str(weights_file),
                     "--quiet"]) == 2
    captured = capsys.readouterr()
    if case == "scales":  # argparse's own error: its usage, then one line
        assert expected in captured.err.strip().splitlines()[-1]
    else:
        assert expected.format(**paths) in _one_error_line(captured.err)
    assert captured.out == "" and not (tmp_path / "out.mp4").exists() and clip.read_bytes() == before


@pytest.mark.numerics
@pytest.mark.slow
def test_jacobi_passes_over_two_processes_equal_one(tmp_path, clip, inputs, weights_file):
    """``--schedule jacobi --distributed``: each pass's frames spread over the 4 devices of 2 processes; process 0
    alone writes the video and the log, whose frames equal one process's over 4 devices (up to XLA:CPU's threading
    in the last digits, amplified by the optimizer: see test_multihost)."""
    from test_multihost import distributed, finish, free_port, launch

    common = ["video", str(clip), str(inputs["style"]), "--weights", str(weights_file), *FAST, "--schedule",
              "jacobi", "--passes", "2", "--pass-iterations", "2", "--temporal-from-pass", "2"]
    shared, single = tmp_path / "shared", tmp_path / "single"
    shared.mkdir(), single.mkdir()
    port = free_port()
    children = {str(index): launch([*common, "-o", str(shared / "out.mp4"), "--log-json", str(shared / "log.json"),
                                    *distributed(port, index)], devices=2) for index in (0, 1)}
    children["single"] = launch([*common, "-o", str(single / "out.mp4"), "--log-json", str(single / "log.json")], 4)
    outputs = finish(children, timeout=600)
    for name, child in children.items():
        assert child.returncode == 0, outputs[name][1][-3000:]
    assert sorted(path.name for path in shared.iterdir()) == ["log.json", "out.mp4"]
    assert "wrote" in outputs["0"][0] and "wrote" not in outputs["1"][0]
    logs = [json.loads((folder / "log.json").read_text()) for folder in (shared, single)]
    np.testing.assert_allclose([f["loss"] for f in logs[0]["frames"]], [f["loss"] for f in logs[1]["frames"]],
                               rtol=1e-3)
    assert probe(shared / "out.mp4").frames == 4
