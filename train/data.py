"""Training and validation data: clean images → on-the-fly libjpeg compression → aligned patch pairs.

Paper recipe: compress each clean image, cut 80×80 input/target patches on a stride-75 grid. Compressing a
whole multi-megapixel image for every sample would cost far more than the patches need, so a sample
compresses only a *crop*: a ``crop_patches × crop_patches`` block of grid patches plus a margin of one
MCU (16 px for 4:2:0 colour, 8 px for grayscale), with its origin snapped down to the MCU grid of the
whole image. Such a crop is cut into exactly the same 8×8 DCT blocks (and 16×16 chroma MCUs) as the whole
image, and its right/bottom edge is padded by libjpeg exactly as the whole image would be when it ends at
the image border. The only pixels that could differ from a whole-image JPEG are within 2 px of an inner
crop edge (the decoder's "fancy" chroma upsampling reads the neighbouring chroma sample), and the margin
keeps every patch away from those. ``tests/test_train.py`` checks patches equal whole-image JPEG patches.

Training sources are folders or shards (:mod:`train.pack`). Images are decoded once and kept in memory as
uint8 (RGB H×W×3, or MATLAB-Y H×W for ``channel="y"``).
A sample is fully determined by ``(seed, index)``, so DataLoader workers and resumed runs see the same
stream as a single-process uninterrupted run.
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from common.color import rgb_to_y
from common.datasets import is_eval_set
from common.files import IMAGE_SUFFIXES, list_images
from common.jpeg import jpeg_roundtrip
from train.pack import ShardError, is_shard, iter_shard, read_manifest


class DataError(ValueError):
    """A data folder is missing, empty, unreadable or forbidden (evaluation sets)."""


def check_training_dir(path: str | os.PathLike) -> Path:
    """Resolve a ``--data`` source (folder or shard, :mod:`train.pack`); raise DataError if it is missing or is
    (inside, or packed from) an evaluation set (:func:`common.datasets.is_eval_set`)."""
    p = Path(path).expanduser()
    if not (p.is_dir() or is_shard(p)):
        raise DataError(f"{path}: no such data folder or shard")
    p = p.resolve()
    sources: list[str] = []
    if is_shard(p):
        try:
            sources = list(read_manifest(p)["sources"])
        except ShardError as e:
            raise DataError(str(e)) from None
    if is_eval_set(p, sources):
        raise DataError(f"{path}: refusing to train on an evaluation set (LIVE1/Classic5, shared/data/eval)")
    return p


def iter_encoded(source: str | os.PathLike) -> Iterator[tuple[str, bytes]]:
    """``(name, encoded bytes)`` of each image of a folder (sorted) or shard (stored order)."""
    if is_shard(source):
        try:
            yield from iter_shard(source)
        except ShardError as e:
            raise DataError(str(e)) from None
        return
    for path in list_images(source):
        yield str(path), path.read_bytes()


def decode_image(data: bytes, name: str, channel: str) -> np.ndarray:
    """Decode one encoded image to uint8 RGB H×W×3 (``channel="rgb"``) or MATLAB-Y H×W (``"y"``).

    Grayscale files are replicated to RGB in rgb mode and used as Y directly in y mode.
    """
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise DataError(f"{name}: cannot decode image")
    if img.dtype != np.uint8:
        raise DataError(f"{name}: only 8-bit images are supported, got {img.dtype}")
    if img.ndim == 3 and img.shape[2] == 4:
        img = img[..., :3]
    if img.ndim == 3:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    if channel == "y":
        return img if img.ndim == 2 else rgb_to_y(img)
    return np.ascontiguousarray(np.repeat(img[..., None], 3, axis=2) if img.ndim == 2 else img)


def read_images(source: str | os.PathLike, channel: str, limit: int | None = None) -> list[tuple[str, np.ndarray]]:
    """``(name, image)`` of the first ``limit`` images of a folder or shard; DataError if there are none."""
    if not (Path(source).is_dir() or is_shard(source)):
        raise DataError(f"{source}: no such folder or shard")
    images = []
    for name, data in itertools.islice(iter_encoded(source), limit):
        images.append((name, decode_image(data, name, channel)))
    if not images:
        raise DataError(f"{source}: no images ({', '.join(IMAGE_SUFFIXES)}) in this folder or shard")
    return images


def load_images(sources: Sequence[str | os.PathLike], channel: str, min_size: int = 0) -> list[np.ndarray]:
    """Decode every image of ``sources`` (folders or shards); raise DataError if one is missing or empty, or
    nothing usable is found. Images smaller than ``min_size`` on either side are skipped (no patch fits)."""
    images = [img for source in sources for _, img in read_images(source, channel) if min(img.shape[:2]) >= min_size]
    if not images:
        raise DataError(f"no image of at least {min_size}×{min_size} px in {', '.join(map(str, sources))}")
    return images


def mcu_size(channel: str) -> int:
    """JPEG minimum coded unit: 16 px for libjpeg's default 4:2:0 colour, 8 px for grayscale."""
    return 16 if channel == "rgb" else 8


