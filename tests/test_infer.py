"""The CLI in a subprocess: outputs, exit codes, bad inputs without tracebacks, torch-free imports."""

from __future__ import annotations

import html
import importlib.util
import io
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from skimage import data

from runtime.cli import Summary
from runtime.infer import plan_files
from tests.conftest import REPO_ROOT, assert_imports_without_torch, run_module, tiny_model
from tests.runtime_fixtures import coded_share, write_jpeg

RGB = data.astronaut()[:48, :72]


def cli(*args, cwd=None, env=None) -> subprocess.CompletedProcess:
    return run_module("runtime.infer", *args, env=env, cwd=cwd)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return tiny_model(tmp_path_factory)


def _no_traceback(proc):
    assert "Traceback" not in proc.stderr, proc.stderr


@pytest.mark.cli
def test_folder_run_continues_past_bad_files(tmp_path, model):
    src = tmp_path / "in"
    src.mkdir()
    write_jpeg(src / "good.jpg", RGB, 10)
    full = write_jpeg(tmp_path / "full.jpg", RGB, 90).read_bytes()
    (src / "truncated.jpg").write_bytes(full[: len(full) // 2])
    (src / "empty.jpg").write_bytes(b"")
    (src / "text.jpg").write_text("hello, not a JPEG")
    before = {p.name: p.read_bytes() for p in src.iterdir()}
    proc = cli(src, "-o", tmp_path / "out", "--model", model, "--tile", "32")
    assert proc.returncode == 1
    _no_traceback(proc)
    for name in ("truncated.jpg", "empty.jpg", "text.jpg"):
        assert name in proc.stderr
    assert "3 input(s) failed" in proc.stderr
    assert re.search(r"backend: (ort-cpu|ort-cuda|tensorrt)\n", proc.stderr)
    # results on stdout: the restored file's line (model and precision) and the summary; errors stay on stderr
    line = r"good.jpg \(JPEG q10\) → .*good.png  \[local fp32, \d+ tiles, [\d.]+ s, consistent [\d.]+ %\]\n"
    assert re.search(line, proc.stdout)  # a JPEG: projected onto its coefficients by default
    assert re.search(r"^1 restored, 0 skipped, 3 failed in [\d.]+ s: [\d.]+ MP, [\d.]+ s/MP$", proc.stdout, re.M)
    assert "error" not in proc.stdout and "backend" not in proc.stdout
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["good.png"]
    assert {p.name: p.read_bytes() for p in src.iterdir()} == before  # inputs untouched
    assert cv2.imread(str(tmp_path / "out" / "good.png")).shape == RGB.shape


def test_a_missing_input_among_others_fails_the_run(tmp_path, model, capsys):
    """One named input that does not exist, beside one that does: the other (200×250: 0.05 MP) is restored, and the
    run says 1 failed (summary line, stderr count) and exits 1."""
    from runtime.infer import main

    src = write_jpeg(tmp_path / "a.jpg", data.astronaut()[:200, :250], 20)
    missing = tmp_path / "nope.jpg"
    assert main([str(src), str(missing), "-o", str(tmp_path / "out"), "--model", str(model)]) == 1
    out, err = capsys.readouterr()
    assert re.search(r"^1 restored, 0 skipped, 1 failed in [\d.]+ s: 0\.05 MP, [\d.]+ s/MP$", out, re.M), out
    assert str(missing) in err and "1 input(s) failed" in err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.png"]


@pytest.mark.cli
def test_outputs_next_to_inputs_never_clobbered(tmp_path, model):
    src = write_jpeg(tmp_path / "photo.jpg", RGB, 20)
    proc = cli(src, "--model", model, "-q")
    assert proc.returncode == 0 and proc.stderr == ""  # -q: silent on success
    out = tmp_path / "photo_wcdgan.png"
    assert out.is_file()
    out.write_bytes(b"keep me")
    proc = cli(src, "--model", model)
    assert proc.returncode == 0 and "exists" in proc.stderr and out.read_bytes() == b"keep me"
    proc = cli(tmp_path, "--model", model)  # the folder: photo_wcdgan.png is an earlier output, not an input
    assert proc.returncode == 0 and "photo_wcdgan_wcdgan" not in proc.stderr
    assert not (tmp_path / "photo_wcdgan_wcdgan.png").exists()
    proc = cli(src, "--model", model, "--overwrite")
    assert proc.returncode == 0 and out.read_bytes() != b"keep me"
    png = tmp_path / "p.png"
    cv2.imwrite(str(png), RGB)
    before = png.read_bytes()
    proc = cli(png, "-o", png, "--model", model, "-f")  # output resolves to the input
    assert proc.returncode == 1 and "refusing to overwrite" in proc.stderr and png.read_bytes() == before
    _no_traceback(proc)


@pytest.mark.cli
def test_overwrite_never_replaces_another_input_of_the_run(tmp_path, model):
    """photo.jpg's output photo.png is the run's other input: -f must refuse it like the input itself."""
    write_jpeg(tmp_path / "photo.jpg", RGB, 20)
    cv2.imwrite(str(tmp_path / "photo.png"), RGB[::-1])
    before = (tmp_path / "photo.png").read_bytes()
    proc = cli(tmp_path, "-o", tmp_path, "--model", model, "-f")
    assert proc.returncode == 1 and proc.stderr.count("is an input; refusing to overwrite it") == 2, proc.stderr
    assert (tmp_path / "photo.png").read_bytes() == before
    _no_traceback(proc)
    inputs = [tmp_path / "a.jpg", tmp_path / "b.png", tmp_path / "c.jpg"]
    plans = plan_files(inputs, [tmp_path / "b.png", tmp_path / "out" / "b.png", tmp_path / "out" / "b.png"], True)
    assert [bool(p.error) for p in plans] == [True, False, True] and "another input's output" in plans[2].error


@pytest.mark.cli
def test_exif_alpha_gray_sixteen_bit_through_the_cli(tmp_path, model):
    exif_path = tmp_path / "exif.jpg"
    pil = Image.fromarray(RGB)
    exif = pil.getexif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    pil.save(exif_path, exif=exif.tobytes(), quality=90)
    rgba = np.dstack([RGB, np.linspace(0, 255, 48 * 72).reshape(48, 72).astype(np.uint8)])
    cv2.imwrite(str(tmp_path / "alpha.png"), rgba)
    write_jpeg(tmp_path / "gray.jpg", data.camera()[:40, :40], 10)
    cv2.imwrite(str(tmp_path / "deep.png"), (RGB.astype(np.uint16) * 257))
    proc = cli(*(tmp_path / n for n in ("exif.jpg", "alpha.png", "gray.jpg", "deep.png")), "-o", tmp_path / "o",
               "--model", model, "--tile", "32")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    o = tmp_path / "o"
    assert cv2.imread(str(o / "exif.png"), cv2.IMREAD_UNCHANGED).shape == (72, 48, 3)  # upright
    alpha_out = cv2.imread(str(o / "alpha.png"), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(alpha_out[..., 3], rgba[..., 3])  # alpha untouched
    assert cv2.imread(str(o / "gray.png"), cv2.IMREAD_UNCHANGED).shape == (40, 40)
    assert cv2.imread(str(o / "deep.png"), cv2.IMREAD_UNCHANGED).dtype == np.uint16


def _sampled_jpeg(path: Path, rgb: np.ndarray, factors: tuple[int, int]) -> Path:
    """A q30 JPEG of ``rgb`` by libjpeg (through jpeglib, which writes any sampling), its luma sampled
    ``factors`` (vertical, horizontal) times as finely as its chroma."""
    import jpeglib

    image = jpeglib.from_spatial(np.ascontiguousarray(rgb))
    image.samp_factor = (factors, (1, 1), (1, 1))
    image.write_spatial(str(path), qt=30)
    return path


@pytest.mark.cli
def test_every_chroma_sampling_is_restored_consistent_with_its_file(tmp_path, model):
    """The default (JPEG-consistent) run on 4:2:2, 4:4:0, 4:1:1 and 4:2:0 JPEGs of even and odd sizes (partial
    MCUs at the edges) exits 0 and writes images whose luma and chroma, at the file's own sampling, quantise to the
    file's DCT coefficients (the share each result line shows); without the projection they do not."""
    pytest.importorskip("jpeglib", reason="consistent mode reads coefficients with jpeglib (a dependency)")
    from runtime import jpeg_consistency as jc
    from runtime.io import read_image

    photo = data.astronaut()
    src = tmp_path / "in"
    src.mkdir()
    samplings = {"422": (1, 2), "440": (2, 1), "411": (1, 4), "420": (2, 2)}
    for name, factors in samplings.items():
        for n, (h, w) in enumerate([(48, 72), (37, 53), (61, 35)]):
            _sampled_jpeg(src / f"{name}_{h}x{w}.jpg", photo[60 * n : 60 * n + h, 200 : 200 + w], factors)
    proc = cli(src, "-o", tmp_path / "out", "--model", model, "--tile", "32")
    assert proc.returncode == 0, proc.stderr
    plain = cli(src, "-o", tmp_path / "plain", "--model", model, "--tile", "32", "--no-consistent")
    assert plain.returncode == 0, plain.stderr
    for path in sorted(src.iterdir()):
        line = re.search(rf"{path.name} \(JPEG q30\) → .*  \[.*, consistent ([\d.]+) %\]$", proc.stdout, re.M)
        assert line, proc.stdout
        jpeg = jc.read_coefficients(path)
        assert jpeg.components[1].factor == samplings[path.name[:3]]
        written = read_image(tmp_path / "out" / f"{path.stem}.png").pixels
        shares = [coded_share(written, jpeg, k) for k in range(3)]
        assert min(shares) >= 0.999, (path.name, shares)
        assert float(line.group(1)) == pytest.approx(100 * jc.consistent_share(written, jpeg), abs=0.01)
        unprojected = read_image(tmp_path / "plain" / f"{path.stem}.png").pixels
        assert min(coded_share(unprojected, jpeg, k) for k in range(3)) < 0.999, path.name


def test_a_10_bit_avif_is_restored_as_bright_as_its_8_bit_twin(tmp_path, model):
    """A 10-bit AVIF (OpenCV reads its samples as stored, 0–1023) was restored nearly black into a 16-bit PNG; now
    its output shows the picture its 8-bit PNG twin's output shows."""
    deep = ((RGB.astype(np.int64) * 1023 + 127) // 255).astype(np.uint16)[..., ::-1]
    try:
        ok, encoded = cv2.imencode(".avif", deep, [cv2.IMWRITE_AVIF_DEPTH, 10, cv2.IMWRITE_AVIF_QUALITY, 100])
    except cv2.error:
        ok = False
    if not ok:
        pytest.skip("this OpenCV writes no 10-bit AVIF")
    (tmp_path / "deep.avif").write_bytes(encoded.tobytes())
    cv2.imwrite(str(tmp_path / "flat.png"), RGB[..., ::-1])
    proc = cli(tmp_path / "deep.avif", tmp_path / "flat.png", "-o", tmp_path / "o", "--model", model, "--tile", "32")
    assert proc.returncode == 0, proc.stderr
    deep_out = cv2.imread(str(tmp_path / "o" / "deep.png"), cv2.IMREAD_UNCHANGED)
    flat_out = cv2.imread(str(tmp_path / "o" / "flat.png"), cv2.IMREAD_UNCHANGED)
    assert deep_out.dtype == np.uint16
    assert np.abs(deep_out / 257 - flat_out).mean() < 1.5


@pytest.mark.cli
def test_a_run_writes_nothing_in_the_home_folder(tmp_path, model):
    """ONNX Runtime's telemetry writes ~/.cache/Microsoft/DeveloperTools/ on import unless turned off: a run
    writes only its output (HOME and its cache point into an empty folder here, as on a fresh account)."""
    home = tmp_path / "home"
    home.mkdir()
    src = write_jpeg(tmp_path / "a.jpg", RGB, 20)
    quiet_env = {k: v for k, v in os.environ.items() if k not in ("ORT_DISABLE_TELEMETRY", "XDG_CACHE_HOME")}
    proc = cli(src, "-o", tmp_path / "out.png", "--model", model, env={**quiet_env, "HOME": str(home)})
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "out.png").is_file()
    assert [p.relative_to(home).as_posix() for p in home.rglob("*")] == []


@pytest.mark.cli
def test_a_clean_png_is_restored_with_a_note_and_a_video_points_to_runtime_video(tmp_path, model):
    """A PNG has no JPEG artifacts unless it was a JPEG before: restored (the file cannot tell), with a note on
    stderr; a JPEG run has none. A video given to the image command: one line naming runtime.video, exit 2."""
    png = tmp_path / "clean.png"
    cv2.imwrite(str(png), RGB)
    jpeg = write_jpeg(tmp_path / "photo.jpg", RGB, 20)
    proc = cli(png, "-o", tmp_path / "out", "--model", model)
    assert proc.returncode == 0 and (tmp_path / "out" / "clean.png").is_file(), proc.stderr
    assert "(not a JPEG)" in proc.stdout
    assert f"note: {png} is not JPEG: no JPEG artifacts to remove unless JPEG-compressed before" in proc.stderr
    proc = cli(jpeg, "-o", tmp_path / "out", "--model", model)
    assert proc.returncode == 0 and "not JPEG" not in proc.stderr, proc.stderr
    clip = tmp_path / "my clip.mp4"
    clip.write_bytes(b"\0\0\0\x18ftypmp42")
    proc = cli(clip, "-o", tmp_path / "video_out", "--model", model)
    expected = f"error: {clip}: a video: restore it with python -m runtime.video '{clip}' OUTPUT\n"
    assert proc.returncode == 2 and proc.stderr == expected, proc.stderr
    assert not (tmp_path / "video_out").exists()


@pytest.mark.parametrize("pattern", ["CLIP.MP4", "Holiday.MoV", "clip.mkv", "*.MP4"])
def test_a_video_of_any_suffix_case_points_to_runtime_video(tmp_path, model, capsys, pattern):
    """A camera's CLIP.MP4 (or a pattern matching it) given to the image command is a video as clip.mp4 is: exit 2,
    one line naming runtime.video, nothing written; not a decode failure (exit 1)."""
    from runtime.infer import main

    clip = tmp_path / pattern.replace("*", "CLIP")
    clip.write_bytes(b"\0\0\0\x18ftypmp42")
    assert main([str(tmp_path / pattern), "-o", str(tmp_path / "out"), "--model", str(model)]) == 2
    command = f"python -m runtime.video {shlex.quote(str(clip))} OUTPUT"
    assert capsys.readouterr().err == f"error: {clip}: a video: restore it with {command}\n"
    assert not (tmp_path / "out").exists()


@pytest.mark.cli
def test_strength_names_its_outputs_and_shows_on_the_result_line(tmp_path, model):
    """A lighter --strength into the folder of a full run writes its own file (not skipped as "exists"), names it and
    says it on the result line; one tile is "1 tile". One input: stdout is its result line alone (no summary line)."""
    (tmp_path / "in").mkdir()
    src = write_jpeg(tmp_path / "in" / "a.jpg", RGB, 20)
    out = tmp_path / "out"
    proc = cli(src, "-o", out, "--model", model)  # 48×72: one tile
    line = rf"{re.escape(str(src))} \(JPEG q\d+\) → {re.escape(str(out / 'a.png'))}  \[local fp32, 1 tile, [\d.]+ s, "
    assert proc.returncode == 0 and re.fullmatch(line + r"consistent [\d.]+ %\]\n", proc.stdout), proc.stdout
    full = (out / "a.png").read_bytes()
    proc = cli(src, "-o", out, "--model", model, "--strength", "0.5")
    assert proc.returncode == 0 and "exists" not in proc.stderr, proc.stderr
    assert re.search(
        rf"→ {re.escape(str(out / 'a_strength0.5.png'))}  \[.*, strength 0.5, consistent [\d.]+ %\]\n", proc.stdout
    )
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "a_strength0.5.png"]
    assert (out / "a.png").read_bytes() == full and (out / "a_strength0.5.png").read_bytes() != full
    proc = cli(src, "--model", model, "--strength", "0.5")  # next to the input: still an earlier output by its suffix
    assert proc.returncode == 0 and (tmp_path / "in" / "a_strength0.5_wcdgan.png").is_file()
    proc = cli(tmp_path / "in", "--model", model, "--strength", "0.5")
    assert proc.returncode == 0 and "a_strength0.5_wcdgan.png (" not in proc.stdout, proc.stdout


def test_strength_tags_outputs_in_a_folder_given_with_a_slash(tmp_path, model, capsys):
    """-o new.png/ (a folder by its trailing slash) names the outputs as -o DIR does: a full and a lighter run into
    it keep a file each, the lighter one tagged; once it exists, -o new.png (no slash) is that folder too."""
    from runtime.infer import main

    src = write_jpeg(tmp_path / "a.jpg", RGB, 20)
    out = tmp_path / "new.png"
    for extra in ([], ["--strength", "0.5"]):
        assert main([str(src), "-o", f"{out}/", "--model", str(model), "-q", *extra]) == 0
    assert main([str(src), "-o", str(out), "--model", str(model), "-q", "--strength", "0.25"]) == 0
    assert "exists" not in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "a_strength0.25.png", "a_strength0.5.png"]
    assert (out / "a.png").read_bytes() != (out / "a_strength0.5.png").read_bytes()


def test_help_paragraphs_are_not_broken_mid_sentence():
    from runtime.infer import DESCRIPTION

    for paragraph in DESCRIPTION.strip().split("\n\n"):
        lines = paragraph.splitlines()
        assert all(len(line) > 80 for line in lines[:-1]), lines


@pytest.mark.cli
def test_usage_and_setup_errors(tmp_path, model):
    src = write_jpeg(tmp_path / "a.jpg", RGB, 50)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    cases = [
        ((src, "--model", model, "-o", blocker / "out.png"), 1, "cannot write"),  # unwritable output
        ((src, "--model", tmp_path / "missing.onnx"), 2, "no such model"),
        ((tmp_path / "nothing*.jpg", "--model", model), 2, "no such file"),
        ((src, "--model", model, "--backend", "ort-cuda"), 2, "ort-cuda unavailable"),
        ((src, "--tile", "abc"), 2, "expected N or HxW"),
    ]
    for args, code, message in cases:
        proc = cli(*args)
        assert proc.returncode == code, (args, proc.stderr)
        assert message in proc.stderr
        _no_traceback(proc)


@pytest.mark.cli
def test_compare_reference_and_strength(tmp_path, model):
    from runtime.io import read_image
    from runtime.strength import blend

    src, ref = tmp_path / "in", tmp_path / "ref"
    src.mkdir()
    ref.mkdir()
    cv2.imwrite(str(ref / "a.png"), cv2.cvtColor(RGB, cv2.COLOR_RGB2BGR))
    write_jpeg(src / "a.jpg", RGB, 10)
    write_jpeg(src / "b.jpg", RGB, 30)  # no original: shown without metrics
    common = ("--model", model, "--tile", "32")
    proc = cli(src, "-o", tmp_path / "out", *common, "--compare", "--reference", ref)
    assert proc.returncode == 0, proc.stderr
    folder = tmp_path / "out" / "compare"
    assert sorted(p.name for p in folder.iterdir()) == ["a_compare.png", "b_compare.png", "report.html"]
    assert proc.stdout.splitlines()[-1] == f"compare report: {folder / 'report.html'}"  # a result: stdout, last
    report = (folder / "report.html").read_text(encoding="utf-8")
    assert "mean of 1" in report and "JPEG q10" in report and "JPEG q30" in report
    assert re.search(r"<td>local</td><td>fp32</td><td>(ort-cpu|ort-cuda|tensorrt)</td>", report)
    picture = read_image(folder / "a_compare.png").pixels  # JPEG | restored | original, each column 120 px or more
    assert picture.shape[1] >= 3 * 120 and picture.shape[0] > RGB.shape[0]

    half = tmp_path / "half.png"
    proc = cli(src / "a.jpg", "-o", half, *common, "--strength", "0.5", f"--compare={tmp_path / 'c'}", "-q")
    assert proc.returncode == 0 and proc.stdout == "", proc.stderr
    jpeg, full = read_image(src / "a.jpg").pixels, read_image(tmp_path / "out" / "a.png").pixels
    assert not np.array_equal(jpeg, full)
    np.testing.assert_array_equal(read_image(half).pixels, blend(jpeg, full, 0.5))
    assert "strength 0.5" in (tmp_path / "c" / "report.html").read_text(encoding="utf-8")
    for args, message in (
        (("--reference", ref), "--reference needs --compare"),
        (("--compare", "--reference", src / "a.jpg"), "no such folder"),
        (("--strength", "0"), "--strength must be a number in (0, 1], got 0.0"),
        (("--strength", "1.5"), "--strength must be a number in (0, 1]"),
        (("--strength", "nan"), "--strength must be a number in (0, 1]"),
        (("--strength", "half"), "invalid float value"),
        (("--compare", src / "a.jpg"), "not a folder"),
    ):
        proc = cli(src / "a.jpg", "-o", tmp_path / "x.png", *common, *args)
        assert proc.returncode == 2 and message in proc.stderr, (args, proc.stderr)
        _no_traceback(proc)
    assert not (tmp_path / "x.png").exists()


def _tree(folder):
    """Every file under ``folder`` and its bytes."""
    return {p: p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_compare_files_never_replace_a_file_of_the_run(tmp_path, model):
    """Pictures and report are planned with the inputs and outputs: a collision is refused before any work."""
    src = tmp_path / "in"
    src.mkdir()
    write_jpeg(src / "a.jpg", RGB, 10)
    cv2.imwrite(str(src / "a_compare.png"), RGB)  # an input named like a.jpg's picture
    photos = tmp_path / "photos"
    (photos / "compare").mkdir(parents=True)
    write_jpeg(photos / "compare" / "x.jpg", RGB, 10)
    cv2.imwrite(str(photos / "compare" / "x_compare.png"), RGB)  # inputs in the default compare folder
    twins = tmp_path / "twins"
    twins.mkdir()
    write_jpeg(twins / "a.jpg", RGB, 10)
    write_jpeg(twins / "a_compare.jpg", RGB, 20)  # its output out/a_compare.png is a.jpg's picture there
    before = _tree(tmp_path)
    common = ("--model", model, "--tile", "32")
    out = tmp_path / "out"
    cases = [
        ((src, "-o", out, f"--compare={src}"), "a_compare.png would replace an input of this run"),
        ((photos / "compare", "-o", photos, "--compare"), "x_compare.png would replace an input of this run"),
        ((twins, "-o", out, f"--compare={out}"), "a_compare.png would replace an output of this run"),
        ((src / "a.jpg", "-o", out / "r.png", f"--compare={out / 'r.png'}"), "is an output of this run"),
        ((src / "a.jpg", "-o", out / "r.png", f"--compare={out / 'r.png' / 'sub'}"), "is an output of this run"),
    ]
    for args, message in cases:
        proc = cli(*args, *common)
        assert proc.returncode == 2 and message in proc.stderr, (args, proc.stderr)
        assert len(proc.stderr.splitlines()) == 1, proc.stderr  # one line, before any work
        assert _tree(tmp_path) == before and not out.exists()


def test_compare_without_a_folder_writes_beside_the_first_output(tmp_path, model, capsys):
    """``runtime.infer a/x.jpg b/y.jpg --compare``: compare/ (both pictures and the report) lands beside the first
    output, in a/, and nothing in b/ but y's restoration; no originals were asked for, so no 'no original' line."""
    from runtime.infer import main

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first, second = write_jpeg(tmp_path / "a" / "x.jpg", RGB, 20), write_jpeg(tmp_path / "b" / "y.jpg", RGB, 20)
    assert main([str(first), str(second), "--model", str(model), "--tile", "32", "--compare"]) == 0
    folder = tmp_path / "a" / "compare"
    assert sorted(p.name for p in folder.iterdir()) == ["report.html", "x_compare.png", "y_compare.png"]
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == ["y.jpg", "y_wcdgan.png"]
    out, err = capsys.readouterr()
    assert out.splitlines()[-1] == f"compare report: {folder / 'report.html'}"
    assert "no original" not in err, err


def test_a_single_file_shows_no_files_progress_bar_on_a_terminal(tmp_path, model, monkeypatch):
    """``runtime.infer a.jpg`` on a terminal: no bar over one file (its result line says it all)."""
    from runtime.infer import main

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    src = write_jpeg(tmp_path / "a.jpg", RGB, 20)
    assert main([str(src), "-o", str(tmp_path / "out.png"), "--model", str(model)]) == 0
    assert (tmp_path / "out.png").is_file()
    assert "file/s" not in terminal.getvalue() and "1/1" not in terminal.getvalue(), terminal.getvalue()


def test_compare_shows_existing_outputs_and_keeps_an_earlier_report(tmp_path, model):
    """The README in order: restore, then --compare into the same -o compares the outputs there; a second report
    into the same folder is refused unless -f."""
    src = tmp_path / "in"
    src.mkdir()
    write_jpeg(src / "a.jpg", RGB, 10)
    write_jpeg(src / "b.jpg", RGB, 30)
    out = tmp_path / "out"
    common = ("--model", model, "--tile", "32")
    assert cli(src, "-o", out, *common, "-q").returncode == 0
    restored = {p.name: p.read_bytes() for p in out.iterdir()}
    proc = cli(src, "-o", out, *common, "--compare")
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"^0 restored, 2 skipped, 0 failed in [\d.]+ s: 0.00 MP, no pixels restored; --compare "
                     r"[\d.]+ s$", proc.stdout, re.M)  # fmt: skip
    assert "the report shows 2 existing output(s) as they are" in proc.stderr
    folder = out / "compare"
    assert sorted(p.name for p in folder.iterdir()) == ["a_compare.png", "b_compare.png", "report.html"]
    assert {p.name: p.read_bytes() for p in out.glob("*.png")} == restored  # compared as they are
    report = (folder / "report.html").read_text(encoding="utf-8")
    assert report.count('<section class="image"') == 2 and "2 of the images: the output of an earlier run" in report
    kept = {p.name: (p.stat().st_ino, p.read_bytes()) for p in folder.iterdir()}
    proc = cli(src, "-o", out, *common, "--compare")
    assert proc.returncode == 2 and "report.html exists (3 compare file(s) of an earlier run)" in proc.stderr
    assert {p.name: (p.stat().st_ino, p.read_bytes()) for p in folder.iterdir()} == kept
    proc = cli(src, "-o", out, *common, "--compare", "-f")
    assert proc.returncode == 0, proc.stderr
    replaced = {p.name: p.stat().st_ino for p in folder.iterdir()}
    assert sorted(replaced) == sorted(kept) and all(replaced[n] != kept[n][0] for n in kept)
    assert "earlier run" not in (folder / "report.html").read_text(encoding="utf-8")


def test_the_rate_leaves_out_the_compare_time():
    summary = Summary(restored=2, megapixels=2.0, start=time.perf_counter() - 10)
    line = summary.line(excluded=4.0)  # 10 s in all, 4 of them comparing
    assert re.fullmatch(r"2 restored, 0 skipped, 0 failed in 6\.0 s: 2\.00 MP, 3\.00 s/MP; --compare 4\.0 s", line)


def test_compare_with_a_non_utf8_name(tmp_path, model):
    src = Path(os.fsdecode(bytes(tmp_path) + b"/caf\xe9.jpg"))
    write_jpeg(src, RGB, 10)
    proc = run_module("runtime.infer", src, "-o", tmp_path / "out", "--model", model, "--compare", "-q", text=False)
    assert proc.returncode == 0 and proc.stderr == b"", proc.stderr
    assert os.path.isfile(bytes(tmp_path) + b"/out/compare/caf\xe9_compare.png")
    report = (tmp_path / "out" / "compare" / "report.html").read_text(encoding="utf-8")
    assert "<h2>" + html.escape(str(tmp_path)) + "/caf\ufffd.jpg</h2>" in report


def test_runtime_imports_without_torch():
    assert_imports_without_torch(
        """
        import runtime, runtime.infer, runtime.restorer, common.tiling, runtime.io, runtime.model_files
        import runtime.jpeg_quality, runtime.backends.select, runtime.backends.onnxruntime
        import runtime.engine_cache, runtime.cache, runtime.backends.tensorrt
        from runtime import Restorer
        """
    )


# What start-up must not pay for (issue 34): loaded only by the runs that use them.
HEAVY = ("cv2", "onnxruntime", "tqdm", "PIL", "av", "jpeglib", "runtime.restorer", "runtime.compare")


def test_importing_the_command_loads_no_codec_runtime_or_progress_library():
    """``import runtime`` and ``import runtime.infer`` (and building its --help) load neither OpenCV, ONNX Runtime,
    tqdm, Pillow, PyAV, jpeglib, nor the restorer or the compare output: they cost a one-image process CPU only when
    its work needs them."""
    from tests.conftest import assert_imports_without

    assert_imports_without("import runtime, runtime.infer\nruntime.infer.build_parser().format_help()", HEAVY)


@pytest.mark.cli
def test_a_one_jpeg_run_loads_no_progress_bars_pillow_compare_or_tensorrt_module(tmp_path, model):
    """A one-JPEG run without --compare loads what restoring needs and nothing more: no tqdm (no bar for one file,
    -q), no Pillow (the JPEG's size comes from its frame header), no compare output, no TensorRT backend module where
    TensorRT is not installed; and it still writes its output."""
    src = write_jpeg(tmp_path / "a.jpg", RGB, 20)
    unneeded = ("tqdm", "PIL", "runtime.compare", "filelock")
    if importlib.util.find_spec("tensorrt") is None:
        unneeded += ("runtime.backends.tensorrt",)
    code = (
        "import sys, runtime.infer\n"
        f"code = runtime.infer.main([{str(src)!r}, '-o', {str(tmp_path / 'out.png')!r}, '--model', {str(model)!r}, "
        "'-q', '--no-consistent'])\n"
        f"print(code, sorted(m for m in {unneeded!r} if m in sys.modules))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.stdout.strip() == "0 []", proc.stdout + proc.stderr
    assert (tmp_path / "out.png").is_file()


@pytest.mark.cli
def test_two_inputs_into_one_output_under_a_relative_folder(tmp_path, model):
    """photo.jpg and photo.bmp both restore to out/photo.png under a relative -o: the second is refused (exit 1),
    the first one's restoration is what the file holds (issue 38: a check on unresolved paths misses it)."""
    write_jpeg(tmp_path / "photo.jpg", RGB, 20)
    cv2.imwrite(str(tmp_path / "photo.bmp"), RGB[::-1])
    proc = cli("photo.jpg", "photo.bmp", "-o", "out", "--model", model, cwd=tmp_path)
    assert proc.returncode == 1 and "is also another input's output" in proc.stderr, proc.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["photo.png"]
    _no_traceback(proc)


@pytest.mark.cli
def test_one_output_file_for_two_inputs_is_a_usage_error(tmp_path, model):
    write_jpeg(tmp_path / "a.jpg", RGB, 20)
    write_jpeg(tmp_path / "b.jpg", RGB, 30)
    proc = cli(tmp_path / "a.jpg", tmp_path / "b.jpg", "-o", tmp_path / "out.png", "--model", model)
    assert proc.returncode == 2 and proc.stderr.strip().endswith("names one file but there are 2 inputs: give a folder")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.jpg", "b.jpg"]


@pytest.mark.cli
def test_an_output_file_named_in_capitals(tmp_path, model):
    """-o restored/A.PNG is a PNG file like restored/a.png (a lossless suffix in any case), written where named."""
    src = write_jpeg(tmp_path / "a.jpg", RGB, 20)
    out = tmp_path / "restored" / "A.PNG"
    proc = cli(src, "-o", out, "--model", model, "-q")
    assert proc.returncode == 0, proc.stderr
    assert out.read_bytes().startswith(b"\x89PNG") and cv2.imread(str(out)).shape == RGB.shape


@pytest.mark.parametrize(
    ("options", "field", "value"),
    [
        (["--tile", "256x384"], "tile", (256, 384)), (["--tile", "96"], "tile", (96, 96)),
        (["--spin", "off"], "spin", False), (["--spin", "on"], "spin", True), ([], "spin", None),
        (["--max-pixels", "2.5"], "max_pixels", 2_500_000),
    ],
)  # fmt: skip
def test_options_reach_the_settings(options, field, value):
    """--tile is height × width, --spin off/on/auto, --max-pixels in megapixels."""
    from runtime.cli import settings_from_args
    from runtime.infer import build_parser

    assert getattr(settings_from_args(build_parser().parse_args(["x.jpg", *options])), field) == value


@pytest.mark.parametrize("tile", ["0", "0x64", "64x0", "-8"])
def test_a_tile_of_no_pixels_is_a_usage_error(tile, capsys):
    from runtime.infer import build_parser

    with pytest.raises(SystemExit) as caught:
        build_parser().parse_args(["x.jpg", "--tile", tile])
    assert caught.value.code == 2 and "expected N or HxW with positive sizes" in capsys.readouterr().err


@pytest.mark.parametrize(("tile", "tiles"), [("32X48", 4), ("48X32", 3)])
def test_a_tile_written_with_a_capital_x(tmp_path, model, capsys, tile, tiles):
    """--tile 32X48 is 32 rows × 48 columns, as 32x48: the 48×72 image is restored in 2×2 such tiles (1×3 of
    48X32), as its result line says."""
    from runtime.infer import main

    src, out = write_jpeg(tmp_path / "a.jpg", RGB, 20), tmp_path / "a.png"
    assert main([str(src), "-o", str(out), "--model", str(model), "--tile", tile]) == 0
    assert f"  [local fp32, {tiles} tiles, " in capsys.readouterr().out
    assert cv2.imread(str(out)).shape == RGB.shape


def test_a_folder_s_images_of_any_suffix_case(tmp_path):
    """A camera's IMG_1.JPG is in the folder's inputs like b.png; c.txt and earlier outputs are not."""
    from runtime.cli import collect_inputs

    for name in ("IMG_1.JPG", "b.png", "c.txt", "b_wcdgan.png"):
        (tmp_path / name).write_bytes(b"")
    assert collect_inputs([str(tmp_path)], "_wcdgan") == ([tmp_path / "IMG_1.JPG", tmp_path / "b.png"], [])


def test_an_output_name_the_file_system_refuses_is_an_error_not_a_skip(tmp_path):
    """A 300-byte output name cannot exist: the file is planned (and fails with that reason), never skipped as
    'exists'."""
    plans = plan_files([tmp_path / "a.jpg"], [tmp_path / ("b" * 300 + ".png")], overwrite=False)
    assert plans[0].skip is None and plans[0].error is None


def test_the_consistent_share_is_floored_so_100_means_all():
    """The result line's share of coefficients true to the JPEG: 99.996 % reads 99.99 %, only all of them 100.00 %."""
    from runtime.cli import result_line
    from runtime.restorer import FileResult

    def line(consistent: float) -> str:
        result = FileResult(Path("a.png"), None, "default", "fp32", "ort-cpu", 1, (8, 8), consistent)
        return result_line(Path("a.jpg"), result, 0.5)

    assert line(0.99996).endswith(", consistent 99.99 %]") and line(1.0).endswith(", consistent 100.00 %]")


def test_a_suffix_with_a_folder_separator_is_refused_where_it_names_outputs(tmp_path, model, capsys):
    """``runtime.infer a.jpg --suffix a/b`` (outputs next to the input, named with the suffix) is a usage error: one
    line, exit 2, nothing written; with ``-o`` the suffix names no output and the run restores as asked."""
    from runtime.infer import main

    src = write_jpeg(tmp_path / "a.jpg", RGB, 20)
    assert main([str(src), "--suffix", "a/b", "--model", str(model), "-q"]) == 2
    assert capsys.readouterr().err == "error: --suffix 'a/b': must be a plain file-name part (no folder separators)\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.jpg"]
    out = tmp_path / "out.png"
    assert main([str(src), "-o", str(out), "--suffix", "a/b", "--model", str(model), "-q"]) == 0
    assert cv2.imread(str(out)).shape == RGB.shape


def test_a_jpeg_smaller_than_one_block_reports_all_of_its_coefficients_consistent(tmp_path, model, capsys):
    """A 6×6 JPEG has no whole 8×8 block inside it, hence no coefficient that could disagree: its result line says
    ``consistent 100.00 %``."""
    pytest.importorskip("jpeglib", reason="consistent mode reads coefficients with jpeglib (a dependency)")
    from runtime.infer import main

    src = write_jpeg(tmp_path / "tiny.jpg", RGB[:6, :6], 30)
    assert main([str(src), "-o", str(tmp_path / "tiny.png"), "--model", str(model), "--consistent"]) == 0
    assert re.search(r"tiny\.jpg \(JPEG q30\) → .*\[.*, consistent 100\.00 %\]$", capsys.readouterr().out, re.M)
    assert cv2.imread(str(tmp_path / "tiny.png")).shape == (6, 6, 3)


def test_strength_tags_keep_every_digit():
    from runtime.cli import strength_tag

    assert [strength_tag(s) for s in (1, 0.5, 0.25, 0.125)] == ["", "_strength0.5", "_strength0.25", "_strength0.125"]


def test_an_image_exactly_at_max_pixels_is_restored_and_one_row_over_refused(tmp_path, model, capsys):
    """--max-pixels is an inclusive limit in MP: a 78×52 image (4056 px; 0.004056 × 1e6 is 4055.999… in floating
    point) is restored at --max-pixels 0.004056; 78×53 is refused with the one line naming both sizes (to 3
    significant digits), exit 1, nothing written."""
    from runtime.infer import main

    at, over = tmp_path / "at.png", tmp_path / "over.png"
    cv2.imwrite(str(at), cv2.resize(RGB, (78, 52)))
    cv2.imwrite(str(over), cv2.resize(RGB, (78, 53)))
    common = ["--model", str(model), "--max-pixels", "0.004056", "-q"]
    assert main([str(at), "-o", str(tmp_path / "out"), *common]) == 0
    assert capsys.readouterr().err == ""
    assert cv2.imread(str(tmp_path / "out" / "at.png")).shape == (52, 78, 3)
    assert main([str(over), "-o", str(tmp_path / "out"), *common]) == 1
    assert capsys.readouterr().err == (
        f"error: {over}: declares 78×53 = 0.00413 MP, over the limit of 0.00406 MP "
        "(raise it with --max-pixels if the machine has the memory)\n1 input(s) failed\n"
    )
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["at.png"]


def test_a_folder_run_again_with_its_suffix_leaves_its_outputs_alone(tmp_path, model, capsys):
    """``runtime.infer DIR --suffix _r`` twice: the second run skips both inputs (their outputs exist) and never
    restores an earlier output (a_r.png into a_r_r.png); an image ending with the default suffix is an input then."""
    from runtime.infer import main

    write_jpeg(tmp_path / "a.jpg", RGB, 20)
    cv2.imwrite(str(tmp_path / "b_wcdgan.png"), RGB)
    argv = [str(tmp_path), "--suffix", "_r", "--model", str(model)]
    assert main(argv) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.jpg", "a_r.png", "b_wcdgan.png", "b_wcdgan_r.png"]
    capsys.readouterr()
    assert main(argv) == 0
    out = capsys.readouterr().out  # the summary alone: no result line of a restored file
    assert out.startswith("0 restored, 2 skipped, 0 failed in ") and out.count("\n") == 1, out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.jpg", "a_r.png", "b_wcdgan.png", "b_wcdgan_r.png"]


@pytest.mark.cli
def test_the_files_progress_bar_shows_on_a_terminal_and_never_in_a_log_file(tmp_path, model, monkeypatch):
    """``runtime.infer a.jpg b.jpg 2>log``: the log holds whole lines, no progress bar (no carriage returns, no
    file/s rate); with stderr a terminal the bar over the two files shows."""
    from runtime.infer import main

    inputs = [str(write_jpeg(tmp_path / f"{name}.jpg", RGB, 20)) for name in ("a", "b")]
    argv = [*inputs, "-o", str(tmp_path / "out"), "--model", str(model)]
    log = tmp_path / "log"
    with log.open("wb") as stderr:  # bytes as written: text mode would turn a \r into \n
        proc = run_module("runtime.infer", *argv, capture_output=False, stdout=subprocess.PIPE, stderr=stderr)
    written = log.read_bytes().decode()
    assert proc.returncode == 0 and sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.png", "b.png"]
    assert "\r" not in written and "file/s" not in written and "2/2" not in written, written

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert main([*argv, "-f"]) == 0
    assert "\r" in terminal.getvalue() and re.search(r"100%\|.*\| 2/2 \[.*file/s\]", terminal.getvalue())
