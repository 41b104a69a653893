"""Command line: restore the frames of a video.  ``python -m runtime.video IN OUT [options]`` (the ``[video]`` extra).

Frames stream through three stages joined by bounded queues — decode (thread) → restore (main thread) → encode and
mux (thread) — so memory does not depend on the clip's length. Windows of :data:`WINDOW_FRAMES` frames are restored
together (:meth:`Restorer.restore_frames`: their tiles share batches), so a GPU backend gets full batches.
``--raw WxH:FMT`` restores raw frames (a pipe between two ffmpeg processes). Exit codes: 0 every frame restored, 1 the
input failed (nothing written) or some packets were corrupt (skipped; the output holds every frame that decoded), 2
usage error, 130/143 interrupted (Ctrl-C / SIGTERM: no output and no temporary are left).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import io
import logging
import math
import os
import queue
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
from tqdm import tqdm

from common.cli import UsageError, exit_missing_extra, run_cli
from common.files import atomic_path
from runtime.cli import add_restore_options, failure_message, open_restorer, print_result, settings_from_args
from runtime.compare import CompareSettings, compare_images, render
from runtime.jpeg_quality import estimate_quality, read_quant_tables
from runtime.restorer import Restorer
from runtime.settings import RestoreSettings

log = logging.getLogger(__spec__.name)

try:
    import av
    from av.video.reformatter import Colorspace, Interpolation
except ModuleNotFoundError as e:  # a missing extra: one line, not a traceback
    exit_missing_extra(e, __name__, "video")

DESCRIPTION = """\
Remove JPEG compression artifacts from the frames of a video with WCDGAN (PyAV: any container and codec FFmpeg
decodes). Motion JPEG is restored best: the JPEG quality of every frame is estimated from its own quantisation
tables and, with a folder of per-quality models (--model DIR), picks the model per frame. Other codecs' artifacts
are not what the model was trained on (a note says so).

