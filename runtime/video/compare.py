"""The side-by-side clip of ``--compare``: each input frame | its restoration, labelled, in the columns of the image
compare's picture (:func:`runtime.compare.render`, without zoomed crops: they would jump from frame to frame).

Frames are H'×W'×3 uint8 RGB of one size for the whole clip (deep sources are shown in 8 bits); the restoration is
read back from the written output, so the clip shows what was written.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np

from runtime.compare import CompareSettings, compare_images, render
from runtime.video.colour import frame_colour, frame_to_rgb
from runtime.video.container import Clip, Remux, VideoError, open_media, read_frames
from runtime.video.encode import CODECS, write_video
from runtime.video.pipeline import Frame, Stats
from runtime.video.restore import VideoSettings

_CLIP_LAYOUT = CompareSettings(crops=0)  # labelled columns, no zoomed crops


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
    stats = Stats()
    with open_media(restored) as output:
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

        write_video(target, shown, CODECS[settings.codec], settings.codec_crf, src, pairs(), stats)
    return stats.frames
