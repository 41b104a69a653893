"""Writing a video file: the output codecs (:data:`CODECS`) and :func:`write_video`, which encodes restored frames and
remuxes the copied audio and subtitle packets with the input's timestamps, frame rate, rotation and colour tags.

Frames in are H×W×3 RGB, uint8 or uint16 (deep sources), converted to the codec's pixel format through the clip's
matrix and range (:mod:`runtime.video.colour`). Runs in the pipeline's encode thread.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av

from runtime.video.colour import rgb_to_frame
from runtime.video.container import Clip, Remux, open_media
from runtime.video.pipeline import Frame, Stats

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Codec:
    """An output codec: its encoder, the pixel formats for 8-bit and deeper sources, the default ``crf``."""

    encoder: str
    pix_fmt: str
    deep_pix_fmt: str
    crf: int | None = None  # None: lossless, no --crf
    crf_max: int = 51
    suffixes: tuple[str, ...] = (".mkv", ".mp4", ".mov")
    lossless: tuple[tuple[str, str], ...] = ()  # the encoder's options for --crf 0 where it has a lossless mode

    def options(self, crf: int | None) -> dict[str, str]:
        """The encoder's options for ``crf`` (None: none, the encoder's own default); crf 0 is lossless where the
        encoder can be (H.264, H.265: YUV stored exactly), else its best quality."""
        if crf is None:
            return {}
        return dict(self.lossless) if crf == 0 and self.lossless else {"crf": str(crf)}


CODECS = {
    "ffv1": Codec("ffv1", "bgr0", "rgb48le", suffixes=(".mkv", ".nut", ".avi")),
    "h264": Codec("libx264", "yuv420p", "yuv420p10le", 18, lossless=(("qp", "0"),)),  # crf 0 is not, above 8 bits
    "h265": Codec("libx265", "yuv420p", "yuv420p10le", 20, lossless=(("x265-params", "lossless=1"),)),
    "av1": Codec("libsvtav1", "yuv420p", "yuv420p10le", 30, crf_max=63),
}


def write_video(path: Path, clip: Clip, codec: Codec, crf: int | None, source: Path, items: Iterable[Frame | Remux],
                stats: Stats) -> None:  # fmt: skip
    """Encode restored frames and remux the copied packets into ``path`` (format from its suffix; the copied streams'
    parameters from ``source``); flushes the encoder only when ``items`` ends normally."""
    with open_media(source) as template, open_media(path, "w") as out:
        stream = out.add_stream(codec.encoder, rate=clip.rate or 25, options=codec.options(crf))
        pix_fmt = codec.deep_pix_fmt if clip.deep else codec.pix_fmt
        stream.width, stream.height, stream.pix_fmt = clip.width, clip.height, pix_fmt
        stream.time_base = stream.codec_context.time_base = clip.time_base
        ctx = stream.codec_context
        colour = clip.colour.as_rgb() if av.VideoFormat(pix_fmt).is_rgb else clip.colour.as_yuv(clip.height)
        ctx.colorspace, ctx.color_range = colour.matrix, colour.range
        ctx.color_primaries, ctx.color_trc = colour.primaries, colour.trc
        if clip.rotation:
            stream.set_display_rotation(clip.rotation)
        remux = {i: _output_stream(out, template.streams[i]) for i in clip.copied}
        for item in items:
            t0 = time.perf_counter()
            if isinstance(item, Frame):
                frame = rgb_to_frame(item.pixels, pix_fmt, colour)
                frame.pts, frame.time_base = item.pts, clip.time_base
                out.mux(stream.encode(frame))
            elif isinstance(remux[item.index], _Transcoded):
                out.mux(remux[item.index].encode(item.packet))
            else:
                item.packet.stream = remux[item.index]
                out.mux(item.packet)
            stats.encode_s += time.perf_counter() - t0
        t0 = time.perf_counter()
        out.mux(stream.encode(None))
        for copied in remux.values():
            if isinstance(copied, _Transcoded):
                out.mux(copied.encode(None))
        stats.encode_s += time.perf_counter() - t0


_LAYOUTS = {1: "mono", 2: "stereo", 3: "2.1", 4: "4.0", 5: "5.0", 6: "5.1", 7: "6.1", 8: "7.1"}  # FFmpeg's defaults


@dataclass(frozen=True)
class _Transcoded:
    """A copied audio stream re-encoded: its ``decoder`` (the input stream's) and the output ``stream``."""

    decoder: Any
    stream: Any

    def encode(self, packet: Any | None) -> list:
        """The output packets for an input ``packet`` (None: flush the encoder)."""
        if packet is None:
            return self.stream.encode(None)
        return [p for frame in self.decoder.decode(packet) for p in self.stream.encode(frame)]


def _output_stream(out: Any, source: Any) -> Any:
    """The stream of ``out`` that ``source`` (a copied stream of the input) goes to: a copy of it, packet for packet —
    but PCM audio in MP4 becomes AAC (:class:`_Transcoded`, with a note): MP4 stores PCM as ``ipcm``, which browsers
    and many players refuse."""
    ctx = source.codec_context
    if out.format.name != "mp4" or source.type != "audio" or not ctx.name.startswith("pcm_"):
        return out.add_stream_from_template(source)
    log.info("note: PCM audio does not play from MP4 in browsers and many players: written as AAC (.mkv or .mov "
             "copy it untouched)")  # fmt: skip
    layout = _LAYOUTS.get(ctx.layout.nb_channels, ctx.layout)  # AVI's PCM often has an unnamed channel order
    return _Transcoded(ctx, out.add_stream("aac", rate=ctx.sample_rate, layout=layout))
