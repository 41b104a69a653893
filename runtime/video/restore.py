"""Restoring a video file: :func:`restore_video` streams ``src``'s frames through the :class:`~runtime.restorer.
Restorer` (:mod:`runtime.video.pipeline`: decode and encode in their own threads, windows of frames restored together
in the calling thread) into ``dst``, with the model chosen per frame by its JPEG quality.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from tqdm import tqdm

from runtime.restorer import Restorer
from runtime.video.container import Clip, Span, VideoError, probe, read_frames
from runtime.video.encode import CODECS, write_video
from runtime.video.pipeline import Frame, Stats, run_pipeline, timed


@dataclass(frozen=True)
class VideoSettings:
    """How :func:`restore_video` restores: output ``codec`` (a :data:`~runtime.video.encode.CODECS` key) and ``crf``
    (None: the codec's default), the ``span``, a forced JPEG ``quality`` for the model choice (None: per frame,
    estimated), and ``consistent`` (default on): project each restored 8-bit Motion-JPEG frame onto its own packet's
    DCT coefficients (:func:`runtime.jpeg_consistency.project`; other codecs have none: restored as they are)."""

    codec: str = "ffv1"
    crf: int | None = None
    span: Span = field(default_factory=Span)
    quality: int | None = None
    consistent: bool = True

    @property
    def codec_crf(self) -> int | None:
        """``crf``, or the codec's default (None: lossless)."""
        return self.crf if self.crf is not None else CODECS[self.codec].crf


def restore_window(restorer: Restorer, frames: list[Frame], qualities: list[int | None]) -> list[Frame]:
    """``frames`` restored together (:meth:`Restorer.restore_frames`; ``qualities`` choose each frame's model), in
    order, their timestamps and qualities kept."""
    pixels = restorer.restore_frames([frame.pixels for frame in frames], qualities)
    return [replace(frame, pixels=p) for frame, p in zip(frames, pixels, strict=True)]


def project_frames(frames: list[Frame], stats: Stats) -> list[Frame]:
    """Each restored frame that carries its packet's coefficients projected onto them (the projection of
    ``restore_file``, :mod:`runtime.jpeg_consistency`), its share of luma coefficients true to the packet appended to
    ``stats.consistent``; frames without coefficients as they are."""
    from runtime.jpeg_consistency import consistent_share, project

    out = []
    for frame in frames:
        if frame.jpeg is not None:
            frame = replace(frame, pixels=project(frame.pixels, frame.jpeg))
            stats.consistent.append(consistent_share(frame.pixels, frame.jpeg))
        out.append(frame)
    return out


def restore_video(src: Path, dst: Path, restorer: Restorer, settings: VideoSettings = VideoSettings(),
                  clip: Clip | None = None, progress: bool = False) -> Stats:  # fmt: skip
    """Restore the video ``src`` into ``dst`` (written directly: callers wanting atomicity pass a temporary). Raises
    VideoError when no frame decodes."""
    clip = clip or probe(src, settings.span)
    codec = CODECS[settings.codec]
    stats = Stats()

    def restore(frames: list[Frame]) -> list[Frame]:
        qualities = [settings.quality or frame.quality for frame in frames]
        for frame, quality in zip(frames, qualities, strict=True):
            stats.qualities[frame.quality] += 1
            stats.models[restorer.models.for_quality(quality).name] += 1
        restored = restore_window(restorer, frames, qualities)
        return project_frames(restored, stats) if settings.consistent else restored

    coefficients = settings.consistent and clip.is_jpeg and not clip.deep
    items = timed(read_frames(src, clip, settings.span, stats, coefficients), stats, "decode_s")
    crf = settings.codec_crf
    with tqdm(total=clip.frames, unit="frame", disable=None if progress else True, leave=False) as bar:
        run_pipeline(items, restore, lambda out: write_video(dst, clip, codec, crf, src, out, stats), stats, bar)
    if not stats.frames:
        raise VideoError(f"{src}: no frame could be decoded ({stats.corrupt} corrupt packets)")
    return stats
