"""Video style transfer, frame to frame consistent (Ruder, Dosovitskiy & Brox, "Artistic style transfer for
videos", GCPR 2016; IJCV 2018): ``stylize_video`` and its ``VideoConfig``.

Modules: ``io`` (PyAV in and out, audio, timestamps), ``flow`` (DIS optical flow, warping, ``.flo``),
``consistency`` (Ruder et al.'s forward-backward check, long-term weights), ``schedule`` (single pass, multi-pass
sweep, batched Jacobi and red-black passes), ``motion`` (flows ahead of use), ``workdir`` (cache and resume),
``config`` (``VideoConfig``), ``stylize`` (``stylize_video``). PyAV and OpenCV are imported only when a video is
read or a flow computed: ``pip install 'nst-jax[video]'``.
"""

from nst_jax.video.config import VideoConfig
from nst_jax.video.io import VideoError
from nst_jax.video.stylize import FrameRecord, VideoProgress, VideoResult, stylize_video

__all__ = ["FrameRecord", "VideoConfig", "VideoError", "VideoProgress", "VideoResult", "stylize_video"]
