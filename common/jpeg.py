"""JPEG round trips with libjpeg through OpenCV (bit-identical to Pillow for the same settings)."""

from __future__ import annotations

import cv2
import numpy as np


def jpeg_encode(image: np.ndarray, quality: int) -> bytes:
    """The libjpeg JPEG file of an 8-bit image at ``quality`` (1–100).

    ``image``: H×W uint8 (encoded as a grayscale JPEG) or H×W×3 uint8 **RGB** (colour JPEG, libjpeg
    defaults: 4:2:0 chroma subsampling).
    """
    if image.dtype != np.uint8 or image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] != 3):
        raise ValueError(f"expected H×W or H×W×3 uint8, got {image.dtype} {image.shape}")
    if not 1 <= int(quality) <= 100:
        raise ValueError(f"JPEG quality must be in 1..100, got {quality}")
    bgr = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise RuntimeError("libjpeg failed to encode the image")
    return buf.tobytes()


def jpeg_roundtrip(image: np.ndarray, quality: int) -> np.ndarray:
    """Compress an 8-bit image with :func:`jpeg_encode` and decode it: same shape and dtype as ``image``."""
    flag = cv2.IMREAD_GRAYSCALE if image.ndim == 2 else cv2.IMREAD_COLOR
    decoded = cv2.imdecode(np.frombuffer(jpeg_encode(image, quality), np.uint8), flag)
    return decoded if image.ndim == 2 else cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB)
