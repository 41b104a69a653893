"""--consistent: the restoration projected onto the JPEG file's DCT coefficients (runtime.jpeg_consistency), on
made-up JPEGs of every sampling, through the API, runtime.infer and runtime.batch, and its one-line refusals."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from skimage import data

from common.metrics import psnr
from runtime.io import read_image
from tests.conftest import REPO_ROOT
from tests.runtime_fixtures import coded_share, local_net

pytest.importorskip("jpeglib", reason="--consistent reads coefficients with jpeglib (a dependency)")

from runtime import jpeg_consistency as jc
from runtime.infer import main as infer_main

PHOTO = np.ascontiguousarray(data.astronaut()[100:205, 150:287])  # 105×137: odd sides, partial edge blocks
ENV = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"}


def pillow_jpeg(path: Path, rgb: np.ndarray, quality: int = 30, **options: object) -> Path:
    """Encode with Pillow's libjpeg: ``subsampling`` 0/1/2 = 4:4:4/4:2:2/4:2:0, ``progressive``, ``exif``, ..."""
    Image.fromarray(rgb).save(path, quality=quality, **options)
    return path


def opencv_jpeg(path: Path, image: np.ndarray, *params: int, quality: int = 30) -> Path:
    """Encode with OpenCV (RGB or gray): its options such as progressive and restart intervals."""
    bgr = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    path.write_bytes(cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, quality, *params])[1].tobytes())
    return path


def made_up(tmp_path: Path) -> dict[str, Path]:
    """A JPEG of every sampling and coding the mode claims to handle."""
    gray = cv2.cvtColor(PHOTO, cv2.COLOR_RGB2GRAY)
    return {
        "4:4:4": pillow_jpeg(tmp_path / "s444.jpg", PHOTO, subsampling=0),
        "4:2:2": pillow_jpeg(tmp_path / "s422.jpg", PHOTO, subsampling=1),
        "4:2:0": pillow_jpeg(tmp_path / "s420.jpg", PHOTO, subsampling=2),
        "gray": opencv_jpeg(tmp_path / "gray.jpg", gray),
        "progressive": opencv_jpeg(tmp_path / "progressive.jpg", PHOTO, cv2.IMWRITE_JPEG_PROGRESSIVE, 1),
        "restart markers": opencv_jpeg(tmp_path / "restart.jpg", PHOTO, cv2.IMWRITE_JPEG_RST_INTERVAL, 2),
        "q80": opencv_jpeg(tmp_path / "q80.jpg", PHOTO, quality=80),
    }


