"""Reading a video file: what its first video stream is (:func:`probe` → :class:`Clip`) and its decoded frames as RGB
:class:`~runtime.video.pipeline.Frame` s with each Motion-JPEG frame's quality, beside the packets of the audio and
subtitle streams to copy (:func:`read_frames` → :class:`Remux`), within a :class:`Span`.

Frames are H×W×3 RGB, uint8 or uint16 (:mod:`runtime.video.colour`). A generator here owns its container: iterate it
in one thread (the pipeline's decode thread).
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

import av

from runtime.jpeg_quality import estimate_quality, read_quant_tables
from runtime.video.colour import Colour, frame_colour, frame_to_rgb, is_deep
from runtime.video.pipeline import Frame, Stats

log = logging.getLogger(__name__)

JPEG_CODECS = ("mjpeg", "mjpegb")  # DCT JPEG frames, with quantisation tables


class VideoError(ValueError):
    """A video cannot be read or written; the message says why, for the user."""


@dataclass(frozen=True)
class Clip:
    """What restoring needs to know of IN's first video stream (from its header and first decodable frame)."""

    codec: str  # decoder name, e.g. "mjpeg"
    width: int
    height: int
    time_base: Fraction
    rate: Fraction | None  # average frame rate, None when unknown
    colour: Colour
    rotation: int  # display rotation in degrees (the frame's display matrix), 0 when none
    deep: bool
    frames: int | None  # expected frame count (for progress), None when unknown
    copied: tuple[int, ...]  # indices of the audio and subtitle streams, remuxed untouched
    chroma: str = "4:2:0"  # the source's chroma subsampling: "4:4:4" (RGB too), "4:2:2", "4:2:0", "4:1:1", "gray"

    @property
    def is_jpeg(self) -> bool:
        return self.codec in JPEG_CODECS


@dataclass(frozen=True)
class Span:
    """The part to restore, in seconds: ``start`` (from the container's first timestamp, as ffmpeg's ``-ss``; see
    :meth:`from_origin`), ``duration`` (None: to the end)."""

    start: float = 0.0
    duration: float | None = None

    def from_origin(self, container: Any) -> Span:
        """This part in the container's own timestamps (a stream may start at any time: MPEG-TS often does); a whole
        clip stays whole, its timestamps untouched."""
        if not self.start and self.duration is None:
            return self
        origin = container.start_time / av.time_base if container.start_time else 0.0
        return Span(origin + self.start, self.duration)

    def contains(self, seconds: float) -> bool:
        """Whether a timestamp is in the part; the whole clip holds negative ones too (encoder priming, edit lists)."""
        return (not self.start or seconds >= self.start) and (
            self.duration is None or seconds < self.start + self.duration
        )

    def past_end(self, seconds: float) -> bool:
        return self.duration is not None and seconds >= self.start + self.duration

    def offset(self, time_base: Fraction) -> int:
        """``start`` in ``time_base`` units: subtracted from every timestamp, so the part starts at 0."""
        return round(self.start / time_base)


@dataclass(frozen=True)
class Remux:
    """A packet of the input's stream ``index``, copied untouched (the index is kept here: the input's stream object
    is gone once the decoding thread closes the input)."""

    index: int
    packet: Any


@contextlib.contextmanager
def open_media(path: Path, mode: Literal["r", "w"] = "r") -> Iterator[Any]:
    """PyAV's container of exactly the file ``path``, read (``"r"``) or written (``"w"``: created or truncated).

    FFmpeg gets a file object opened here, never the name, so a name such as ``file:x.avi`` or ``concat:a|b`` is a
    file name and never a protocol (the name only hints the format, by its suffix); a file the container would open
    beside it (a playlist's segments, a reference) is refused (VideoError): nothing but the named file is read."""

    def refuse(url: str, flags: int, options: dict) -> Any:
        raise VideoError(f"{path}: refers to another file or URL ({url!r:.80}); only the named file is read")

    with open(path, "rb" if mode == "r" else "wb") as file, av.open(file, mode, io_open=refuse) as media:
        yield media


def probe(path: Path, span: Span = Span()) -> Clip:
    """Open ``path``, decode its first video frame at ``span.start``; raise VideoError if it has none."""
    try:
        with open_media(path) as container:
            if not container.streams.video:
                raise VideoError(f"{path}: no video stream")
            video = container.streams.video[0]
            copied = tuple(s.index for s in container.streams if s.type in ("audio", "subtitle"))
            first = next((f for _, f in _decoded(container, video, span.from_origin(container), Stats())), None)
            if first is None:
                raise VideoError(f"{path}: no decodable video frame" + (f" after {span.start} s" if span.start else ""))
            rate = video.average_rate or video.guessed_rate
            return Clip(
                video.codec_context.name, first.width, first.height, video.time_base, rate, frame_colour(first),
                int(first.rotation or 0), is_deep(first), _expected_frames(container, video, rate, span), copied,
                chroma_subsampling(first),
            )  # fmt: skip
    except (av.error.FFmpegError, OSError) as e:
        raise VideoError(f"{path}: cannot read as a video ({e.strerror or e})") from None


