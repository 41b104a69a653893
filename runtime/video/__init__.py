"""Restore the frames of a video with WCDGAN (PyAV, the ``[video]`` extra): ``python -m runtime.video IN OUT``, or
:func:`restore_video` from Python.

Frames stream decode (thread) → restore (calling thread) → encode and mux (thread), joined by bounded queues, so memory
does not depend on the clip's length; windows of frames are restored together so a GPU backend gets full batches. The
model sees H×W×3 RGB frames, uint8 (0–255), or uint16 for sources of more than 8 bits, converted from and back to YUV
through the matrix and range the stream declares. One responsibility per module:

* :mod:`~runtime.video.colour` — YUV ↔ RGB (:class:`Colour`, :func:`frame_to_rgb`, :func:`rgb_to_frame`)
* :mod:`~runtime.video.container` — reading a file (:func:`probe`, :class:`Clip`, :class:`Span`, :func:`read_frames`)
* :mod:`~runtime.video.encode` — writing one (:data:`CODECS`, :func:`write_video`)
* :mod:`~runtime.video.pipeline` — the threads and queues (:func:`run_pipeline`, :class:`Frame`, :class:`Stats`)
* :mod:`~runtime.video.restore` — a file through the :class:`~runtime.restorer.Restorer` (:func:`restore_video`)
* :mod:`~runtime.video.compare` — the side-by-side clip of ``--compare``
* :mod:`~runtime.video.raw` — pipe mode (raw frames in and out)
* :mod:`~runtime.video.cli` — the command line

The names below are imported on first use, so that ``import runtime.video`` needs no PyAV, and ``python -m
runtime.video`` (which imports this package first) can say in one line that the extra is missing.
"""

from __future__ import annotations

from common.lazy import lazy_exports

_EXPORTS = {
    "colour": ("HD_LINES", "Colour", "frame_colour", "frame_to_rgb", "is_deep", "rgb_to_frame"),
    "container": ("JPEG_CODECS", "Clip", "Remux", "Span", "VideoError", "packet_quality", "probe", "read_frames"),
    "encode": ("CODECS", "Codec", "write_video"),
    "pipeline": ("QUEUE_FRAMES", "WINDOW_FRAMES", "Frame", "Stats", "run_pipeline"),
    "restore": ("VideoSettings", "restore_video", "restore_window"),
    "compare": ("side_by_side", "write_compare"),
    "raw": ("RAW_FORMATS", "RawFormat", "raw_format", "read_raw", "restore_raw", "write_raw"),
    "cli": ("main",),
}
__all__, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