Output: lossless FFV1 (RGB, exactly the restored pixels) in OUT (.mkv), or --codec h264|h265|av1 --crf N (4:2:0,
in the input's YUV matrix and range). Kept: timestamps (variable frame rate too), frame rate, rotation metadata,
colour matrix, range, primaries and transfer, and every audio and subtitle stream (copied untouched). The YUV→RGB
conversion is the one the stream declares (BT.601/BT.709/BT.2020, limited/full range); where it declares none:
BT.709 from 720 lines up, BT.601 below, limited range (full for JPEG formats). More than 8 bits per sample stays
16-bit through the model (FFV1 48-bit RGB, or 10-bit YUV).

The output is written to a temporary beside OUT and renamed at the end: an interrupted run leaves nothing. The
input is never modified; an existing OUT is kept unless -f. Corrupt packets are skipped, counted and reported.

Pipe mode: --raw WxH:FMT reads raw frames (FMT rgb24, rgb48le, gray or gray16le) from IN and writes the restored
frames to OUT, - being stdin/stdout, e.g.
  ffmpeg -i in.avi -f rawvideo -pix_fmt rgb24 - | python -m runtime.video --raw 640x480:rgb24 - - |
    ffmpeg -f rawvideo -pix_fmt rgb24 -s 640x480 -r 25 -i - -c:v ffv1 out.mkv
"""

QUEUE_FRAMES = 4  # frames waiting between two stages: enough to overlap them, little memory at any resolution
WINDOW_FRAMES = 4  # frames restored together: a few frames' tiles fill a GPU batch; memory stays a few frames
COMPARE_SUFFIX = "_compare"  # --compare's default clip: <OUT stem><this><OUT suffix>
_CLIP_LAYOUT = CompareSettings(crops=0)  # the side-by-side clip: labelled columns, no zoomed crops (they would jump)
JPEG_CODECS = ("mjpeg", "mjpegb")  # DCT JPEG frames, with quantisation tables
HD_LINES = 720  # a stream that declares no matrix: BT.709 from this height up, BT.601 below (players' convention)
_POLL_S = 0.1
_JOIN_S = 30.0  # after a failure or interrupt: how long the other stages may take to finish their current frame
# swscale's default YUV→RGB path is off by up to 2 levels (Y=75 limited BT.709 gray: 67 instead of 69); the full-chroma
# paths with accurate rounding are exact to rounding
_INTERPOLATION = (
    Interpolation.BILINEAR | Interpolation.ACCURATE_RND | Interpolation.FULL_CHR_H_INT | Interpolation.FULL_CHR_H_INP
)
# AVColorSpace codes → the swscale matrix implementing them (BT.470BG and SMPTE 170M are both BT.601)
_MATRICES = {1: Colorspace.ITU709, 4: Colorspace.FCC, 5: Colorspace.ITU601, 6: Colorspace.ITU601,
             7: Colorspace.SMPTE240M, 9: Colorspace.BT2020, 10: Colorspace.BT2020}  # fmt: skip
_BT709, _BT601, _RGB = 1, 6, 0  # AVColorSpace codes
_MATRIX_NAMES = {0: "RGB", 1: "BT.709", 4: "FCC", 5: "BT.601", 6: "BT.601", 7: "SMPTE 240M", 9: "BT.2020",
                 10: "BT.2020"}  # fmt: skip
_LIMITED, _FULL = 1, 2  # AVColorRange codes


class VideoError(ValueError):
    """A video cannot be read or written; the message says why, for the user."""


# -- colour ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Colour:
    """How a stream's samples map to RGB: ``matrix`` (AVColorSpace: 0 RGB, 1 BT.709, 5/6 BT.601, 9 BT.2020 …),
    ``range`` (AVColorRange: 1 limited, 2 full), the ``primaries`` and ``trc`` tags (carried to the output, never
    converted) and whether matrix or range were ``guessed`` (the stream leaves them unspecified)."""

    matrix: int
    range: int
    primaries: int
    trc: int
    guessed: bool = False


def frame_colour(frame: av.VideoFrame) -> Colour:
    """The colour a decoded frame declares, with the rule of the module's --help where it declares none."""
    primaries, trc = int(frame.color_primaries), int(frame.color_trc)
    if frame.format.is_rgb:
        return Colour(_RGB, _FULL, primaries, trc)
    matrix, value_range = int(frame.colorspace), int(frame.color_range)
    guessed = matrix not in _MATRICES or value_range not in (_LIMITED, _FULL)
    if matrix not in _MATRICES:
        matrix = _BT709 if frame.height >= HD_LINES else _BT601
    if value_range not in (_LIMITED, _FULL):
        value_range = _FULL if frame.format.name.startswith("yuvj") else _LIMITED
    return Colour(matrix, value_range, primaries, trc, guessed)


def is_deep(frame: av.VideoFrame) -> bool:
    """Whether the frame has more than 8 bits per sample (restored as 16-bit RGB)."""
    return max(c.bits for c in frame.format.components) > 8


def frame_to_rgb(frame: av.VideoFrame, colour: Colour, deep: bool = False) -> np.ndarray:
    """H×W×3 RGB of a decoded frame through ``colour``'s matrix and range: uint8, or uint16 when ``deep``."""
    rgb = frame.reformat(
        format="rgb48le" if deep else "rgb24", src_colorspace=_MATRICES.get(colour.matrix),
        src_color_range=colour.range, interpolation=_INTERPOLATION,
    )  # fmt: skip
    return rgb.to_ndarray()


def rgb_to_frame(rgb: np.ndarray, pix_fmt: str, colour: Colour) -> av.VideoFrame:
    """An encoder's frame of ``pix_fmt`` from H×W×3 uint8/uint16 RGB, through ``colour``'s matrix and range (RGB
    formats: exact)."""
    frame = av.VideoFrame.from_ndarray(rgb, format="rgb48le" if rgb.dtype == np.uint16 else "rgb24")
    if av.VideoFormat(pix_fmt).is_rgb:
        return frame.reformat(format=pix_fmt)
    return frame.reformat(
        format=pix_fmt, dst_colorspace=_MATRICES[colour.matrix], dst_color_range=colour.range,
        interpolation=_INTERPOLATION,
    )  # fmt: skip


# -- output codecs ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Codec:
    """An output codec: its encoder, the pixel formats for 8-bit and deeper sources, the default ``crf``."""

    encoder: str
    pix_fmt: str
    deep_pix_fmt: str
    crf: int | None = None  # None: lossless, no --crf
    crf_max: int = 51
    suffixes: tuple[str, ...] = (".mkv", ".mp4", ".mov")


CODECS = {
    "ffv1": Codec("ffv1", "bgr0", "rgb48le", suffixes=(".mkv", ".nut", ".avi")),
    "h264": Codec("libx264", "yuv420p", "yuv420p10le", 18),
    "h265": Codec("libx265", "yuv420p", "yuv420p10le", 20),
    "av1": Codec("libsvtav1", "yuv420p", "yuv420p10le", 30, crf_max=63),
}


# -- the input -------------------------------------------------------------------------------------------------------


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


def probe(path: Path, span: Span = Span()) -> Clip:
    """Open ``path``, decode its first video frame at ``span.start``; raise VideoError if it has none."""
    try:
        with av.open(str(path)) as container:
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
            )  # fmt: skip
    except av.error.FFmpegError as e:
        raise VideoError(f"{path}: cannot read as a video ({e.strerror or e})") from None