def chroma_subsampling(frame: av.VideoFrame) -> str:
    """``"4:2:0"``, ``"4:2:2"``, ``"4:4:4"`` (RGB too), ``"4:1:1"``, …: the frame's chroma resolution; ``"gray"``."""
    components = frame.format.components
    if frame.format.is_rgb:
        return "4:4:4"
    if len(components) < 3:
        return "gray"
    across = round(components[0].width / components[1].width)
    down = round(components[0].height / components[1].height)
    return {(1, 1): "4:4:4", (2, 1): "4:2:2", (2, 2): "4:2:0", (4, 1): "4:1:1"}.get(
        (across, down), f"1/{across}×1/{down}"
    )


def _expected_frames(container: Any, video: Any, rate: Fraction | None, span: Span) -> int | None:
    seconds = container.duration / av.time_base if container.duration else None
    if span.duration is not None:
        seconds = min(seconds or math.inf, span.start + span.duration)
    if seconds is None or not rate:
        return video.frames or None
    return max(round((seconds - span.start) * rate), 1)


def packet_quality(packet: Any) -> int | None:
    """IJG quality estimated from a Motion-JPEG packet's quantisation tables (None: no tables or not a JPEG)."""
    try:
        tables = read_quant_tables(io.BytesIO(bytes(packet)))
    except ValueError:
        return None
    found = estimate_quality(tables) if tables else None
    return found.quality if found else None


def _coefficients(packet: Any, stats: Stats) -> Any:
    """The DCT coefficients of a Motion-JPEG packet (:func:`runtime.jpeg_consistency.read_packet_coefficients`), or
    None (counted in ``stats.unprojected``, logged) when they cannot be read: its frame is restored, not projected."""
    from runtime.jpeg_consistency import ConsistencyError, read_packet_coefficients

    seconds = float((packet.pts or 0) * packet.time_base)
    try:
        return read_packet_coefficients(bytes(packet), f"the frame at {seconds:.3f} s")
    except ConsistencyError as e:
        stats.unprojected += 1
        log.warning("%s; that frame is restored without the projection", e)
        return None


def read_frames(
    path: Path, clip: Clip, span: Span, stats: Stats, coefficients: bool = False
) -> Iterator[Frame | Remux]:
    """Restorable :class:`Frame` s and the copied streams' packets of ``path`` in demux order, timestamps shifted so
    that ``span`` starts at 0 (unchanged for a whole clip); corrupt packets are counted in ``stats.corrupt``. With
    ``coefficients`` (consistent mode, Motion JPEG) each frame carries its packet's DCT coefficients; a packet whose
    coefficients cannot be read leaves its frame without them, counted in ``stats.unprojected``."""
    with open_media(path) as container:
        video = container.streams.video[0]
        copied = tuple(container.streams[i] for i in clip.copied)
        span = span.from_origin(container)
        step = round(1 / (clip.rate * clip.time_base)) if clip.rate else 1  # for frames without a timestamp
        offset, last_pts = span.offset(clip.time_base), None
        for found, frame in _decoded(container, video, span, stats, copied, coefficients):
            if frame is None:
                packet, shift = found, span.offset(found.time_base)
                if shift:
                    packet.pts = None if packet.pts is None else packet.pts - shift
                    packet.dts = None if packet.dts is None else packet.dts - shift
                yield Remux(packet.stream.index, packet)
                continue
            if (frame.width, frame.height) != (clip.width, clip.height):  # one output stream has one size
                raise VideoError(
                    f"{path}: the frame size changes at {float(frame.time or 0):.3f} s ({clip.width}×{clip.height} → "
                    f"{frame.width}×{frame.height}); restore each part on its own (--start, --duration)"
                )
            pts = frame.pts - offset if frame.pts is not None else (0 if last_pts is None else last_pts + step)
            last_pts = pts
            quality, jpeg = found
            yield Frame(frame_to_rgb(frame, clip.colour, clip.deep), pts, quality, jpeg)


