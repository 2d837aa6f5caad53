"""``stylize_video`` on clips made here (random weights, 32x48 frames, shallow layers, a few iterations): one
compiled program for every frame, batched passes equal to frames run one at a time, Ctrl-C muxing what is finished
and ``resume`` going on from there, colours per frame, and bad outputs refused before anything slow. The first
tests take seconds: they compile the loop (single, then vmapped), which the later ones reuse."""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_problem import compilations
from video_clips import pan_frames, write_clip

from nst_jax import StyleConfig
from nst_jax.color import rgb_to_yiq
from nst_jax.config import ConfigError
from nst_jax.files import OutputError
from nst_jax.optimize import Status, clear_stop, request_stop
from nst_jax.video.config import VideoConfig
from nst_jax.video.io import VideoError, probe, read_frames
from nst_jax.video.stylize import stylize_video
from nst_jax.video.workdir import WorkDirError

pytest.importorskip("av")
pytest.importorskip("cv2")

# Shallow layers, tiny frames and Adam (quicker to compile than L-BFGS): what is tested is the video machinery.
TINY = StyleConfig(image_size=48, iterations=4, chunk_size=2, content_layers=("relu2_1",),
                   style_layers=("relu1_1", "relu2_1"), optimizer="adam")
STYLE = np.random.default_rng(7).random((40, 40, 3), dtype=np.float32)


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory):
    """A 4-frame 32x48 pan at 30000/1001 fps with audio."""
    return write_clip(tmp_path_factory.mktemp("video") / "pan.mp4", pan_frames(4, 32, 48, step=2, seed=1))


def frames_of(result_images: list) -> np.ndarray:
    return np.stack(result_images)


def run(clip, **kwargs):
    """``stylize_video`` with TINY and the random network; returns the result and each output frame."""
    images = []
    kwargs.setdefault("config", TINY)
    result = stylize_video(clip, STYLE, on_frame=lambda record, image: images.append(image), **kwargs)
    return result, images


def test_one_program_serves_every_frame(clip, vgg_weights):
    """After one frame has compiled the loop, frames with temporal targets, another gamma and long-term references
    compile nothing: the targets and weights are traced inputs of one shape."""
    run(clip, vgg=vgg_weights, max_frames=1, video=VideoConfig(long_term=(1, 2)))
    with compilations() as compiled:
        result, _ = run(clip, vgg=vgg_weights, video=VideoConfig(long_term=(1, 2), temporal_weight=123.0))
    assert compiled == []
    assert result.status == Status.COMPLETED and len(result.frames) == 4 and result.temporal_weight == 123.0
    assert [r.warp_error is None for r in result.frames] == [True, False, False, False]
    assert result.frames[0].temporal_loss == 0 and all(r.temporal_loss > 0 for r in result.frames[1:])
    assert [r.iterations for r in result.frames] == [4, 2, 2, 2]  # the later frames: half, as Ruder's 2000/1000


@pytest.mark.numerics
def test_frames_of_a_batched_pass_equal_frames_run_one_at_a_time(clip, vgg_weights):
    """A Jacobi pass reads the previous pass only, so its frames may run as one vmapped batch or one by one: the
    same results (the temporal term on from the second pass)."""
    video = VideoConfig(schedule="jacobi", passes=2, pass_iterations=3, temporal_from_pass=2)
    # Adam (TINY's): L-BFGS's zoom search can take another branch on a last-digit difference between the vmapped
    # and the single program (measured: one frame of four after 6 iterations, the others equal to the last bit)
    batched, batched_images = run(clip, vgg=vgg_weights, video=video)
    alone, alone_images = run(clip, vgg=vgg_weights, video=video.replace(batch_frames=False))
    # measured: equal on AVX-512 and AVX2
    np.testing.assert_allclose(frames_of(batched_images), frames_of(alone_images), atol=1e-6)
    np.testing.assert_allclose([r.loss for r in batched.frames], [r.loss for r in alone.frames], rtol=1e-6)
    assert [r.iterations for r in batched.frames] == [6] * 4