def _expected_frames(container: Any, video: Any, rate: Fraction | None, span: Span) -> int | None:
    seconds = container.duration / av.time_base if container.duration else None
    if span.duration is not None:
        seconds = min(seconds or math.inf, span.start + span.duration)
    if seconds is None or not rate:
        return video.frames or None
    return max(round((seconds - span.start) * rate), 1)


# -- the pipeline ----------------------------------------------------------------------------------------------------


@dataclass
class Stats:
    """What a run did; the ``*_s`` are busy seconds of each stage (the stages overlap: they add up to more than
    ``wall_s``)."""

    frames: int = 0
    corrupt: int = 0  # packets (raw mode: trailing partial frames) that could not be decoded
    qualities: collections.Counter = field(default_factory=collections.Counter)  # estimated JPEG quality → frames
    models: collections.Counter = field(default_factory=collections.Counter)  # model name → frames
    decode_s: float = 0.0
    restore_s: float = 0.0
    encode_s: float = 0.0
    wall_s: float = 0.0


@dataclass(frozen=True)
class Remux:
    """A packet of the input's stream ``index``, copied untouched (the index is kept here: the input's stream object
    is gone once the decoding thread closes the input)."""

    index: int
    packet: Any


@dataclass(frozen=True)
class Frame:
    """One frame on its way: H×W×3 (raw gray: H×W) ``pixels``, its ``pts`` in the stream's time base, the JPEG
    quality estimated from its packet (None: not a JPEG)."""

    pixels: np.ndarray
    pts: int
    quality: int | None = None


class _Stopped(Exception):
    """Raised in a stage when another stage failed or the run was interrupted."""


_END = object()


class _Pipe:
    """A bounded queue from one thread to another. ``fail(error)`` makes the other side's next ``put`` or iteration
    raise ``error``: a failing stage stops the whole pipeline instead of leaving a thread waiting."""

    def __init__(self, depth: int = QUEUE_FRAMES) -> None:
        self._queue: queue.Queue = queue.Queue(depth)
        self._error: BaseException | None = None

    def put(self, item: object) -> None:
        while True:
            self.check()
            with contextlib.suppress(queue.Full):
                self._queue.put(item, timeout=_POLL_S)
                return

    def close(self) -> None:
        self.put(_END)

    def fail(self, error: BaseException) -> None:
        self._error = self._error or error

    def check(self) -> None:
        if self._error is not None:
            raise self._error

    def __iter__(self) -> Iterator[Any]:
        while True:
            self.check()
            try:
                item = self._queue.get(timeout=_POLL_S)
            except queue.Empty:
                continue
            if item is _END:
                return
            yield item


def _start(name: str, work: Callable[[], None], pipe: _Pipe) -> threading.Thread:
    """Run ``work()`` in a thread whose exception fails ``pipe``."""

    def run() -> None:
        try:
            work()
        except BaseException as e:
            pipe.fail(e)

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    return thread


def run_pipeline(
    items: Iterator[Frame | Remux], restore: Callable[[list[Frame]], list[Frame]],
    write: Callable[[Iterable[Any]], None], stats: Stats, progress: tqdm | None = None,
) -> None:  # fmt: skip
    """Decode (``items``, in a thread) → ``restore`` windows of up to :data:`WINDOW_FRAMES` :class:`Frame` s (here;
    it returns them restored, in order) → ``write`` (in a thread, given frames and other items in order). Returns
    when ``write`` has returned; re-raises the first stage's error. On any error or interrupt both threads are
    stopped and joined before this returns."""
    decoded, restored = _Pipe(), _Pipe()
    window: list[Frame | Remux] = []  # frames to restore together, and the items between them

    def flush() -> None:
        frames = [item for item in window if isinstance(item, Frame)]
        t0 = time.perf_counter()
        done = iter(restore(frames) if frames else [])
        stats.restore_s += time.perf_counter() - t0
        stats.frames += len(frames)
        if progress is not None:
            progress.update(len(frames))
        for item in window:
            restored.put(next(done) if isinstance(item, Frame) else item)
        window.clear()

    def read() -> None:
        for item in items:
            decoded.put(item)
        decoded.close()

    def encode() -> None:
        write(restored)

    start = time.perf_counter()
    reader, writer = _start("decode", read, decoded), _start("encode", encode, restored)
    try:
        frames = 0
        for item in decoded:
            window.append(item)
            frames += isinstance(item, Frame)
            if frames == WINDOW_FRAMES:
                flush()
                frames = 0
        flush()
        restored.close()
        writer.join()
        restored.check()
    except BaseException:
        decoded.fail(_Stopped())
        restored.fail(_Stopped())
        raise
    finally:  # bounded: a thread blocked on a pipe that nobody closes must not hold the exit (daemon threads)
        reader.join(_JOIN_S)
        writer.join(_JOIN_S)
        stats.wall_s = time.perf_counter() - start