def _decoded(
    container: Any, video: Any, span: Span, stats: Stats, copied: tuple = (), coefficients: bool = False
) -> Iterator[tuple[Any, Any]]:
    """``(packet of a copied stream, None)`` and ``((JPEG quality, its coefficients), decoded frame)`` in demux
    order, within ``span`` (coefficients: read with ``coefficients`` only, else None); corrupt video packets are
    counted in ``stats.corrupt`` and skipped."""
    if span.start:
        _seek_before(container, video, span.start)  # frames before start are decoded and skipped
    # packet pts → (quality, coefficients) (intra-only MJPEG: frame pts = packet pts)
    qualities: dict[int | None, tuple[int | None, Any]] = {}
    jpeg = video.codec_context.name in JPEG_CODECS
    end = 0.0  # where the last video packet ends, in seconds
    for packet in container.demux(video, *copied):
        if packet.stream is not video:
            if packet.size and span.contains(float((packet.pts if packet.pts is not None else 0) * packet.time_base)):
                yield packet, None
            continue
        if packet.pts is not None:
            end = max(end, float((packet.pts + (packet.duration or 0)) * packet.time_base))
        if jpeg and packet.size:
            qualities[packet.pts] = packet_quality(packet), _coefficients(packet, stats) if coefficients else None
        try:
            if packet.is_corrupt:  # the demuxer says so: cut short (the last packet of a truncated file), damaged
                raise av.error.InvalidDataError(0, "flagged corrupt by the demuxer")
            frames = packet.decode()
        except av.error.FFmpegError as e:
            stats.corrupt += 1
            qualities.pop(packet.pts, None)
            log.debug("corrupt packet at pts %s: %s", packet.pts, e)
            continue
        for frame in frames:
            seconds = float(frame.pts * frame.time_base) if frame.pts is not None else span.start
            if span.past_end(seconds):
                return
            if span.contains(seconds):
                yield qualities.pop(frame.pts, (None, None)), frame
    if not span.past_end(end):  # the span reaches the end of the data: is that where the header says it is?
        stats.missing = _missing_frames(container, video, end)


def _missing_frames(container: Any, video: Any, end: float) -> int:
    """How many frames the header of ``container`` declares for ``video`` after ``end`` (seconds: where its last
    packet ends), 0 where its header declares no length. A file cut short keeps its header: AVI counts its frames,
    MP4/MOV and Matroska (the muxers' per-stream DURATION tag) give the stream's duration. MPEG-TS has no header, but
    a file of whole transport packets ending inside one was cut: at least one frame is missing, how many is unknown."""
    rate = float(video.average_rate or video.guessed_rate or 0)
    name, declared = container.format.name, None
    if name == "avi" and video.frames and rate:
        declared = video.frames / rate
    elif name.startswith("mov,") and video.duration:
        declared = float(((video.start_time or 0) + video.duration) * video.time_base)
    elif name.startswith("matroska") and (tag := _duration_tag(video.metadata.get("DURATION", ""))) is not None:
        declared = tag  # FFmpeg's muxer writes where the stream ends (from 0), not how long it lasts
    elif name == "mpegts" and container.size % _ts_packet_size(container.name):
        return 1
    if declared is None or not rate or declared - end < 0.5 / rate:
        return 0
    return max(round((declared - end) * rate), 1)


def _ts_packet_size(path: str) -> int:
    """The transport packet size of the MPEG-TS file ``path``: 188, or 192 (M2TS: a 4-byte time code first) or 204
    (Reed-Solomon bytes after) where the sync bytes say so."""
    with open(path, "rb") as file:
        head = file.read(5 * 204)
    for size, sync in ((188, 0), (192, 4), (204, 0)):
        if all(head[i * size + sync : i * size + sync + 1] == b"\x47" for i in range(5)):
            return size
    return 188


def _duration_tag(text: str) -> float | None:
    """Matroska's ``HH:MM:SS.nnnnnnnnn`` DURATION tag → seconds (None: absent or malformed)."""
    parts = text.split(":")
    try:
        return float(parts[0]) * 3600 + float(parts[1]) * 60 + float(parts[2]) if len(parts) == 3 else None
    except ValueError:
        return None


def _seek_before(container: Any, video: Any, seconds: float) -> None:
    """Seek to the keyframe at or before ``seconds``; where the container lands after it (MPEG-TS has no index and
    seeks by estimated positions), back to the beginning instead: slower, never missing frames."""
    target = round(seconds * av.time_base)
    container.seek(target)
    first = None
    for packet in container.demux(video):
        with contextlib.suppress(av.error.FFmpegError):
            first = next(iter(packet.decode()), None)
        if first is not None or not packet.size:
            break
    landed = first is not None and first.key_frame and first.pts is not None and first.time <= seconds
    video.codec_context.flush_buffers()  # the look ahead must not leave frames in the decoder
    if landed:
        container.seek(target)
    else:
        _rewind(container)


def _rewind(container: Any) -> None:
    """Back to the first packet. A stream format without a header or index (MPEG-TS, MPEG-PS: timestamps may jump)
    goes to byte 0, as a seek to its first timestamp can land on a later keyframe; others seek to that timestamp."""
    if container.format.flags & av.format.Flags.ts_discont.value:
        container.seek(0, unsupported_byte_offset=True)
    else:
        container.seek(container.start_time or 0)