def test_ctrl_c_muxes_the_finished_frames_and_resume_goes_on(clip, vgg_weights, tmp_path):
    output, work = tmp_path / "out.mp4", tmp_path / "work"

    def stop_after_frame_one(record, image) -> None:
        if record.index == 1:
            request_stop()  # what Ctrl-C does: frame 2 stops at its first chunk

    try:
        stopped = stylize_video(clip, STYLE, output, config=TINY, vgg=vgg_weights, work_dir=work,
                                on_frame=stop_after_frame_one)
    finally:
        clear_stop()
    assert stopped.status == Status.INTERRUPTED and len(stopped.frames) == 2 and probe(output).frames == 2
    assert json.loads((work / "manifest.json").read_text())["steps_done"] == 2
    seen: list[tuple[int, ...]] = []
    resumed = stylize_video(clip, STYLE, output, config=TINY, vgg=vgg_weights, work_dir=work, resume=True,
                            callback=lambda progress: seen.append(progress.frames))
    assert resumed.status == Status.COMPLETED and {frames[0] for frames in seen} == {2, 3}  # 0 and 1 skipped
    assert [r.iterations for r in resumed.frames] == [0, 0, 2, 2]  # finished by the first run
    info = probe(output)
    assert info.frames == 4 and info.audio_codec == "aac"
    straight, straight_images = run(clip, vgg=vgg_weights)
    np.testing.assert_allclose([r.loss for r in resumed.frames[2:]], [r.loss for r in straight.frames[2:]],
                               rtol=1e-6)  # the same run: frame 2 starts from frame 1's saved result
    luma = np.asarray([0.299, 0.587, 0.114], np.float32)  # yuv420p halves the chrominance of these noisy frames
    errors = np.asarray([[np.abs((d - s) @ luma).mean() for s in straight_images]
                         for d in read_frames(info, range(4))])
    assert np.all(np.argmin(errors, axis=1) == np.arange(4)), errors  # each frame in its place
    assert np.diag(errors).max() < 0.03, errors  # H.264 at crf 18: measured 0.013-0.015
    with pytest.raises(WorkDirError, match="holds a run with other settings or inputs"):
        stylize_video(clip, STYLE, output, config=TINY.replace(seed=3), vgg=vgg_weights, work_dir=work, resume=True)


def test_colours_are_kept_per_frame(clip, vgg_weights):
    """Luminance-only transfer: every output frame has its own content frame's chrominance."""
    result, images = run(clip, vgg=vgg_weights, max_frames=2, config=TINY.replace(preserve_color="luminance"))
    contents = list(read_frames(probe(clip), range(2)))
    for image, content in zip(images, contents):
        unclipped = np.all((image > 0) & (image < 1), axis=-1)  # clipping to [0, 1] moves the chrominance
        # the frames are kept in 8 bits at their size: their chrominance within 1/255
        np.testing.assert_allclose(rgb_to_yiq(image)[unclipped][:, 1:], rgb_to_yiq(content)[unclipped][:, 1:],
                                   atol=1 / 255)
        assert unclipped.mean() > 0.9
    assert len(result.frames) == 2


def test_bad_requests_fail_before_anything_slow(clip, vgg_weights, tmp_path):
    with pytest.raises(OutputError, match="is also an input"):
        stylize_video(clip, STYLE, clip, config=TINY, vgg=vgg_weights)
    foreign = tmp_path / "theirs.mp4"
    foreign.write_bytes(b"someone's video")
    with pytest.raises(OutputError, match="was not written by nst_jax"):
        stylize_video(clip, STYLE, foreign, config=TINY, vgg=vgg_weights)
    with pytest.raises(VideoError, match="unsupported suffix '.avi'"):
        stylize_video(clip, STYLE, tmp_path / "out.avi", config=TINY, vgg=vgg_weights)
    with pytest.raises(ValueError, match="resume needs the work folder"):
        stylize_video(clip, STYLE, config=TINY, vgg=vgg_weights, resume=True)
    with pytest.raises(ConfigError, match="scales is for one image"):
        stylize_video(clip, STYLE, config=TINY.replace(image_size=48, scales=(24, 48)), vgg=vgg_weights)
    with pytest.raises(VideoError, match="--start 9 s is at or past the end"):
        stylize_video(clip, STYLE, config=TINY, vgg=vgg_weights, start=9.0)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    with pytest.raises(WorkDirError, match="not empty and not an nst_jax video work folder"):
        stylize_video(clip, STYLE, config=TINY, vgg=vgg_weights, work_dir=tmp_path / "mine")
    with pytest.raises(ConfigError, match="long_term is for the single schedule"):
        VideoConfig(schedule="sweep", long_term=(1, 2))