def _timed(items: Iterator[Any], stats: Stats, attribute: str) -> Iterator[Any]:
    """``items``, adding the time spent producing each to ``stats.<attribute>``."""
    while True:
        t0 = time.perf_counter()
        item = next(items, _END)
        setattr(stats, attribute, getattr(stats, attribute) + time.perf_counter() - t0)
        if item is _END:
            return
        yield item


# -- video files -----------------------------------------------------------------------------------------------------


def packet_quality(packet: Any) -> int | None:
    """IJG quality estimated from a Motion-JPEG packet's quantisation tables (None: no tables or not a JPEG)."""
    try:
        tables = read_quant_tables(io.BytesIO(bytes(packet)))
    except ValueError:
        return None
    found = estimate_quality(tables) if tables else None
    return found.quality if found else None


def _decoded(container: Any, video: Any, span: Span, stats: Stats, copied: tuple = ()) -> Iterator[tuple[Any, Any]]:
    """``(packet of a copied stream, None)`` and ``(JPEG quality, decoded frame)`` in demux order, within ``span``;
    corrupt video packets are counted in ``stats.corrupt`` and skipped."""
    if span.start:
        _seek_before(container, video, span.start)  # frames before start are decoded and skipped
    qualities: dict[int | None, int | None] = {}  # packet pts → quality (intra-only MJPEG: frame pts = packet pts)
    jpeg = video.codec_context.name in JPEG_CODECS
    for packet in container.demux(video, *copied):
        if packet.stream is not video:
            if packet.size and span.contains(float((packet.pts if packet.pts is not None else 0) * packet.time_base)):
                yield packet, None
            continue
        if jpeg and packet.size:
            qualities[packet.pts] = packet_quality(packet)
        try:
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
                yield qualities.pop(frame.pts, None), frame


def _seek_before(container: Any, video: Any, seconds: float) -> None:
    """Seek to the keyframe at or before ``seconds``; where the container lands after it (MPEG-TS has no index and
    seeks by bytes), to the beginning instead: slower, never missing frames."""
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
    container.seek(target if landed else (container.start_time or 0))


def read_frames(path: Path, clip: Clip, span: Span, stats: Stats) -> Iterator[Frame | Remux]:
    """Restorable :class:`Frame` s and the copied streams' packets of ``path`` in demux order, timestamps shifted so
    that ``span`` starts at 0 (unchanged for a whole clip)."""
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        copied = tuple(container.streams[i] for i in clip.copied)
        span = span.from_origin(container)
        step = round(1 / (clip.rate * clip.time_base)) if clip.rate else 1  # for frames without a timestamp
        offset, last_pts = span.offset(clip.time_base), None
        for found, frame in _decoded(container, video, span, stats, copied):
            if frame is None:
                packet, shift = found, span.offset(found.time_base)
                if shift:
                    packet.pts = None if packet.pts is None else packet.pts - shift
                    packet.dts = None if packet.dts is None else packet.dts - shift
                yield Remux(packet.stream.index, packet)
                continue
            pts = frame.pts - offset if frame.pts is not None else (0 if last_pts is None else last_pts + step)
            last_pts = pts
            yield Frame(frame_to_rgb(frame, clip.colour, clip.deep), pts, found)


def write_video(path: Path, clip: Clip, codec: Codec, crf: int | None, source: Path, items: Iterable[Any],
                stats: Stats) -> None:  # fmt: skip
    """Encode restored frames and remux the copied packets into ``path`` (format from its suffix); flushes the encoder
    only when ``items`` ends normally."""
    with av.open(str(source)) as template, av.open(str(path), "w") as out:
        stream = out.add_stream(codec.encoder, rate=clip.rate or 25, options={"crf": str(crf)} if crf else {})
        pix_fmt = codec.deep_pix_fmt if clip.deep else codec.pix_fmt
        stream.width, stream.height, stream.pix_fmt = clip.width, clip.height, pix_fmt
        stream.time_base = stream.codec_context.time_base = clip.time_base
        ctx = stream.codec_context
        rgb_out = av.VideoFormat(pix_fmt).is_rgb
        colour = replace(clip.colour, matrix=_RGB, range=_FULL) if rgb_out else clip.colour
        ctx.colorspace, ctx.color_range = colour.matrix, colour.range
        ctx.color_primaries, ctx.color_trc = colour.primaries, colour.trc
        if clip.rotation:
            stream.set_display_rotation(clip.rotation)
        remux = {i: out.add_stream_from_template(template.streams[i]) for i in clip.copied}
        for item in items:
            t0 = time.perf_counter()
            if isinstance(item, Frame):
                frame = rgb_to_frame(item.pixels, pix_fmt, colour)
                frame.pts, frame.time_base = item.pts, clip.time_base
                out.mux(stream.encode(frame))
            else:
                item.packet.stream = remux[item.index]
                out.mux(item.packet)
            stats.encode_s += time.perf_counter() - t0
        t0 = time.perf_counter()
        out.mux(stream.encode(None))
        stats.encode_s += time.perf_counter() - t0


