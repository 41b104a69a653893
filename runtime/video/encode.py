"""Writing a video file: the output codecs (:data:`CODECS`) and :func:`write_video`, which encodes restored frames and
remuxes the copied audio and subtitle packets with the input's timestamps, frame rate, rotation and colour tags.

Frames in are H×W×3 RGB, uint8 or uint16 (deep sources), converted to the codec's pixel format through the clip's
matrix and range (:mod:`runtime.video.colour`). Runs in the pipeline's encode thread.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import av

from runtime.video.colour import rgb_to_frame
from runtime.video.container import Clip, Remux, open_media
from runtime.video.pipeline import Frame, Stats


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
        colour = clip.colour.as_rgb() if av.VideoFormat(pix_fmt).is_rgb else clip.colour
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
