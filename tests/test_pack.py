"""Image shards (train.pack): lossless packing, balanced first shard, hold-out, extraction, refusals."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import skimage.data

from train.data import DataError, check_training_dir, load_images, load_validation
from train.pack import ShardError, extract, iter_shard, main, pack, read_manifest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> Path:
    """Folder A: 4 colour PNGs; folder B: 2 JPEGs and 1 grayscale PNG (sizes differ, so bytes differ)."""
    root = tmp_path_factory.mktemp("sources")
    (root / "A").mkdir()
    (root / "B").mkdir()
    astronaut = cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR)
    for i, (y, x) in enumerate([(0, 0), (100, 40), (200, 80), (300, 120)]):
        cv2.imwrite(str(root / "A" / f"a{i}.png"), astronaut[y : y + 160, x : x + 200])
    coffee = cv2.cvtColor(skimage.data.coffee(), cv2.COLOR_RGB2BGR)
    for i in range(2):
        cv2.imwrite(str(root / "B" / f"b{i}.jpg"), coffee[i * 50 : i * 50 + 300], [cv2.IMWRITE_JPEG_QUALITY, 90])
    cv2.imwrite(str(root / "B" / "gray.png"), skimage.data.camera()[:200, :240])
    return root


def _pixels(data: bytes) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)


def test_shards_hold_every_image_losslessly_within_the_size_limit(sources, tmp_path):
    shards = pack([sources / "A", sources / "B"], tmp_path, shard_mib=0.1, holdout=1, progress=False)
    train, val = [s for s in shards if not s.name.endswith("val.tar")], shards[-1]
    assert val.name == "train-val.tar" and len(train) >= 2
    seen = {}
    for shard in shards:
        manifest = read_manifest(shard)
        assert manifest["format"] == "wcdgan-shard"
        sizes = [img["size"] for img in manifest["images"]]
        assert len(manifest["images"]) == 1 or sum(sizes) <= 0.1 * 2**20  # one image per shard may exceed it
        assert manifest["images"], f"{shard.name} is empty"
        for (name, data), img in zip(iter_shard(shard), manifest["images"], strict=True):
            assert name == img["name"] and len(data) == img["size"]
            seen[img["source"] + "/" + img["original"]] = data
    assert len(seen) == 7 and len(read_manifest(val)["images"]) == 1
    for key, data in seen.items():
        original = sources / key
        if original.suffix == ".jpg":
            assert data == original.read_bytes()  # JPEGs are kept byte for byte
        else:
            want = cv2.imread(str(original), cv2.IMREAD_UNCHANGED)
            got = _pixels(data)
            assert got.shape == want.shape and np.array_equal(got, want), key
    gray = next(i for s in shards for i in read_manifest(s)["images"] if i["original"] == "gray.png")
    assert gray["name"].endswith(".png") and gray["channels"] == 1  # WebP would make it 3-channel


def test_images_above_the_shard_size_get_one_shard_each_and_no_empty_one(sources, tmp_path):
    shards = pack([sources / "A", sources / "B"], tmp_path, shard_mib=0.001, holdout=0, progress=False)
    assert [len(read_manifest(s)["images"]) for s in shards] == [1] * 7
    assert shards[0].name == "train-000.tar"


def test_first_shard_is_balanced_across_sources(sources, tmp_path):
    first = pack([sources / "A", sources / "B"], tmp_path, shard_mib=0.15, progress=False)[0]
    assert set(read_manifest(first)["sources"]) == {"A", "B"}


def test_extract_writes_identical_png(sources, tmp_path):
    shard = pack([sources / "A"], tmp_path / "s", name="eval", progress=False)[0]
    written = extract(shard, tmp_path / "out")
    assert sorted(p.name for p in written) == ["a0.png", "a1.png", "a2.png", "a3.png"]
    for p in written:
        assert np.array_equal(cv2.imread(str(p)), cv2.imread(str(sources / "A" / p.name)))


def test_training_reads_shards_like_folders(sources, tmp_path):
    shard = pack([sources / "A"], tmp_path, progress=False)[0]
    from_folder = load_images([sources / "A"], "rgb")
    from_shard = load_images([shard], "rgb")
    key = [img.tobytes() for img in from_folder]
    assert sorted(key) == sorted(img.tobytes() for img in from_shard)
    val = load_validation(shard, "y", [10], 64, 2)
    assert len(val.clean) == 2 and val.clean[0].shape == (64, 64) and val.names[0].endswith(".webp")


def test_a_shard_packed_from_an_evaluation_set_is_refused(tmp_path, sources):
    live1 = tmp_path / "LIVE1"
    live1.mkdir()
    cv2.imwrite(str(live1 / "x.png"), cv2.imread(str(sources / "A" / "a0.png")))
    shard = pack([live1, sources / "A"], tmp_path / "out", name="mixed", progress=False)[0]
    with pytest.raises(DataError, match="evaluation set"):
        check_training_dir(shard)
    clean = pack([sources / "A"], tmp_path / "out2", progress=False)[0]
    assert check_training_dir(clean) == clean.resolve()
    bogus = tmp_path / "bogus.tar"
    bogus.write_bytes(b"not a tar")
    with pytest.raises(DataError, match="not a readable shard"):
        check_training_dir(bogus)


def test_pack_refusals(sources, tmp_path):
    with pytest.raises(ShardError, match="no such folder"):
        pack([tmp_path / "missing"], tmp_path)
    (tmp_path / "x" / "A").mkdir(parents=True)
    with pytest.raises(ShardError, match="distinct names"):
        pack([sources / "A", tmp_path / "x" / "A"], tmp_path)
    with pytest.raises(ShardError, match="leaves no training image"):
        pack([sources / "A"], tmp_path, holdout=4, progress=False)


def test_hold_out_leaves_every_source_a_training_image(sources, tmp_path):
    """A (4 images) and C (1): the hold-out is drawn from A only, and one that would empty a source is refused."""
    (tmp_path / "C").mkdir()
    (tmp_path / "C" / "c.png").write_bytes((sources / "A" / "a0.png").read_bytes())
    shards = pack([sources / "A", tmp_path / "C"], tmp_path / "out", holdout=3, progress=False)
    train = [img for s in shards[:-1] for img in read_manifest(s)["images"]]
    assert {img["source"] for img in train} == {"A", "C"} and len(train) == 2
    assert {img["source"] for img in read_manifest(shards[-1])["images"]} == {"A"}
    with pytest.raises(ShardError, match="--holdout 4 leaves a source without training images"):
        pack([sources / "A", tmp_path / "C"], tmp_path / "out2", holdout=4, progress=False)


def test_packing_is_reproducible(sources, tmp_path):
    """Same folders, same seed: the same shards, hold-out included (a rerun on the GPU machine must match)."""
    runs = [pack([sources / "A", sources / "B"], tmp_path / d, shard_mib=0.1, holdout=2, progress=False) for d in "ab"]
    first, second = ([read_manifest(s)["images"] for s in shards] for shards in runs)
    assert first == second


def test_interleave_balances_bytes_not_counts():
    """Every prefix holds about equal bytes per source: four 10-byte images of A against two 40-byte ones of B."""
    from train.pack import PackedImage, interleave

    def items(source: str, sizes: list[int]) -> list:
        return [(PackedImage(f"{source}/{i}", source, f"{i}.png", n, 1, 1, 1), b"") for i, n in enumerate(sizes)]

    order = interleave({"A": items("A", [10] * 4), "B": items("B", [40, 40]), "E": []})
    assert [img.source for img, _ in order] == ["A", "B", "A", "A", "A", "B"]


@pytest.mark.cli
def test_cli_errors_are_messages_with_exit_code_2(tmp_path, capsys):
    assert main([str(tmp_path / "missing"), "-o", str(tmp_path / "o"), "-q"]) == 2
    assert "no such folder" in capsys.readouterr().err
    r = subprocess.run(
        [sys.executable, "-m", "train.pack", "--extract", str(tmp_path / "none.tar"), "-o", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2 and "not a readable shard" in r.stderr and "Traceback" not in r.stderr
