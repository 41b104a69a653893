"""Image shards: folders of clean images packed losslessly into a few tar files of bounded size.

Why: the GPU machine receives at most 64 MiB per call, and the training folders are larger. A shard is an
uncompressed tar whose first member, ``MANIFEST.json``, lists its images and the source folders they came
from (so the training loader can refuse evaluation sets packed by mistake); each image keeps its source's
pixels exactly:

- JPEG files are stored as they are (decoding and re-encoding would be lossy or much larger);
- other images are stored as lossless WebP when that decodes to the identical pixels and is smaller
  (25–35 % under PNG on these photos), else as the original bytes.

Images are interleaved across sources so that every source has had about the same number of bytes packed
at any point: the first shard alone is a balanced sample of all folders (seeded shuffle within a folder).
``--holdout N`` moves N images (spread over the sources) to ``NAME-val.tar`` for validation.

CLI::

    python -m train.pack ../shared/data/train/* -o .window/train --shard-mib 40 --holdout 8
    python -m train.pack --extract .window/eval/eval-000.tar -o /tmp/eval    # → /tmp/eval/LIVE1/*.png …
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import tarfile
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from common.cli import UsageError, run_cli
from common.files import atomic_path, list_images

FORMAT = "wcdgan-shard"
VERSION = 1
MANIFEST = "MANIFEST.json"
SHARD_SUFFIX = ".tar"
KEEP_AS_IS = (".jpg", ".jpeg", ".webp")  # already compressed: re-encoding gains nothing losslessly
MiB = 1 << 20


class ShardError(ValueError):
    """A shard is missing, unreadable or not a WCDGAN shard, or a pack request is impossible."""


@dataclass
class PackedImage:
    """One image as stored: member ``name`` (``SOURCE/stem.ext``), its ``source`` folder name, byte size."""

    name: str
    source: str
    original: str
    size: int
    height: int
    width: int
    channels: int


def is_shard(path: str | Path) -> bool:
    """True for a ``.tar`` file (the loaders then read it as a shard instead of a folder)."""
    return Path(path).suffix == SHARD_SUFFIX and Path(path).is_file()


def encode_lossless(path: Path) -> tuple[bytes, str, tuple[int, int, int]]:
    """The smallest exact encoding of one image file: ``(bytes, suffix, (H, W, C))``.

    Raises ShardError for a file OpenCV cannot decode.
    """
    data = path.read_bytes()
    pixels = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if pixels is None:
        raise ShardError(f"{path}: cannot decode image")
    shape = (*pixels.shape[:2], 1 if pixels.ndim == 2 else pixels.shape[2])
    suffix = path.suffix.lower()
    if suffix in KEEP_AS_IS or pixels.dtype != np.uint8 or shape[2] != 3:
        return data, suffix, shape  # WebP stores 8-bit colour only; grayscale would come back as 3 channels
    ok, webp = cv2.imencode(".webp", pixels, [cv2.IMWRITE_WEBP_QUALITY, 101])  # quality > 100: lossless
    if ok and len(webp) < len(data):
        back = cv2.imdecode(webp, cv2.IMREAD_UNCHANGED)
        if back is not None and back.shape == pixels.shape and np.array_equal(back, pixels):
            return webp.tobytes(), ".webp", shape
    return data, suffix, shape


def interleave(sources: dict[str, list[tuple[PackedImage, bytes]]]) -> list[tuple[PackedImage, bytes]]:
    """Merge per-source lists so that every prefix holds about equal bytes from each source."""
    queues = {name: list(items) for name, items in sources.items() if items}
    packed = dict.fromkeys(queues, 0)
    order = []
    while queues:
        name = min(queues, key=lambda n: (packed[n], n))
        item = queues[name].pop(0)
        order.append(item)
        packed[name] += item[0].size
        if not queues[name]:
            del queues[name]
    return order


def write_shard(path: Path, items: Sequence[tuple[PackedImage, bytes]]) -> None:
    """Write one shard atomically: ``MANIFEST.json`` first, then the images in order."""
    manifest = {
        "format": FORMAT,
        "version": VERSION,
        "sources": sorted({img.source for img, _ in items}),
        "images": [asdict(img) for img, _ in items],
    }
    with atomic_path(path) as tmp, tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in [(MANIFEST, json.dumps(manifest, indent=1).encode()), *((i.name, d) for i, d in items)]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def pack(
    folders: Sequence[str | Path],
    out_dir: str | Path,
    name: str = "train",
    shard_mib: float = 40.0,
    holdout: int = 0,
    seed: int = 0,
    progress: bool = True,
) -> list[Path]:
    """Pack the images of ``folders`` into ``out_dir/NAME-000.tar``, ``-001`` … (each ≤ ``shard_mib`` MiB of
    images, at least one image), plus ``NAME-val.tar`` with ``holdout`` images. Returns the written paths."""
    folders = [Path(f) for f in folders]
    for f in folders:
        if not f.is_dir():
            raise ShardError(f"{f}: no such folder")
    if len({f.name for f in folders}) != len(folders):
        raise ShardError("source folders must have distinct names (they name the shard's sub-folders)")
    rng = np.random.default_rng(seed)
    files = {f.name: _shuffled(list_images(f), rng) for f in folders}
    if empty := [n for n, fs in files.items() if not fs]:
        raise ShardError(f"no images in {', '.join(empty)}")
    total = sum(map(len, files.values()))
    if holdout >= total:
        raise ShardError(f"--holdout {holdout} leaves no training image ({total} in all)")
    if holdout > total - len(files):  # the hold-out keeps one image of every source for training
        raise ShardError(
            f"--holdout {holdout} leaves a source without training images (at most {total - len(files)} here)"
        )
    held = [files[n].pop() for n in _round_robin(files, holdout)]
    encoded: dict[str, list[tuple[PackedImage, bytes]]] = {n: [] for n in files}
    val: list[tuple[PackedImage, bytes]] = []
    with tqdm(total=total, desc="pack", unit="img", disable=not progress) as bar:
        for path in [p for fs in files.values() for p in fs] + held:
            source = path.parent.name
            data, suffix, (h, w, c) = encode_lossless(path)
            item = (PackedImage(f"{source}/{path.stem}{suffix}", source, path.name, len(data), h, w, c), data)
            (val if path in held else encoded[source]).append(item)
            bar.update()
    out_dir = Path(out_dir)
    written = []
    for i, shard in enumerate(_split(interleave(encoded), shard_mib * MiB)):
        written.append(out_dir / f"{name}-{i:03d}{SHARD_SUFFIX}")
        write_shard(written[-1], shard)
    if val:
        written.append(out_dir / f"{name}-val{SHARD_SUFFIX}")
        write_shard(written[-1], val)
    return written


def _shuffled(paths: list[Path], rng: np.random.Generator) -> list[Path]:
    return [paths[i] for i in rng.permutation(len(paths))]


def _round_robin(files: dict[str, list[Path]], n: int) -> list[str]:
    """Source names to draw ``n`` held-out images from, one source after another."""
    names, left, picks = sorted(files), {k: len(v) for k, v in files.items()}, []
    while len(picks) < n:
        for k in names:
            if len(picks) < n and left[k] > 1:
                picks.append(k)
                left[k] -= 1
    return picks


def _split(items: list[tuple[PackedImage, bytes]], limit: float) -> Iterator[list[tuple[PackedImage, bytes]]]:
    shard, size = [], 0
    for item in items:
        if shard and size + item[0].size > limit:
            yield shard
            shard, size = [], 0
        shard.append(item)
        size += item[0].size
    if shard:
        yield shard


def read_manifest(path: str | Path) -> dict:
    """The manifest of a shard; raises ShardError if the file is not one."""
    try:
        with tarfile.open(path) as tar:
            member = tar.next()
            if member is None or member.name != MANIFEST:
                raise ShardError(f"{path}: not a WCDGAN shard (no {MANIFEST} first)")
            manifest = json.loads(tar.extractfile(member).read())
    except (OSError, tarfile.TarError, json.JSONDecodeError) as e:
        raise ShardError(f"{path}: not a readable shard ({e})") from None
    if manifest.get("format") != FORMAT or manifest.get("version", 0) > VERSION:
        raise ShardError(f"{path}: not a WCDGAN shard of a supported version")
    return manifest


def iter_shard(path: str | Path) -> Iterator[tuple[str, bytes]]:
    """``(member name, encoded bytes)`` of every image in a shard, in stored order."""
    read_manifest(path)
    with tarfile.open(path) as tar:
        for member in tar:
            if member.isfile() and member.name != MANIFEST:
                yield member.name, tar.extractfile(member).read()


def extract(shard: str | Path, out_dir: str | Path) -> list[Path]:
    """Decode every image of ``shard`` to ``out_dir/SOURCE/stem.png`` (lossless, atomic). Returns the paths."""
    written = []
    for name, data in iter_shard(shard):
        pixels = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
        if pixels is None:
            raise ShardError(f"{shard}: member {name} does not decode")
        path = Path(out_dir) / Path(name).with_suffix(".png")
        with atomic_path(path) as tmp:
            if not cv2.imwrite(str(tmp), pixels):
                raise ShardError(f"cannot write {path}")
        written.append(path)
    return written


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m train.pack",
        description="Pack image folders losslessly into tar shards of bounded size (JPEGs kept as they are, other "
        "images as lossless WebP when smaller), interleaved so that the first shard is a balanced sample of every "
        "folder; or, with --extract, unpack shards to PNG folders. `python -m train --data` reads shards directly.",
    )
    p.add_argument("sources", nargs="+", type=Path, metavar="SRC", help="image folders to pack (or shards to extract)")
    p.add_argument("-o", "--output", type=Path, required=True, help="output folder")
    p.add_argument("--extract", action="store_true", help="SRC are shards: write their images as PNG under -o")
    p.add_argument("--name", default="train", help="shard name prefix (default: train → train-000.tar …)")
    p.add_argument("--shard-mib", type=float, default=40.0, help="image bytes per shard (default 40 MiB)")
    p.add_argument("--holdout", type=int, default=0, help="images held out into NAME-val.tar (default 0)")
    p.add_argument("--seed", type=int, default=0, help="shuffle seed (default 0)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar, no summary")
    args = p.parse_args(argv)
    if args.shard_mib <= 0 or args.holdout < 0:
        p.error("--shard-mib must be positive and --holdout non-negative")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli(run, _parse_args(argv))


def run(args: argparse.Namespace) -> int:
    """Pack or extract, and print what was written (stdout); UsageError for bad sources."""
    try:
        if args.extract:
            written = [p for shard in args.sources for p in extract(shard, args.output)]
        else:
            written = pack(
                args.sources, args.output, args.name, args.shard_mib, args.holdout, args.seed, not args.quiet
            )
    except (ShardError, OSError) as e:
        raise UsageError(str(e)) from None
    if not args.quiet:
        if args.extract:
            print(f"extracted {len(written)} images to {args.output}")
        for path in [] if args.extract else written:
            m = read_manifest(path)
            mib = sum(i["size"] for i in m["images"]) / MiB
            mp = sum(i["height"] * i["width"] for i in m["images"]) / 1e6
            print(f"{path}: {len(m['images'])} images, {mp:.1f} MP, {mib:.1f} MiB from {', '.join(m['sources'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