@dataclass(frozen=True)
class VideoSettings:
    """How :func:`restore_video` restores: output ``codec`` (a :data:`CODECS` key) and ``crf`` (None: the codec's
    default), the ``span``, a forced JPEG ``quality`` for the model choice (None: per frame, estimated)."""

    codec: str = "ffv1"
    crf: int | None = None
    span: Span = Span()
    quality: int | None = None


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
        pixels = restorer.restore_frames([frame.pixels for frame in frames], qualities)
        return [replace(frame, pixels=p) for frame, p in zip(frames, pixels, strict=True)]

    items = _timed(read_frames(src, clip, settings.span, stats), stats, "decode_s")
    crf = settings.crf if settings.crf is not None else codec.crf
    with tqdm(total=clip.frames, unit="frame", disable=None if progress else True, leave=False) as bar:
        run_pipeline(items, restore, lambda out: write_video(dst, clip, codec, crf, src, out, stats), stats, bar)
    if not stats.frames:
        raise VideoError(f"{src}: no frame could be decoded ({stats.corrupt} corrupt packets)")
    return stats


# -- the side-by-side clip (--compare) --------------------------------------------------------------------------------


def side_by_side(before: np.ndarray, after: np.ndarray, label: str) -> np.ndarray:
    """``before`` (labelled ``label``) | ``after`` (labelled "restored") in the columns of the image compare's picture
    (:func:`runtime.compare.render`, without crops): H'×W'×3 uint8 RGB, one size for every frame of a clip."""
    return render(compare_images(before, after, None, label, _CLIP_LAYOUT), _CLIP_LAYOUT)


def write_compare(src: Path, restored: Path, target: Path, clip: Clip, settings: VideoSettings) -> int:
    """Write the side-by-side clip of ``src`` (``settings.span`` of it) and its restoration — read back from the
    written ``restored``, so it shows what was written — into ``target`` with ``restored``'s codec and crf, timestamps
    and copied streams; returns the frames written. VideoError when ``restored`` has fewer frames."""
    blank = np.zeros((clip.height, clip.width, 3), np.uint8)
    size = side_by_side(blank, blank, "").shape[:2]
    shown = replace(clip, height=size[0], width=size[1], deep=False)
    codec = CODECS[settings.codec]
    stats = Stats()
    with av.open(str(restored)) as output:
        after = (frame_to_rgb(f, frame_colour(f), clip.deep) for f in output.decode(video=0))

        def pairs() -> Iterator[Frame | Remux]:
            for item in read_frames(src, clip, settings.span, stats):
                if isinstance(item, Frame):
                    right = next(after, None)
                    if right is None:
                        raise VideoError(f"{restored}: has fewer frames than {src}")
                    label = f"JPEG q{item.quality}" if item.quality else "input"
                    item = replace(item, pixels=side_by_side(item.pixels, right, label))
                    stats.frames += 1
                yield item

        crf = settings.crf if settings.crf is not None else codec.crf
        write_video(target, shown, codec, crf, src, pairs(), stats)
    return stats.frames


# -- raw frames ------------------------------------------------------------------------------------------------------

RAW_FORMATS = {"rgb24": (3, np.dtype("u1")), "rgb48le": (3, np.dtype("<u2")), "gray": (1, np.dtype("u1")),
               "gray16le": (1, np.dtype("<u2"))}  # fmt: skip


@dataclass(frozen=True)
class RawFormat:
    """Raw frames of ``width`` × ``height`` in ``pix_fmt`` (a :data:`RAW_FORMATS` key, FFmpeg's name)."""

    width: int
    height: int
    pix_fmt: str

    @property
    def shape(self) -> tuple[int, ...]:
        channels = RAW_FORMATS[self.pix_fmt][0]
        return (self.height, self.width) if channels == 1 else (self.height, self.width, channels)

    @property
    def frame_bytes(self) -> int:
        return math.prod(self.shape) * RAW_FORMATS[self.pix_fmt][1].itemsize