def augment(x: np.ndarray, k: int) -> np.ndarray:
    """One of the 8 dihedral transforms (k in 0..7): k % 4 quarter turns, then a flip if k >= 4."""
    x = np.rot90(x, k % 4, axes=(0, 1))
    return x[:, ::-1] if k >= 4 else x


def to_tensor(img: np.ndarray) -> torch.Tensor:
    """uint8 H×W or H×W×C → uint8 C×H×W tensor (division by 255 happens on the device)."""
    img = img[..., None] if img.ndim == 2 else img
    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))


@dataclass
class QualitySampler:
    """Draws a JPEG quality: from ``qualities`` (optionally weighted) or uniformly from ``range_`` (inclusive)."""

    qualities: Sequence[int]
    weights: Sequence[float] | None = None
    range_: tuple[int, int] | None = None

    def __call__(self, rng: np.random.Generator) -> int:
        if self.range_ is not None:
            return int(rng.integers(self.range_[0], self.range_[1] + 1))
        p = None if self.weights is None else np.asarray(self.weights, float) / float(np.sum(self.weights))
        return int(rng.choice(np.asarray(self.qualities), p=p))


class PatchPairs(Dataset):
    """Item ``i`` → ``(jpeg, clean)``: uint8 tensors ``patches_per_crop × C × P × P`` from one compressed crop.

    Patches lie on the image's stride-``stride`` grid; each item picks an image (probability ∝ its number
    of grid patches, i.e. uniform over all patches of the data set), a ``crop_patches``² block of grid
    patches, one quality, and ``patches_per_crop`` patches of the block (with replacement when the block
    is smaller), each with its own random flip/rotation applied identically to input and target.
    """

    def __init__(
        self,
        images: Sequence[np.ndarray],
        channel: str,
        quality: QualitySampler,
        patch: int = 80,
        stride: int = 75,
        crop_patches: int = 2,
        patches_per_crop: int = 4,
        seed: int = 0,
    ) -> None:
        self.images, self.channel, self.quality = list(images), channel, quality
        self.patch, self.stride, self.crop_patches, self.k = patch, stride, crop_patches, patches_per_crop
        self.seed = seed
        self.grids = [self._grid(img.shape[:2]) for img in self.images]
        if any(g[0] < 1 or g[1] < 1 for g in self.grids):
            raise DataError(f"every image must be at least {patch}×{patch} px")
        counts = np.array([gy * gx for gy, gx in self.grids], float)
        self.image_p = counts / counts.sum()

    def _grid(self, hw: tuple[int, int]) -> tuple[int, int]:
        return tuple(max(0, (s - self.patch) // self.stride + 1) for s in hw)

    def __len__(self) -> int:
        return 2**62  # an endless stream; the sampler decides which indices are drawn

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng([self.seed, index])
        i = int(rng.choice(len(self.images), p=self.image_p))
        jpeg, clean, cells, _ = self.compressed_block(i, rng)
        picks = rng.integers(len(cells), size=self.k)
        xs, ys = [], []
        for p in picks:
            oy, ox = cells[p]
            k = int(rng.integers(8))
            sl = (slice(oy, oy + self.patch), slice(ox, ox + self.patch))
            xs.append(to_tensor(augment(jpeg[sl], k)))
            ys.append(to_tensor(augment(clean[sl], k)))
        return torch.stack(xs), torch.stack(ys)

    def compressed_block(
        self, i: int, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray, list[tuple[int, int]], tuple[int, int]]:
        """Compress an MCU-aligned crop around a random block of grid patches of image ``i``.

        Returns ``(jpeg_crop, clean_crop, patch origins inside the crop, crop origin in the image)``.
        """
        img, (gy, gx) = self.images[i], self.grids[i]
        n, s, m = self.crop_patches, self.stride, mcu_size(self.channel)
        by, bx = int(rng.integers(max(1, gy - n + 1))), int(rng.integers(max(1, gx - n + 1)))
        rows, cols = range(by, min(gy, by + n)), range(bx, min(gx, bx + n))
        y0, x0 = rows[0] * s, cols[0] * s
        y1, x1 = rows[-1] * s + self.patch, cols[-1] * s + self.patch
        # Snap the crop to the whole image's MCU grid, one MCU of margin inside the image.
        cy0, cx0 = max(0, (y0 - m) // m * m), max(0, (x0 - m) // m * m)
        cy1 = min(img.shape[0], math.ceil((y1 + m) / m) * m)
        cx1 = min(img.shape[1], math.ceil((x1 + m) / m) * m)
        clean = img[cy0:cy1, cx0:cx1]
        jpeg = jpeg_roundtrip(np.ascontiguousarray(clean), self.quality(rng))
        cells = [(r * s - cy0, c * s - cx0) for r in rows for c in cols]
        return jpeg, clean, cells, (cy0, cx0)


class IndexRange(Sampler[int]):
    """Yields ``start, start+1, …, stop-1``: sample indices of a (resumable) run."""

    def __init__(self, start: int, stop: int) -> None:
        self.start, self.stop = start, stop

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.start, self.stop))

    def __len__(self) -> int:
        return self.stop - self.start


def collate_pairs(items: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Concatenate the per-crop patch stacks into one batch (uint8, N×C×P×P)."""
    return torch.cat([x for x, _ in items]), torch.cat([y for _, y in items])


@dataclass
class ValidationSet:
    """Validation pairs as uint8 (JPEG at ``qualities[i]``, clean), H×W×3 or H×W; an image appears once per quality."""

    names: list[str]
    qualities: list[int]
    jpeg: list[np.ndarray]
    clean: list[np.ndarray]


def center_crop(img: np.ndarray, size: int, multiple: int) -> np.ndarray:
    """Centre crop to at most ``size`` px per side, origin aligned to ``multiple`` (``size=0``: no crop)."""
    if size <= 0:
        return img
    h, w = img.shape[:2]
    ch, cw = min(h, size), min(w, size)
    y0 = (h - ch) // 2 // multiple * multiple
    x0 = (w - cw) // 2 // multiple * multiple
    return img[y0 : y0 + ch, x0 : x0 + cw]


def load_validation(
    source: str | os.PathLike, channel: str, qualities: Sequence[int], crop: int, max_images: int
) -> ValidationSet:
    """First ``max_images`` images of a folder or shard, centre-cropped, compressed once at each of ``qualities``."""
    images = read_images(source, channel, max_images)
    clean = [np.ascontiguousarray(center_crop(img, crop, mcu_size(channel))) for _, img in images]
    pairs = [(Path(name).name, q, c) for q in qualities for (name, _), c in zip(images, clean, strict=True)]
    return ValidationSet(
        [n for n, _, _ in pairs],
        [q for _, q, _ in pairs],
        [jpeg_roundtrip(c, q) for _, q, c in pairs],
        [c for *_, c in pairs],
    )