def a_restoration(decoded: np.ndarray) -> np.ndarray:
    """A stand-in for a network's output that leaves the file's intervals: smoothed, brightened, its left half
    tinted."""
    out = cv2.GaussianBlur(decoded, (5, 5), 1.2).astype(np.int16) + 3
    out[:, : out.shape[1] // 2] += np.array([30, 0, -30]) if out.ndim == 3 else 20
    return np.clip(out, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("kind", ["4:4:4", "4:2:2", "4:2:0", "gray", "progressive", "restart markers", "q80"])
def test_projection_makes_every_sampling_consistent(tmp_path, kind):
    path = made_up(tmp_path)[kind]
    image = read_image(path)
    jpeg = jc.read_coefficients(path, image.orientation)
    factors = {"4:4:4": (1, 1), "4:2:2": (1, 2), "gray": None}.get(kind, (2, 2))
    assert (jpeg.components[1].factor if len(jpeg.components) > 1 else None) == factors
    restored = a_restoration(image.pixels)
    assert jc.consistent_share(restored, jpeg) < 0.97  # the stand-in contradicts the file
    projected = jc.project(restored, jpeg)
    assert projected.shape == restored.shape and projected.dtype == np.uint8
    truth = PHOTO if image.pixels.ndim == 3 else cv2.cvtColor(PHOTO, cv2.COLOR_RGB2GRAY)
    # q80's narrow intervals: the photo itself scores 98.7 % (the encoder's integer arithmetic); never below it
    bar = jc.consistent_share(truth, jpeg) if kind == "q80" else 0.999
    assert jc.consistent_share(projected, jpeg) >= bar
    assert coded_share(projected, jpeg, 0) >= bar  # the luma check, computed independently
    for k in range(1, len(jpeg.components)):  # chroma at its coded sampling: the box average libjpeg encodes
        chroma_bar = min(coded_share(truth, jpeg, k), 0.999) if kind == "q80" else 0.999
        assert coded_share(restored, jpeg, k) < 0.995 and coded_share(projected, jpeg, k) >= chroma_bar
    assert psnr(projected, truth) > psnr(restored, truth)  # closer to the photo, which satisfies the constraint


def test_projection_of_the_photo_changes_it_by_rounding_at_most(tmp_path):
    for kind, path in made_up(tmp_path).items():
        jpeg = jc.read_coefficients(path)
        photo = PHOTO if len(jpeg.components) == 3 else cv2.cvtColor(PHOTO, cv2.COLOR_RGB2GRAY)
        for k in range(1, len(jpeg.components)):  # the box average is what libjpeg encoded: the photo fits it
            assert coded_share(photo, jpeg, k) >= 0.99, kind
        projected = jc.project(photo, jpeg)
        change = np.abs(projected.astype(int) - photo)
        # the photo is consistent up to the encoder's integer arithmetic: few samples move, by 1 and rarely 2-3
        assert np.mean(change > 0) < 0.15 and np.mean(change > 1) < 0.005 and change.max() <= 3, kind
        assert psnr(projected, photo) > 55, kind


def test_exif_orientation_the_constraint_holds_as_stored(tmp_path):
    exif = Image.new("RGB", (1, 1)).getexif()
    exif[0x0112] = 6  # stored sideways: shown turned 90° clockwise
    path = pillow_jpeg(tmp_path / "rotated.jpg", PHOTO, exif=exif.tobytes())
    image = read_image(path)
    assert image.orientation == 6 and image.pixels.shape[:2] == PHOTO.shape[1::-1]  # upright: 137×105
    jpeg = jc.read_coefficients(path, image.orientation)
    projected = jc.project(a_restoration(image.pixels), jpeg)
    assert projected.shape == image.pixels.shape  # given back upright
    stored = np.ascontiguousarray(np.rot90(projected, 1))  # undo the clockwise turn: the file's orientation
    assert coded_share(stored, jpeg, 0) >= 0.999
    unrotated = jc.read_coefficients(path)  # orientation 1: the upright image does not fit the stored blocks
    with pytest.raises(jc.ConsistencyError, match="does not match the JPEG's 137×105"):
        jc.project(projected, unrotated)


def test_api_refusals(tmp_path):
    png = tmp_path / "a.png"
    cv2.imwrite(str(png), PHOTO)
    with pytest.raises(jc.ConsistencyError, match=r"a\.png: consistent mode needs a JPEG file"):
        jc.read_coefficients(png)
    jpeg = jc.read_coefficients(made_up(tmp_path)["4:2:0"])
    with pytest.raises(jc.ConsistencyError, match=r"8-bit images .*not uint16"):
        jc.project(PHOTO.astype(np.uint16) * 257, jpeg)
    with pytest.raises(jc.ConsistencyError, match="gray image cannot be projected onto a 3-component JPEG"):
        jc.project(PHOTO[..., 0].copy(), jpeg)
    cmyk = tmp_path / "cmyk.jpg"
    Image.fromarray(np.zeros((16, 16, 4), np.uint8), "CMYK").save(cmyk, quality=50)
    with pytest.raises(jc.ConsistencyError, match="handles YCbCr and gray JPEGs, not CMYK"):
        jc.read_coefficients(cmyk)
    import jpeglib

    odd = jpeglib.from_spatial(PHOTO[:32, :32].copy())
    odd.samp_factor = ((1, 1), (2, 2), (2, 2))  # chroma sampled finer than luma: legal, and never seen in practice
    odd.write_spatial(str(tmp_path / "odd.jpg"), qt=50)
    with pytest.raises(jc.ConsistencyError, match=r"\[\[1, 1\], \[2, 2\], \[2, 2\]\] leave the luma subsampled"):
        jc.read_coefficients(tmp_path / "odd.jpg")


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return local_net(tmp_path_factory.mktemp("model") / "local.onnx")


def run_module(module: str, *args: object) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", module, *map(str, args)], capture_output=True, text=True,
                          env=ENV, cwd=REPO_ROOT, timeout=300)  # fmt: skip


def test_infer_consistent_end_to_end(tmp_path, model):
    src = made_up(tmp_path)["4:2:0"]
    common = ("--model", model, "--tile", "64", "--threads", "1")
    plain = run_module("runtime.infer", src, "-o", tmp_path / "plain.png", *common, "--no-consistent")
    assert plain.returncode == 0 and plain.stdout.endswith(" s, not projected: consistent mode off]\n"), plain.stdout
    proc = run_module("runtime.infer", src, "-o", tmp_path / "c.png", *common, "--consistent",
                      f"--compare={tmp_path / 'cmp'}")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    line = re.search(r"s420.jpg \(JPEG q30\) → .*c.png  \[local fp32, \d+ tiles, [\d.]+ s, consistent ([\d.]+) %\]",
                     proc.stdout)  # fmt: skip
    assert line and float(line.group(1)) >= 99.9, proc.stdout
    jpeg = jc.read_coefficients(src)
    written = read_image(tmp_path / "c.png").pixels
    assert jc.consistent_share(read_image(tmp_path / "plain.png").pixels, jpeg) < 0.999
    assert jc.consistent_share(written, jpeg) == pytest.approx(float(line.group(1)) / 100, abs=1e-4)
    report = (tmp_path / "cmp" / "report.html").read_text(encoding="utf-8")
    assert re.search(r"consistent with the JPEG: [\d.]+ % of luma coefficients", report)
    default = run_module("runtime.infer", src, "-o", tmp_path / "default.png", *common)  # on for a JPEG by default
    assert default.returncode == 0 and default.stdout.endswith(f" s, consistent {line.group(1)} %]\n"), default.stdout
    assert np.array_equal(read_image(tmp_path / "default.png").pixels, written)


def test_infer_refuses_what_the_mode_cannot_use(tmp_path, model, capsys, monkeypatch):
    png = tmp_path / "photo.png"
    cv2.imwrite(str(png), PHOTO)
    deep = tmp_path / "deep.png"
    cv2.imwrite(str(deep), PHOTO.astype(np.uint16) * 257)
    good = made_up(tmp_path)["gray"]
    out = tmp_path / "out"
    code = infer_main([str(png), str(deep), str(good), "-o", str(out), "--model", str(model), "--consistent", "-q"])
    err = capsys.readouterr().err
    assert code == 1  # failures during the run; the JPEG among them is still restored
    assert f"error: {png}: consistent mode needs a JPEG file" in err and f"error: {deep}: consistent mode" in err
    assert "Traceback" not in err and sorted(p.name for p in out.iterdir()) == ["gray.png"]
    monkeypatch.setitem(sys.modules, "jpeglib", None)  # as if not installed: its import fails
    code = infer_main([str(good), "-o", str(tmp_path / "x.png"), "--model", str(model), "--consistent"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.strip().splitlines() == ["error: --consistent needs the jpeglib package: pip install jpeglib"]
    assert not (tmp_path / "x.png").exists()
    monkeypatch.undo()
    code = infer_main([str(png), str(deep), str(good), "-o", str(tmp_path / "auto"), "--model", str(model)])
    out = capsys.readouterr().out  # the default: the mode applies to the JPEG; the others are restored, and said so
    assert code == 0 and sorted(p.name for p in (tmp_path / "auto").iterdir()) == ["deep.png", "gray.png", "photo.png"]
    assert re.search(r"photo.png \(not a JPEG\) → .*, not projected: not a JPEG\]", out), out
    assert re.search(r"deep.png \(not a JPEG\) → .*, not projected: not a JPEG\]", out), out
    assert re.search(r"gray.jpg \(JPEG q30\) → .*, consistent (99\.9\d|100\.00) %\]", out), out


def test_batch_consistent_end_to_end(tmp_path, model):
    pytest.importorskip("ray.data", reason="runtime.batch needs Ray Data")
    src = tmp_path / "in"
    src.mkdir()
    opencv_jpeg(src / "a.jpg", PHOTO, cv2.IMWRITE_JPEG_PROGRESSIVE, 1)
    cv2.imwrite(str(src / "b.png"), PHOTO)
    out = tmp_path / "out"
    proc = run_module("runtime.batch", src, out, "--model", model, "--tile", "64", "--consistent", "--actors", "1")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr  # b.png: not a JPEG, an error row
    assert re.search(r"^1 restored, 0 skipped, 1 failed .*; 1 projected, consistent ≥ (99\.9\d|100\.00) %\)$",
                     proc.stdout, re.M)  # fmt: skip
    rows = {Path(r["input"]).name: r for r in map(json.loads, (out / "wcdgan-manifest.jsonl").read_text().splitlines())}
    assert rows["a.jpg"]["status"] == "ok" and rows["a.jpg"]["consistent"] >= 0.999
    assert rows["b.png"]["status"] == "error" and "consistent mode needs a JPEG file" in rows["b.png"]["error"]
    written = read_image(out / "a.png").pixels
    assert jc.consistent_share(written, jc.read_coefficients(src / "a.jpg")) >= 0.999


def test_png_bytes_are_not_a_jpeg(tmp_path):
    """A JPEG's name is not enough: the mode looks at the bytes."""
    fake = tmp_path / "fake.jpg"
    buffer = io.BytesIO()
    Image.fromarray(PHOTO).save(buffer, format="PNG")
    fake.write_bytes(buffer.getvalue())
    with pytest.raises(jc.ConsistencyError, match="needs a JPEG file"):
        jc.read_coefficients(fake)


def test_api_restore_file_and_settings(tmp_path, model):
    from runtime import Restorer, RestoreSettings

    src = made_up(tmp_path)["progressive"]
    with Restorer(model, tile=64, threads=1, consistent=True) as restorer:
        result = restorer.restore_file(src, tmp_path / "c.png")
        assert restorer.settings == RestoreSettings(tile=64, threads=1, consistent=True)
    written = read_image(tmp_path / "c.png").pixels
    assert result.consistent == jc.consistent_share(written, jc.read_coefficients(src)) >= 0.999
    with Restorer(model, tile=64, threads=1) as restorer:  # the default: JPEG files projected, others not
        assert restorer.restore_file(src, tmp_path / "default.png").consistent == result.consistent
        png = tmp_path / "photo.png"
        cv2.imwrite(str(png), PHOTO)
        unprojected = restorer.restore_file(png, tmp_path / "from_png.png")
        assert unprojected.consistent is None and unprojected.unprojected == "not a JPEG"
    with Restorer(model, tile=64, threads=1, consistent=False) as restorer:
        off = restorer.restore_file(src, tmp_path / "plain.png")
        assert off.consistent is None and off.unprojected == "consistent mode off"
    with pytest.raises(ValueError, match="consistent must be True, False or None, got 'yes'"):
        RestoreSettings(consistent="yes")


def test_batch_resumes_manifests_written_before_the_consistent_field(tmp_path):
    pytest.importorskip("ray.data", reason="runtime.batch needs Ray Data")
    from runtime.batch import FIELDS, is_manifest

    old = tmp_path / "old.jsonl"
    old.write_text(json.dumps(dict.fromkeys(f for f in FIELDS if f != "consistent")) + "\n")
    assert is_manifest(old)


@pytest.mark.parametrize("kind", ["4:2:0", "4:2:2", "gray"])
def test_strips_give_the_whole_image_projection(tmp_path, kind, monkeypatch):
    """The projection runs in strips of whole MCU rows (bounded memory); blocks never straddle them, so the result
    is the one-piece projection's, bit for bit."""
    path = made_up(tmp_path)[kind]
    image, jpeg = read_image(path), jc.read_coefficients(path)
    restored = a_restoration(image.pixels)
    monkeypatch.setattr(jc, "_STRIP_BLOCKS", 1)  # 8 or 16 rows a strip: many strips and a partial last one
    strips = jc.project(restored, jpeg)
    monkeypatch.setattr(jc, "_STRIP_BLOCKS", 1000)
    np.testing.assert_array_equal(strips, jc.project(restored, jpeg))


def test_a_frame_without_huffman_tables_gets_the_standard_ones(tmp_path):
    """Motion-JPEG packets (AVI) leave out their DHT segment: the reader inserts ITU-T T.81 Annex K's tables — the
    ones libjpeg writes when it does not optimise them — and reads the same coefficients as from the complete file."""
    from tests.video_fixtures import without_huffman_tables

    full = opencv_jpeg(tmp_path / "full.jpg", PHOTO).read_bytes()
    tables, pos = b"", 2
    while full[pos + 1] != 0xDA:
        end = pos + 2 + int.from_bytes(full[pos + 2 : pos + 4], "big")
        tables += full[pos + 4 : end] if full[pos + 1] == 0xC4 else b""
        pos = end
    assert b"\xff\xc4" + (len(tables) + 2).to_bytes(2, "big") + tables == jc.STANDARD_HUFFMAN_TABLES
    assert jc.with_huffman_tables(full) == full
    packet = without_huffman_tables(full)
    assert b"\xff\xc4" not in packet[: packet.index(b"\xff\xda")]
    ours, theirs = jc.read_packet_coefficients(packet, "frame 1"), jc.read_coefficients(tmp_path / "full.jpg")
    for a, b in zip(ours.components, theirs.components, strict=True):
        assert np.array_equal(a.coefficients, b.coefficients) and np.array_equal(a.table, b.table)
    with pytest.raises(jc.ConsistencyError, match="frame 1: not a JPEG"):
        jc.read_packet_coefficients(b"\x89PNG" + packet, "frame 1")
