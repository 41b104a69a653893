"""Tiny Motion-JPEG clips made with PyAV, as cameras write them (for tests/test_video.py and the docs' placeholders)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
from skimage import data

W, H = 64, 48
PHOTO = cv2.resize(data.astronaut(), (W, H), interpolation=cv2.INTER_AREA)  # RGB uint8


def jpeg_bytes(rgb: np.ndarray, quality: int) -> bytes:
    """``rgb`` (H×W×3 uint8) as a libjpeg JPEG file at ``quality``."""
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return buf.tobytes()


def without_huffman_tables(jpeg: bytes) -> bytes:
    """``jpeg`` without its DHT segments, as AVI's Motion JPEG stores frames coded with the standard tables."""
    out, pos = bytearray(jpeg[:2]), 2
    while jpeg[pos + 1] != 0xDA:  # header segments up to the start of scan
        end = pos + 2 + int.from_bytes(jpeg[pos + 2 : pos + 4], "big")
        if jpeg[pos + 1] != 0xC4:
            out += jpeg[pos:end]
        pos = end
    return bytes(out + jpeg[pos:])


def make_mjpeg(
    path: Path, qualities: list[int], audio: bool = True, size: tuple[int, int] = (W, H),
    photo: np.ndarray | list[np.ndarray] | None = None, huffman: bool = True, audio_samples: int = 640,
) -> Path:  # fmt: skip
    """Motion JPEG at 25 fps, frame i a shifted ``photo`` (default :data:`PHOTO`; a list: ``photo[i]`` as it is)
    encoded by libjpeg at ``qualities[i]`` (as cameras write it; without ``huffman``, its packets lack their Huffman
    tables as in AVI MJPEG), with a PCM audio track (8 kHz, packets of ``audio_samples``, as long as half the
    frames)."""
    import av  # the [video] extra: imported only by callers that have it

    w, h = size
    if isinstance(photo, list):
        frames = [cv2.resize(p, (w, h)) for p in photo]
    else:
        still = cv2.resize(PHOTO if photo is None else photo, (w, h))
        frames = [np.roll(still, 3 * i, axis=1) for i in range(len(qualities))]
    with av.open(str(path), "w") as out:
        video = out.add_stream("mjpeg", rate=25)
        video.width, video.height, video.pix_fmt = w, h, "yuvj420p"
        sound = out.add_stream("pcm_s16le", rate=8000, layout="mono") if audio else None
        for i, q in enumerate(qualities):
            data = jpeg_bytes(frames[i], q)
            packet = av.Packet(data if huffman else without_huffman_tables(data))
            packet.stream, packet.time_base, packet.pts, packet.dts, packet.duration = video, Fraction(1, 25), i, i, 1
            packet.is_keyframe = True
            out.mux(packet)
        if sound:
            for i in range(len(qualities) // 2):
                samples = (np.sin(np.arange(audio_samples) / 5 + i) * 8000).astype(np.int16)[None]
                frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
                frame.sample_rate, frame.pts = 8000, i * audio_samples
                out.mux(sound.encode(frame))
            out.mux(sound.encode(None))
    return path