def raw_format(text: str) -> RawFormat:
    """``WxH:FMT`` (e.g. ``640x480:rgb24``) → RawFormat; argparse.ArgumentTypeError when malformed."""
    size, _, pix_fmt = text.partition(":")
    try:
        width, height = (int(v) for v in size.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WxH:FMT (e.g. 640x480:rgb24), got {text!r}") from None
    if pix_fmt not in RAW_FORMATS or min(width, height) < 1:
        raise argparse.ArgumentTypeError(f"expected WxH:FMT with FMT one of {', '.join(RAW_FORMATS)}, got {text!r}")
    return RawFormat(width, height, pix_fmt)


def read_raw(stream: BinaryIO, fmt: RawFormat, stats: Stats) -> Iterator[Frame]:
    """Frames of ``fmt`` from ``stream`` until its end; a partial last frame is counted in ``stats.corrupt``."""
    index = 0
    while data := _read_up_to(stream, fmt.frame_bytes):
        if len(data) < fmt.frame_bytes:
            stats.corrupt += 1
            log.warning("raw input ends with a partial frame (%d of %d bytes): dropped", len(data), fmt.frame_bytes)
            return
        dtype = RAW_FORMATS[fmt.pix_fmt][1]
        yield Frame(np.frombuffer(data, dtype).reshape(fmt.shape).astype(dtype.newbyteorder("="), copy=False), index)
        index += 1


def _read_up_to(stream: BinaryIO, size: int) -> bytes:
    """``size`` bytes, fewer only at the end of ``stream`` (pipes return short reads)."""
    chunks, left = [], size
    while left and (chunk := stream.read(left)):
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def write_raw(stream: BinaryIO, fmt: RawFormat, items: Iterable[Frame], stats: Stats) -> None:
    dtype = RAW_FORMATS[fmt.pix_fmt][1]
    for frame in items:
        t0 = time.perf_counter()
        stream.write(frame.pixels.astype(dtype, copy=False).tobytes())
        stats.encode_s += time.perf_counter() - t0
    stream.flush()


# -- command line ----------------------------------------------------------------------------------------------------


def seconds_arg(text: str) -> float:
    """``90``, ``1:30`` or ``0:01:30.5`` → seconds (≥ 0)."""
    try:
        value = sum(float(part) * 60**i for i, part in enumerate(reversed(text.split(":"))))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds or [HH:]MM:SS, got {text!r}") from None
    if value < 0 or text.count(":") > 2 or not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected seconds or [HH:]MM:SS ≥ 0, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m runtime.video", description=DESCRIPTION,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("input", metavar="IN", help="a video file; with --raw a file of raw frames or - (stdin)")
    p.add_argument("output", metavar="OUT", help="the output video (.mkv for FFV1; .mkv/.mp4/.mov for the others); "
                   "with --raw a file or - (stdout)")  # fmt: skip
    p.add_argument("--codec", choices=list(CODECS), default="ffv1",
                   help="output codec: ffv1 = lossless RGB (default), else 4:2:0 YUV at --crf")  # fmt: skip
    p.add_argument("--crf", type=int, help="quality of h264/h265/av1 (lower: better; default "
                   + ", ".join(f"{k} {c.crf}" for k, c in CODECS.items() if c.crf is not None) + ")")  # fmt: skip
    p.add_argument("--start", type=seconds_arg, default=0.0, help="restore from this time (seconds or [HH:]MM:SS)")
    p.add_argument("--duration", type=seconds_arg, help="how long to restore (default: to the end)")
    p.add_argument("--compare", nargs="?", const="", metavar="FILE",
                   help="also write a side-by-side clip: the input | the restoration, labelled (the JPEG quality of "
                   "each frame), read back from OUT, with OUT's codec, timestamps and audio, into FILE (default: "
                   f"OUT's name + {COMPARE_SUFFIX}); its path is printed. Put it after IN OUT, or write "
                   "--compare=FILE")  # fmt: skip
    p.add_argument("--raw", type=raw_format, metavar="WxH:FMT",
                   help=f"pipe mode: raw frames in and out, FMT one of {', '.join(RAW_FORMATS)}")  # fmt: skip
    add_restore_options(p, image_output=False)  # a video's container follows OUT's suffix
    p.add_argument("--threads", type=int, help="CPU threads for ort-cpu (default: one per core)")
    p.add_argument("--device-id", type=int, default=0, help="GPU ordinal (default 0)")
    p.add_argument("-v", "--verbose", action="store_true", help="also say why backends were skipped")
    return p


def main(argv: list[str] | None = None) -> int:
    return run_cli(run, build_parser().parse_args(argv))


def run(args: argparse.Namespace) -> int:
    settings = settings_from_args(args, device_id=args.device_id)
    check_video_options(args)
    if args.raw:
        return run_raw(args, settings)
    src, dst = Path(args.input), Path(args.output)
    span = Span(args.start, args.duration)
    try:
        clip = probe(src, span)
    except VideoError as e:
        log.error("error: %s", e)
        return 1
    if clip.width * clip.height > args.max_pixels * 1e6:
        log.error("error: %s: %d×%d frames are over --max-pixels %g MP", src, clip.width, clip.height, args.max_pixels)
        return 1
    if CODECS[args.codec].crf is not None and (clip.width % 2 or clip.height % 2):
        raise UsageError(f"{args.codec} stores 4:2:0 colour, which needs an even width and height (this video is "
                         f"{clip.width}×{clip.height}); use the default lossless FFV1")  # fmt: skip
    target = compare_target(args)
    video = VideoSettings(args.codec, args.crf, span, args.quality)
    with open_restorer_logged(args, settings) as restorer:
        describe(src, clip)
        try:
            with atomic_path(dst) as tmp:
                stats = restore_video(src, tmp, restorer, video, clip, progress=not args.quiet)
        except (VideoError, av.error.FFmpegError, OSError) as e:
            log.error("error: %s", e if str(src) in str(e) else f"{src} → {dst}: {e}")
            return 1
        except Exception as e:  # the backend failing on a frame (NaN output, out of memory): one line, no traceback
            log.error("error: %s", failure_message(src, e))
            return 1
    report(dst, stats, args.quiet)
    if target is not None:
        try:
            with atomic_path(target) as tmp:
                write_compare(src, dst, tmp, clip, video)
        except (VideoError, av.error.FFmpegError, OSError) as e:
            log.error("error: %s: the side-by-side clip failed (%s)", target, e)
            return 1
        if not args.quiet:
            print_result(f"compare clip: {target}")
    return 1 if stats.corrupt else 0


def compare_target(args: argparse.Namespace) -> Path | None:
    """Where --compare writes (None without it): FILE, or OUT's name + :data:`COMPARE_SUFFIX`; UsageError when that
    cannot be written (as for OUT) or is OUT."""
    if args.compare is None:
        return None
    dst = Path(args.output)
    target = Path(args.compare) if args.compare else dst.with_name(dst.stem + COMPARE_SUFFIX + dst.suffix)
    if target.suffix.lower() not in CODECS[args.codec].suffixes:
        raise UsageError(f"--compare {target}: {args.codec} is written to {'/'.join(CODECS[args.codec].suffixes)} "
                         "files")  # fmt: skip
    if target.resolve() == dst.resolve():
        raise UsageError(f"--compare {target}: is OUT; the side-by-side clip needs a file of its own")
    _check_output(target, args)
    return target


def check_video_options(args: argparse.Namespace) -> None:
    """Raise UsageError for options that cannot work, before a model is loaded or a frame decoded."""
    if args.duration is not None and args.duration <= 0:
        raise UsageError("--duration must be positive")
    codec = CODECS[args.codec]
    if args.crf is not None and (codec.crf is None or not 0 <= args.crf <= codec.crf_max):
        raise UsageError("--crf goes with --codec h264|h265 (0..51) or av1 (0..63)")
    if args.raw:
        if args.start or args.duration or args.codec != "ffv1" or args.compare is not None:
            raise UsageError("--start, --duration, --codec and --compare are for video files, not --raw")
        if args.output != "-":
            _check_output(Path(args.output), args)
        return
    src, dst = Path(args.input), Path(args.output)
    if not src.is_file():
        raise UsageError(f"{src}: no such file")
    if dst.suffix.lower() not in CODECS[args.codec].suffixes:
        raise UsageError(f"{dst}: {args.codec} is written to {'/'.join(CODECS[args.codec].suffixes)} files"
                         + (" (or choose --codec h264|h265|av1)" if args.codec == "ffv1" else ""))  # fmt: skip
    _check_output(dst, args)


def _check_output(dst: Path, args: argparse.Namespace) -> None:
    if args.input != "-" and dst.resolve() == Path(args.input).resolve():
        raise UsageError(f"{dst}: is the input; refusing to overwrite an input")
    if dst.exists() and not args.overwrite:
        raise UsageError(f"{dst}: exists (use -f/--overwrite)")
    if dst.is_dir():
        raise UsageError(f"{dst}: is a folder; OUT names the output file")


def open_restorer_logged(args: argparse.Namespace, settings: RestoreSettings) -> Restorer:
    """:func:`runtime.cli.open_restorer` (a model or backend that cannot load: UsageError), logging the backend."""
    restorer = open_restorer(args.model, settings)
    reasons = restorer.skipped_backends if args.verbose else restorer.notable_skips
    log.info("backend: %s%s", restorer.backend_name, "".join(f"\n  ({s})" for s in reasons))
    return restorer


def describe(src: Path, clip: Clip) -> None:
    """Log what will be restored, and the note for codecs the model was not trained for."""
    streams = f", {len(clip.copied)} audio/subtitle stream(s) copied" if clip.copied else ""
    c = clip.colour
    colour = "RGB" if c.matrix == _RGB else (f"{_MATRIX_NAMES[c.matrix]} {'full' if c.range == _FULL else 'limited'} "
                                             f"range{' (not declared: assumed)' if c.guessed else ''}")  # fmt: skip
    log.info("%s: %s %d×%d, %s frames at %s fps, %s%s", src, clip.codec, clip.width, clip.height,
             clip.frames or "?", f"{float(clip.rate):.3g}" if clip.rate else "?", colour, streams)  # fmt: skip
    if not clip.is_jpeg:
        log.info("note: %s is not JPEG-based; the model was trained on JPEG artifacts, so it may do less (or smooth "
                 "detail) on this codec's", clip.codec)  # fmt: skip


def report(dst: Path, stats: Stats, quiet: bool) -> None:
    """The run's result line (output, frames, speed, stage times) on stdout — logged instead when the frames went to
    stdout (pipe mode), not at all when ``quiet`` — and the log of JPEG qualities, models and corrupt packets."""
    busy = f"decode {stats.decode_s:.1f} s, restore {stats.restore_s:.1f} s, encode {stats.encode_s:.1f} s"
    rate = stats.frames / max(stats.wall_s, 1e-9)
    line = f"{dst}: {stats.frames} frames in {stats.wall_s:.1f} s ({rate:.2f} frames/s; {busy})"
    if str(dst) == "-":
        log.info("%s", line)
    elif not quiet:
        print_result(line)
    qualities = sorted(q for q in stats.qualities if q is not None)
    if qualities:
        each = sorted(stats.qualities.elements(), key=lambda q: q or 0)
        log.info("JPEG quality per frame: q%d–q%d (median q%d)", qualities[0], qualities[-1], each[len(each) // 2] or 0)
    if len(stats.models) > 1:
        log.info("models: %s", ", ".join(f"{name} ({n} frames)" for name, n in stats.models.most_common()))
    if stats.corrupt:
        log.error("error: %d corrupt packet(s) skipped; the output holds the %d frames that decoded", stats.corrupt,
                  stats.frames)  # fmt: skip


def run_raw(args: argparse.Namespace, settings: RestoreSettings) -> int:
    """Pipe mode: raw frames from IN to OUT ('-': stdin, stdout), each restored with --quality's model choice."""
    fmt: RawFormat = args.raw
    source = sys.stdin.buffer if args.input == "-" else _open_input(args.input)
    with contextlib.closing(source), open_restorer_logged(args, settings) as restorer:
        return _restore_raw(args, fmt, source, restorer)


def _restore_raw(args: argparse.Namespace, fmt: RawFormat, source: BinaryIO, restorer: Restorer) -> int:
    """Pipe mode's work: the frames of ``source`` restored into OUT; 1 (logged) when it fails."""
    stats = Stats()

    def restore(frames: list[Frame]) -> list[Frame]:
        pixels = restorer.restore_frames([frame.pixels for frame in frames], [args.quality] * len(frames))
        return [replace(frame, pixels=p) for frame, p in zip(frames, pixels, strict=True)]

    try:  # around the output's temporary: a failed run leaves no partial file
        with contextlib.ExitStack() as stack:
            if args.output == "-":
                target = sys.stdout.buffer
            else:
                target = stack.enter_context(open(stack.enter_context(atomic_path(args.output)), "wb"))
            items = _timed(read_raw(source, fmt, stats), stats, "decode_s")
            bar = stack.enter_context(tqdm(unit="frame", disable=True if args.quiet else None, leave=False))
            run_pipeline(items, restore, lambda frames: write_raw(target, fmt, frames, stats), stats, bar)
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error when Python flushes it
        log.error("error: the reader of the output closed it after %d frames", stats.frames)
        return 1
    except Exception as e:  # as in run(): one line, no traceback
        log.error("error: %s", failure_message(Path(args.input), e))
        return 1
    report(Path(args.output), stats, args.quiet)
    return 1 if stats.corrupt or not stats.frames else 0


def _open_input(name: str) -> BinaryIO:
    try:
        return open(name, "rb")
    except OSError as e:
        raise UsageError(f"{name}: cannot read ({e.strerror or e})") from None


if __name__ == "__main__":
    sys.exit(main())
