"""runtime.video on tiny clips made here with PyAV: frames, timestamps, audio and colour kept, restored frames equal to
the Restorer's, the pipe mode between processes, interrupts and bad input."""

from __future__ import annotations

import contextlib
import dataclasses
import re
import resource
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from common.cli import UsageError
from tests.conftest import MODULE_ENV, REPO_ROOT, assert_imports_without_torch, run_module
from tests.runtime_fixtures import export_onnx, local_net
from tests.video_fixtures import PHOTO, H, W, jpeg_bytes, make_mjpeg

av = pytest.importorskip("av", reason="PyAV is not installed (the [video] extra)")

from runtime.compare import CompareSettings, compare_images, layout_of  # noqa: E402
from runtime.restorer import Restorer  # noqa: E402 (after the skip: runtime.video needs av)
from runtime.video import (  # noqa: E402
    Colour,
    Span,
    VideoSettings,
    frame_colour,
    frame_to_rgb,
    is_deep,
    restore_video,
    rgb_to_frame,
    side_by_side,
)

pytestmark = pytest.mark.video

ENV = MODULE_ENV


def cli(*args, **kwargs) -> subprocess.CompletedProcess:
    return run_module("runtime.video", *args, **kwargs)


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    """Two per-quality models (trained-on q10 and q15, by their sidecars): the choice is visible per frame."""
    folder = tmp_path_factory.mktemp("models")
    local_net(folder / "q10.onnx", seed=0, jpeg_qualities=[10])
    local_net(folder / "q15.onnx", seed=1, jpeg_qualities=[15])
    return folder


@pytest.fixture(scope="module")
def restorer(models) -> Restorer:
    return Restorer(models, backend="ort-cpu", threads=1)


def make_h264(path: Path, pts_ms: list[int], rgb: np.ndarray, colorspace: str, rotation: int = 0) -> Path:
    """H.264 in MP4 at the given (variable) timestamps, ``colorspace`` "ITU709"/"ITU601" in limited range, with an
    AAC track and a display rotation."""
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=30, options={"crf": "10"})
        video.width, video.height, video.pix_fmt = rgb.shape[1], rgb.shape[0], "yuv420p"
        video.codec_context.time_base = Fraction(1, 1000)
        matrix = {"ITU709": 1, "ITU601": 6}[colorspace]
        video.codec_context.colorspace, video.codec_context.color_range = matrix, 1
        if rotation:
            video.set_display_rotation(rotation)
        sound = out.add_stream("aac", rate=8000, layout="mono")
        for pts in pts_ms:
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame = frame.reformat(format="yuv420p", dst_colorspace=colorspace, dst_color_range="MPEG")
            frame.pts, frame.time_base = pts, Fraction(1, 1000)
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        for i in range(4):
            samples = (np.sin(np.arange(1024) / 7 + i) * 0.3).astype(np.float32)[None]
            frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 8000, i * 1024
            out.mux(sound.encode(frame))
        out.mux(sound.encode(None))
    return path


def decoded(path: Path) -> list:
    """(seconds, RGB, display rotation) of each frame, decoded with runtime.video's colour rule."""
    with av.open(str(path)) as container:
        return [
            (float(f.pts * f.time_base), frame_to_rgb(f, frame_colour(f), is_deep(f)), f.rotation)
            for packet in container.demux(video=0)
            for f in packet.decode()
        ]


def packets(path: Path, kind: str) -> list[tuple[float, bytes]]:
    with av.open(str(path)) as container:
        return [(float(p.pts * p.time_base), bytes(p)) for p in container.demux(**{kind: 0}) if p.size]


@pytest.mark.cli
def test_compare_writes_a_side_by_side_clip(tmp_path, models):
    qualities = [10, 15, 10]
    src = make_mjpeg(tmp_path / "camera.avi", qualities)
    dst, beside = tmp_path / "restored.mkv", tmp_path / "restored_compare.mkv"
    proc = cli(src, dst, "--model", models, "--threads", "1", "--compare")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1] == f"compare clip: {beside}"
    size = f"{dst.stat().st_size / 1e6:.1f} MB for 0.1 s; the input: {src.stat().st_size / 1e6:.1f} MB"
    assert f"note: FFV1 keeps every restored pixel, but is large ({size}) and browsers do not play it or its " in (
        proc.stderr
    )  # the default codec's cost, said once
    assert sorted(p.name for p in tmp_path.iterdir()) == ["camera.avi", "restored.mkv", "restored_compare.mkv"]
    ins, outs, shown = decoded(src), decoded(dst), decoded(beside)
    assert [t for t, _, _ in shown] == pytest.approx([t for t, _, _ in ins], abs=1e-3)
    for (_, before, _), (_, after, _), (_, picture, _), q in zip(ins, outs, shown, qualities, strict=True):
        assert picture.shape[1] > 2 * W and picture.shape[0] > H
        np.testing.assert_array_equal(picture, side_by_side(before, after, f"JPEG q{q}"))  # FFV1: exact
    assert [b for _, b in packets(beside, "audio")] == [b for _, b in packets(src, "audio")]
    for args, message in (
        ((dst, "-f", f"--compare={dst}"), "is OUT"),
        ((tmp_path / "again.mkv", f"--compare={beside}"), "exists"),
        ((tmp_path / "again.mkv", "--compare=side.mp4"), "ffv1 is written to .mkv/.nut/.avi files"),
        (("-", "--raw", "64x48:rgb24", "--compare"), "not --raw"),
    ):
        proc = cli(src, *args, "--model", models)
        assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert not (tmp_path / "again.mkv").exists()


def test_suffixes_in_capitals_are_matroska_too(tmp_path, models):
    """OUT.MKV and --compare=SIDE.MKV are written like their lower-case names, not refused."""
    from runtime.video.cli import main

    src = make_mjpeg(tmp_path / "cam.avi", [10], audio=False)
    dst, side = tmp_path / "OUT.MKV", tmp_path / "SIDE.MKV"
    assert main([str(src), str(dst), f"--compare={side}", "--model", str(models), "--threads", "1", "-q"]) == 0
    assert len(decoded(dst)) == len(decoded(side)) == 1


def test_imports_without_torch():
    assert_imports_without_torch("import runtime.video.cli")  # the command imports every module of the package


@pytest.mark.cli
def test_mjpeg_avi_restores_losslessly_with_per_frame_quality(tmp_path, models, restorer):
    qualities = [10, 10, 15, 15, 10, 15]
    src = make_mjpeg(tmp_path / "camera.avi", qualities)
    before = src.read_bytes()
    dst = tmp_path / "restored.mkv"
    proc = cli(src, dst, "--model", models, "--threads", "1", "--no-consistent")  # the Restorer's pixels exactly
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert re.fullmatch(rf"{re.escape(str(dst))}: 6 frames in [\d.]+ s \([\d.]+ frames/s; decode .*\); "
                        r"not projected: consistent mode off\n", proc.stdout)  # fmt: skip
    assert "JPEG quality per frame: q10–q15" in proc.stderr
    assert "q10 (3 frames)" in proc.stderr and "q15 (3 frames)" in proc.stderr  # the model chosen per frame
    assert "not JPEG-based" not in proc.stderr
    assert src.read_bytes() == before  # the input is untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["camera.avi", "restored.mkv"]  # no temporary left
    ins, outs = decoded(src), decoded(dst)
    assert [t for t, _, _ in outs] == pytest.approx([t for t, _, _ in ins], abs=1e-3) and len(outs) == 6
    for (_, rgb, _), (_, restored, _), q in zip(ins, outs, qualities, strict=True):
        assert np.array_equal(restored, restorer(rgb, q))  # FFV1 RGB: bit-identical to the Restorer
    assert [b for _, b in packets(dst, "audio")] == [b for _, b in packets(src, "audio")]
    with av.open(str(dst)) as out:
        assert out.streams.video[0].codec_context.name == "ffv1"

    h264 = tmp_path / "restored.mov"  # MOV copies PCM audio; MP4 writes it as AAC (test_pcm_in_mp4_...)
    proc = cli(src, h264, "--model", models, "--threads", "1", "--codec", "h264", "-q", "--no-consistent")
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr  # -q: silent on success
    lossy = decoded(h264)
    assert [t for t, _, _ in lossy] == pytest.approx([t for t, _, _ in ins], abs=1e-3)
    assert packets(h264, "audio") == packets(src, "audio")
    for (_, restored, _), (_, again, _) in zip(outs, lossy, strict=True):
        assert np.abs(again.astype(int) - restored).mean() < 5  # crf 18, 4:2:0 on a 64×48 photo

    dst.write_bytes(b"keep me")
    proc = cli(src, dst, "--model", models)
    assert proc.returncode == 2 and "exists" in proc.stderr and dst.read_bytes() == b"keep me"


def test_h264_vfr_with_audio_keeps_timestamps_rotation_and_colour(tmp_path, restorer):
    pattern = np.zeros((H, W, 3), np.uint8)
    for i, colour in enumerate([(230, 30, 40), (40, 200, 60), (30, 50, 220), (200, 180, 40)]):
        pattern[:, 16 * i : 16 * (i + 1)] = colour
    pts_ms = [0, 33, 100, 120, 200, 400]
    src = make_h264(tmp_path / "phone.mp4", pts_ms, pattern, "ITU709", rotation=90)
    ins = decoded(src)
    inside = np.r_[4:12, 20:28, 36:44, 52:60]  # columns away from the patches' edges (4:2:0 chroma blends there)
    first = ins[0][1]
    assert np.abs(first[:, inside].astype(int) - pattern[:, inside]).max() <= 2  # the declared BT.709 limited range
    with av.open(str(src)) as container:
        frame = next(container.decode(video=0))
        as_601 = frame.reformat(format="rgb24", src_colorspace="ITU601", src_color_range="MPEG").to_ndarray()
    assert np.abs(as_601[:, inside].astype(int) - pattern[:, inside]).max() > 10  # the wrong matrix is visible

    dst = tmp_path / "phone.mkv"
    stats = restore_video(src, dst, restorer)
    assert stats.frames == len(pts_ms) and stats.corrupt == stats.missing == 0
    again = restore_video(dst, tmp_path / "again.mkv", restorer)  # its video starts late (the AAC priming)
    assert again.frames == len(pts_ms) and again.missing == 0  # complete: not "truncated"
    outs = decoded(dst)
    in_times, out_times = [t for t, _, _ in ins], [t for t, _, _ in outs]
    assert np.diff(out_times) == pytest.approx(np.diff(in_times), abs=1e-3)  # VFR kept (MKV: millisecond units)
    assert [r for _, _, r in outs] == [90] * len(pts_ms)
    for (_, rgb, _), (_, restored, _) in zip(ins, outs, strict=True):
        assert np.array_equal(restored, restorer(rgb))
    audio_in, audio_out = packets(src, "audio"), packets(dst, "audio")
    assert [b for _, b in audio_out] == [b for _, b in audio_in]
    shift = out_times[0] - in_times[0]  # MKV forbids the AAC priming's negative time: every stream moves alike
    assert [t for t, _ in audio_out] == pytest.approx([t + shift for t, _ in audio_in], abs=1e-3)

    lossy = tmp_path / "phone_h264.mp4"
    restore_video(src, lossy, restorer, VideoSettings("h264", crf=0))
    with av.open(str(lossy)) as container:
        ctx = container.streams.video[0].codec_context
        assert (ctx.name, ctx.colorspace, ctx.color_range) == ("h264", 1, 1)  # BT.709 limited, as the input
    for (_, restored, _), (_, again, _) in zip(outs, decoded(lossy), strict=True):
        assert np.abs(again[:, inside].astype(int) - restored[:, inside]).max() <= 5  # crf 0: 4:2:0, 219 levels


@pytest.mark.parametrize("matrix, value_range", [(6, 1), (1, 1), (1, 2), (6, 2), (9, 1)])
def test_colour_round_trip(matrix, value_range):
    patches = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255], [20, 20, 20], [200, 120, 40]])
    rgb = np.repeat(np.repeat(patches[None].astype(np.uint8), 16, axis=0), 16, axis=1)  # 16×96, flat 16×16 patches
    colour = Colour(matrix, value_range, 2, 2)
    frame = rgb_to_frame(rgb, "yuv420p", colour)
    assert (int(frame.colorspace), int(frame.color_range)) in ((matrix, value_range), (5, value_range))
    inside = np.isin(np.arange(96) % 16 // 4, (1, 2))  # away from the patches' edges, where 4:2:0 chroma blends them

    def error(decoded: np.ndarray) -> int:
        return int(np.abs(decoded[:, inside].astype(int) - rgb[:, inside]).max())

    assert error(frame_to_rgb(frame, colour)) <= 2  # 8-bit Y, Cb, Cr rounding
    assert error(frame_to_rgb(frame, Colour(1 if matrix != 1 else 6, value_range, 2, 2))) > 10  # the matrix matters
    assert error(frame_to_rgb(frame, Colour(matrix, 3 - value_range, 2, 2))) > 10  # and so does the range


@pytest.mark.cli
def test_mov_start_duration_and_odd_size(tmp_path, restorer):
    src = make_mjpeg(tmp_path / "clip.mov", [10] * 8, size=(W - 1, H - 1))
    dst = tmp_path / "part.mkv"
    part = VideoSettings(span=Span(0.08, 0.12), consistent=False)  # frames 2, 3, 4 at 25 fps, as the Restorer's
    stats = restore_video(src, dst, restorer, part)
    ins, outs = decoded(src), decoded(dst)
    assert stats.frames == 3 and [t for t, _, _ in outs] == pytest.approx([0.0, 0.04, 0.08], abs=1e-3)
    assert outs[0][1].shape == (H - 1, W - 1, 3)
    for (_, rgb, _), (_, restored, _) in zip(ins[2:5], outs, strict=True):
        assert np.array_equal(restored, restorer(rgb, 10))
    assert all(0 <= t < 0.12 for t, _ in packets(dst, "audio"))
    proc = cli(src, tmp_path / "odd.mp4", "--codec", "h264")
    assert proc.returncode == 2 and "even width and height" in proc.stderr and not (tmp_path / "odd.mp4").exists()


def test_start_counts_from_the_first_timestamp(tmp_path, restorer):
    src = tmp_path / "broadcast.ts"
    with av.open(str(src), "w") as out:  # MPEG-TS clips rarely start at 0: this one starts at 10 s
        video = out.add_stream("libx264", rate=25, options={"bf": "0"})
        video.width, video.height, video.pix_fmt = W, H, "yuv420p"
        for i in range(10):
            frame = av.VideoFrame.from_ndarray(np.roll(PHOTO, i, axis=1), format="rgb24").reformat(format="yuv420p")
            frame.pts, frame.time_base = 250 + i, Fraction(1, 25)
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
    whole = [t for t, _, _ in decoded(src)]
    assert whole[0] == pytest.approx(10.0, abs=0.01)
    dst = tmp_path / "part.mkv"
    assert restore_video(src, dst, restorer, VideoSettings(span=Span(0.12, 0.12))).frames == 3  # as ffmpeg -ss
    assert [t for t, _, _ in decoded(dst)] == pytest.approx([0.0, 0.04, 0.08], abs=1e-3)
    whole_dst = tmp_path / "whole.mkv"
    restore_video(src, whole_dst, restorer)
    assert [t for t, _, _ in decoded(whole_dst)] == pytest.approx(whole, abs=1e-3)  # a whole clip keeps its times


@pytest.mark.parametrize("suffix", [".avi", ".mkv"])  # video time base 1/25, 1/1000
def test_start_on_a_frame_puts_that_frame_at_zero_and_shifts_the_audio_alike(tmp_path, models, restorer, suffix):
    """--start 1.88 is frame 47 of a 25 fps clip (46.999… frames, 1879.999… ms in floating point): the part's frames
    are at 0, 0.04, 0.08 and 0.12 s, the first one frame 47 restored, and the audio packets in the part keep their
    bytes, 1.88 s earlier."""
    from runtime.video.cli import main

    src, dst = make_mjpeg(tmp_path / f"cam{suffix}", [10] * 60), tmp_path / "part.mkv"
    argv = [str(src), str(dst), "--start", "1.88", "--duration", "0.16", "--no-consistent"]
    assert main([*argv, "--model", str(models), "--threads", "1", "-q"]) == 0
    outs = decoded(dst)
    assert [t for t, _, _ in outs] == pytest.approx([0.0, 0.04, 0.08, 0.12], abs=1e-4)
    assert np.array_equal(outs[0][1], restorer(decoded(src)[47][1], 10))
    audio_in = [(t, data) for t, data in packets(src, "audio") if 1.88 <= t < 2.04]
    audio_out = packets(dst, "audio")
    assert len(audio_in) == 2 and [data for _, data in audio_out] == [data for _, data in audio_in]
    assert [t for t, _ in audio_out] == pytest.approx([t - 1.88 for t, _ in audio_in], abs=1e-4)


def make_ten_bit(path: Path) -> Path:
    """Three frames of 10-bit (yuv420p10le) H.265, limited range."""
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx265", rate=25, options={"x265-params": "log-level=error"})
        video.width, video.height, video.pix_fmt = W, H, "yuv420p10le"
        for i in range(3):
            frame = av.VideoFrame.from_ndarray(np.roll(PHOTO, i, axis=1), format="rgb24").reformat(format="yuv420p10le")
            frame.pts = i
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
    return path


def test_ten_bit_stays_sixteen_bit(tmp_path, restorer):
    src = make_ten_bit(tmp_path / "deep.mkv")
    dst = tmp_path / "deep_out.mkv"
    restore_video(src, dst, restorer)
    ins, outs = decoded(src), decoded(dst)
    assert ins[0][1].dtype == np.uint16 and len(outs) == 3
    for (_, rgb, _), (_, restored, _) in zip(ins, outs, strict=True):
        assert restored.dtype == np.uint16 and np.array_equal(restored, restorer(rgb))


def test_ten_bit_into_a_lossy_codec_keeps_its_colours(tmp_path, restorer):
    """A 10-bit limited-range source written with --codec h264 (10-bit YUV out): each frame's mean R, G and B are
    within 1 % of the restoration's taken through FFmpeg's own 10-bit 4:2:0 (the clip declares no matrix: BT.601
    limited by the rule, out as in), no colour cast."""
    src = make_ten_bit(tmp_path / "deep.mkv")
    dst = tmp_path / "deep_out.mp4"
    restore_video(src, dst, restorer, VideoSettings("h264"))
    outs = decoded(dst)
    assert len(outs) == 3
    for (_, rgb, _), (_, restored, _) in zip(decoded(src), outs, strict=True):
        yuv = av.VideoFrame.from_ndarray(restorer(rgb), format="rgb48le").reformat(
            format="yuv420p10le", dst_colorspace="ITU601", dst_color_range="MPEG"
        )
        expected = frame_to_rgb(yuv, frame_colour(yuv), deep=True)  # read back as decoded() reads the output
        assert restored.dtype == np.uint16
        np.testing.assert_allclose(
            restored.reshape(-1, 3).mean(axis=0), expected.reshape(-1, 3).mean(axis=0), atol=0.01 * 65535
        )


@pytest.mark.cli
def test_truncated_and_garbage_inputs(tmp_path, models):
    full = make_mjpeg(tmp_path / "full.avi", [10] * 10, audio=False).read_bytes()
    src = tmp_path / "cut.avi"
    src.write_bytes(full[: len(full) * 3 // 4])
    readable = len(decoded_safely(src))
    dst = tmp_path / "cut.mkv"
    proc = cli(src, dst, "--model", models, "-q")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "corrupt packet(s) skipped" in proc.stderr
    assert 1 <= len(decoded(dst)) == readable < 10  # every frame that decodes, nothing more
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video at all" * 100)
    proc = cli(junk, tmp_path / "junk.mkv", "--model", models)
    assert proc.returncode == 1 and "cannot read as a video" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "junk.mkv").exists()


def test_subtitles_are_copied(tmp_path, restorer):
    srt = tmp_path / "subs.srt"
    srt.write_text("1\n00:00:00,000 --> 00:00:00,080\nhello\n\n2\n00:00:00,120 --> 00:00:00,200\nworld\n")
    src = tmp_path / "subtitled.mkv"
    with av.open(str(srt)) as subtitles, av.open(str(src), "w") as out:
        video = out.add_stream("mjpeg", rate=25)
        video.width, video.height, video.pix_fmt = W, H, "yuvj420p"
        text = out.add_stream_from_template(subtitles.streams[0])
        for i in range(6):
            packet = av.Packet(jpeg_bytes(PHOTO, 20))
            packet.stream, packet.time_base, packet.pts, packet.dts = video, Fraction(1, 25), i, i
            out.mux(packet)
        for packet in subtitles.demux():
            if packet.size:
                packet.stream = text
                out.mux(packet)
    dst = tmp_path / "out.mkv"
    assert restore_video(src, dst, restorer).frames == 6
    assert packets(dst, "subtitles") == packets(src, "subtitles") == [(0.0, b"hello"), (0.12, b"world")]


def test_benchmark_writes_where_asked(tmp_path):
    import json

    from benchmarks import video

    assert video.main(["--sizes", "tiny", "--precisions", "int8", "--frames", "2", "-q", "-o", str(tmp_path)]) == 0
    (row,) = json.loads((tmp_path / "video.json").read_text())["rows"]
    assert row["frames"] == 2 and row["frames_per_s"] > 0 and 0 < row["restore_share"] <= 1.0
    assert "| tiny | int8 | 2 |" in (tmp_path / "video.md").read_text()


def decoded_safely(path: Path) -> list:
    """Frames PyAV decodes from ``path``, skipping the packets it cannot decode."""
    frames = []
    with av.open(str(path)) as container:
        for packet in container.demux(video=0):
            with contextlib.suppress(av.error.FFmpegError):
                frames += packet.decode()
    return frames


@pytest.mark.cli
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_interrupt_leaves_nothing(tmp_path, models, signum):
    src = tmp_path / "long.avi"
    frame = jpeg_bytes(PHOTO, 10)
    with av.open(str(src), "w") as out:
        video = out.add_stream("mjpeg", rate=25)
        video.width, video.height, video.pix_fmt = W, H, "yuvj420p"
        for i in range(3000):  # ~10 s of restoring here: the signal comes long before the end
            packet = av.Packet(frame)
            packet.stream, packet.time_base, packet.pts, packet.dts = video, Fraction(1, 25), i, i
            out.mux(packet)
    before = src.read_bytes()
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "runtime.video", src, out_dir / "long.mkv", "--model", models],
                            env=ENV, cwd=REPO_ROOT, stderr=subprocess.PIPE, text=True)  # fmt: skip
    deadline = time.monotonic() + 60
    while not any(out_dir.iterdir()) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)  # the temporary appears when frames start flowing
    time.sleep(0.3)
    proc.send_signal(signum)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signum, stderr
    assert "interrupted" in stderr and "Traceback" not in stderr
    assert list(out_dir.iterdir()) == []  # neither output nor temporary
    assert src.read_bytes() == before


def _file_size_limit(size: int) -> Callable[[], None]:
    """A ``preexec_fn``: the command's writes past ``size`` bytes of a file fail (EFBIG, as on a full disk)."""

    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # else the kernel kills the writer instead of failing the write
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))

    return limit


@pytest.mark.cli
def test_a_write_failing_as_out_is_finished_exits_1_and_leaves_nothing(tmp_path, models):
    """OUT's bytes that can only be written when it is finished (the whole tiny clip is buffered until then) failing
    to be written, as on a full disk: exit 1 with the error on one line, no OUT and no temporary left."""
    src = make_mjpeg(tmp_path / "camera.avi", [10] * 6, audio=False)
    dst = tmp_path / "restored.mkv"
    proc = cli(src, dst, "--model", models, "-q", preexec_fn=_file_size_limit(1000))
    assert proc.returncode == 1, proc.stderr
    assert re.fullmatch(rf"error: {re.escape(f'{src} → {dst}')}: .*File too large\n", proc.stderr), proc.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["camera.avi"]


@pytest.mark.cli
def test_pipe_mode_between_two_processes(tmp_path, models, restorer):
    src = make_mjpeg(tmp_path / "cam.avi", [10] * 5, audio=False)
    producer_code = (
        "import sys, av\n"
        "with av.open(sys.argv[1]) as c:\n"
        "    for f in c.decode(video=0):\n"
        "        sys.stdout.buffer.write(f.to_ndarray(format='rgb24').tobytes())\n"
    )
    consumer_code = (
        "import sys, numpy as np\n"
        "data = sys.stdin.buffer.read()\n"
        f"np.save(sys.argv[1], np.frombuffer(data, np.uint8).reshape(-1, {H}, {W}, 3))\n"
    )
    result = tmp_path / "frames.npy"
    producer = subprocess.Popen([sys.executable, "-c", producer_code, src], stdout=subprocess.PIPE)
    middle = subprocess.Popen(
        [sys.executable, "-m", "runtime.video", "--raw", f"{W}x{H}:rgb24", "-", "-", "--model", models, "-q"],
        stdin=producer.stdout, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV, cwd=REPO_ROOT,
    )  # fmt: skip
    consumer = subprocess.Popen([sys.executable, "-c", consumer_code, result], stdin=middle.stdout)
    producer.stdout.close()  # the children hold the pipes now
    middle.stdout.close()
    assert consumer.wait(timeout=120) == 0 and producer.wait(timeout=10) == 0
    assert middle.wait(timeout=10) == 0, middle.stderr.read()
    assert middle.stderr.read() == b""
    frames = np.load(result)
    with av.open(str(src)) as container:
        inputs = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(frames) == len(inputs) == 5
    for got, rgb in zip(frames, inputs, strict=True):
        assert np.array_equal(got, restorer(rgb))


@pytest.mark.cli
@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="the ffmpeg program is not installed (CI installs it)")
def test_pipe_mode_between_two_ffmpeg_processes(tmp_path, models, restorer):
    """docs/video.md's pipe example, shrunk: ffmpeg decodes, runtime.video restores raw frames, ffmpeg encodes FFV1."""
    src = make_mjpeg(tmp_path / "cam.avi", [10, 20, 10, 30], audio=False)
    decode = ["ffmpeg", "-v", "error", "-i", str(src), "-f", "rawvideo", "-pix_fmt", "rgb24", "-"]
    out = tmp_path / "restored.mkv"
    encode = ["ffmpeg", "-v", "error", "-f", "rawvideo", "-pix_fmt", "rgb24", "-video_size", f"{W}x{H}",
              "-framerate", "25", "-i", "-", "-c:v", "ffv1", str(out)]  # fmt: skip
    producer = subprocess.Popen(decode, stdout=subprocess.PIPE)
    middle = subprocess.Popen(
        [sys.executable, "-m", "runtime.video", "--raw", f"{W}x{H}:rgb24", "-", "-", "--model", models, "-q"],
        stdin=producer.stdout, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV, cwd=REPO_ROOT,
    )  # fmt: skip
    consumer = subprocess.Popen(encode, stdin=middle.stdout)
    producer.stdout.close()  # the children hold the pipes now
    middle.stdout.close()
    assert consumer.wait(timeout=120) == 0 and producer.wait(timeout=10) == 0
    assert middle.wait(timeout=10) == 0, middle.stderr.read()
    raw = subprocess.run(decode, capture_output=True, check=True, timeout=60).stdout  # the frames ffmpeg sent
    inputs = np.frombuffer(raw, np.uint8).reshape(-1, H, W, 3)
    got = [rgb for _, rgb, _ in decoded(out)]
    assert len(got) == len(inputs) == 4
    for frame, rgb in zip(got, inputs, strict=True):
        assert np.array_equal(frame, restorer(rgb))  # FFV1 stores RGB losslessly


def test_names_are_files_never_ffmpeg_protocols(tmp_path, models):
    """``file:x.avi`` and ``concat:a|b`` are file names: the named file is read, and written, never another."""
    make_mjpeg(tmp_path / "secret.avi", [10] * 5, audio=False)
    make_mjpeg(tmp_path / "one.avi", [10] * 2, audio=False)
    make_mjpeg(tmp_path / "two.avi", [10] * 2, audio=False)
    for name, frames in (("file:secret.avi", 3), ("concat:one.avi|two.avi", 1)):
        make_mjpeg(tmp_path / name, [15] * frames, audio=False)
        out = tmp_path / f"file:{frames}.mkv"  # read back by --compare: by its own name too
        proc = cli(name, out.name, "--model", models, "--compare", "-q", cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        assert len(decoded(out)) == len(decoded(out.with_name(out.stem + "_compare.mkv"))) == frames
    hls = tmp_path / "list.m3u8"  # a playlist names other files: refused, not followed
    hls.write_text("#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1,\nsecret.avi\n#EXT-X-ENDLIST\n")
    proc = cli(hls, tmp_path / "hls.mkv", "--model", models)
    assert proc.returncode == 1 and "only the named file is read" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "hls.mkv").exists()


@pytest.mark.parametrize("codec", ["h264", "h265"])
def test_crf_0_is_lossless_yuv(tmp_path, restorer, codec):
    """--crf 0 stores exactly the YUV that the restored RGB (the FFV1 output) converts to: bit for bit."""
    src = make_mjpeg(tmp_path / "camera.avi", [10, 15, 10], audio=False)
    rgb, lossless = tmp_path / "rgb.mkv", tmp_path / f"{codec}.mkv"
    restore_video(src, rgb, restorer)
    restore_video(src, lossless, restorer, VideoSettings(codec, crf=0))
    with av.open(str(src)) as container:
        colour = frame_colour(next(container.decode(video=0)))
    with av.open(str(lossless)) as container:
        planes = [f.to_ndarray() for f in container.decode(video=0)]  # yuv420p: Y, then U and V, stacked
    expected = [rgb_to_frame(pixels, "yuv420p", colour).to_ndarray() for _, pixels, _ in decoded(rgb)]
    assert len(planes) == len(expected) == 3
    for got, want in zip(planes, expected, strict=True):
        np.testing.assert_array_equal(got, want)


def test_start_and_duration_on_mpeg_ts_with_short_gops(tmp_path, restorer):
    """MPEG-TS has no index: a seek to its first timestamp lands on a later keyframe; every part still decodes."""
    src = tmp_path / "broadcast.ts"
    with av.open(str(src), "w") as out:
        video = out.add_stream("libx264", rate=25, options={"g": "12", "bf": "2"})
        video.width, video.height, video.pix_fmt = W, H, "yuv420p"
        for i in range(60):
            frame = av.VideoFrame.from_ndarray(np.roll(PHOTO, 3 * i, axis=1), format="rgb24").reformat(format="yuv420p")
            frame.pts, frame.time_base = 35 + i, Fraction(1, 25)  # starts at 1.4 s, as ffmpeg writes MPEG-TS
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
    ins = decoded(src)
    for start, first in ((0.0, 0), (0.5, 13), (1.02, 26)):  # 0.5 s: between frames 12 and 13
        dst = tmp_path / f"part{start}.mkv"
        assert restore_video(src, dst, restorer, VideoSettings(span=Span(start, 0.4))).frames == 10
        outs = decoded(dst)
        assert np.diff([t for t, _, _ in outs]) == pytest.approx([0.04] * 9, abs=1e-3) and outs[0][0] < 0.04
        assert np.array_equal(outs[0][1], restorer(ins[first][1]))  # the part's first frame, not a later one


def test_more_usage_errors_are_one_line(tmp_path, models):
    src = make_mjpeg(tmp_path / "cam.avi", [10] * 2, audio=False)
    long_name = "a" * 252 + ".mkv"  # 256 bytes
    for args, message in (
        ((src, "x.mkv", "--start", "1:-30"), "expected seconds or [HH:]MM:SS"),  # not 30 s
        ((src, "x.mkv", "--duration", "0:75"), "below 60"),
        ((src, tmp_path / long_name), "File name too long"),
        ((src, tmp_path / long_name[5:], "--compare"), "File name too long"),  # its _compare name is too long
        ((tmp_path / long_name.replace(".mkv", ".avi"), "x.mkv"), "File name too long"),
        (("--raw", "99999x99999:rgb24", "-", tmp_path / "raw.rgb"), "over --max-pixels"),
    ):
        proc = cli(*args, "--model", models, stdin=subprocess.DEVNULL)
        assert proc.returncode == 2 and message in proc.stderr, proc.stderr
        assert len(proc.stderr.splitlines()) == 1 or "usage:" in proc.stderr, proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cam.avi"]


def test_a_size_change_mid_stream_is_one_clear_line(tmp_path, models):
    src = tmp_path / "resized.avi"
    with av.open(str(src), "w") as out:  # a camera that switched resolution while recording
        video = out.add_stream("mjpeg", rate=25)
        video.width, video.height, video.pix_fmt = W, H, "yuvj420p"
        for i, size in enumerate([(W, H)] * 3 + [(W // 2, H // 2)] * 3):
            packet = av.Packet(jpeg_bytes(cv2.resize(PHOTO, size), 10))
            packet.stream, packet.time_base, packet.pts, packet.dts = video, Fraction(1, 25), i, i
            out.mux(packet)
    proc = cli(src, tmp_path / "out.mkv", "--model", models)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert f"frame size changes at 0.120 s ({W}×{H} → {W // 2}×{H // 2})" in proc.stderr.splitlines()[-1]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["resized.avi"]


def make_ts(path: Path, frames: int) -> Path:
    """H.264 in MPEG-TS (no header: nothing but whole 188-byte transport packets; a .m2ts name: 192-byte ones, a time
    code before each, as Blu-ray and AVCHD cameras write them), as ffmpeg writes it."""
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=25, options={"g": "5"})
        video.width, video.height, video.pix_fmt = W, H, "yuv420p"
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(np.roll(PHOTO, 3 * i, axis=1), format="rgb24").reformat(format="yuv420p")
            frame.pts, frame.time_base = i, Fraction(1, 25)
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
    return path


@pytest.mark.parametrize("suffix", [".mkv", ".avi", ".mov", ".ts", ".m2ts"])  # .m2ts: 192-byte transport packets
def test_a_truncated_file_exits_1_with_the_count(tmp_path, models, suffix):
    full = tmp_path / f"full{suffix}"
    make_ts(full, 20) if suffix.endswith("ts") else make_mjpeg(full, [10] * 20, audio=False)
    if suffix == ".mov":  # the index first (as -movflags faststart writes it): the file opens without its end
        subprocess.run([sys.executable, "-c", "import av, sys; i, o = av.open(sys.argv[1]), av.open(sys.argv[2], 'w', "
                        "options={'movflags': 'faststart'}); s = o.add_stream_from_template(i.streams.video[0])\n"
                        "for p in i.demux(video=0):\n if p.size: p.stream = s; o.mux(p)\no.close()", full,
                        tmp_path / "fast.mov"], check=True)  # fmt: skip
        full = tmp_path / "fast.mov"
    proc = cli(full, tmp_path / "whole.mkv", "--model", models, "-q")
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr  # the complete file: no false alarm
    data = full.read_bytes()
    src = tmp_path / f"cut{suffix}"
    src.write_bytes(data[: len(data) // 2 + 7])
    dst = tmp_path / "restored.mkv"
    proc = cli(src, dst, "--model", models, "-q")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    count = re.search(r"truncated: (?:about|at least) (\d+) frame\(s\) missing at its end; the output holds the (\d+) "
                      "frames that decoded", proc.stderr)  # fmt: skip
    assert count, proc.stderr
    assert int(count[2]) == len(decoded(dst)) < 20
    if not suffix.endswith("ts"):  # a header gives the length: the count is the frames after the cut
        assert abs(int(count[1]) + int(count[2]) - 20) <= 2
    else:  # no header: a file ending inside a transport packet was cut, how many frames it lost is unknown
        assert "truncated: at least 1 frame(s) missing" in proc.stderr, proc.stderr


def test_h264_colour_is_rounded_not_truncated(tmp_path, restorer):
    """The YUV written for h264 against JFIF's exact full-range BT.601 of the restored RGB (the FFV1 output): no
    bias (swscale's conversion put chroma half a level low), each sample within rounding."""
    src = make_mjpeg(tmp_path / "camera.avi", [10, 15], audio=False)  # Motion JPEG: full-range BT.601
    rgb, lossless = tmp_path / "rgb.mkv", tmp_path / "h264.mkv"
    restore_video(src, rgb, restorer)
    restore_video(src, lossless, restorer, VideoSettings("h264", crf=0))  # lossless: the file holds exactly that YUV
    with av.open(str(lossless)) as container:
        written = [f.to_ndarray().astype(float) for f in container.decode(video=0)]
    for (_, pixels, _), yuv in zip(decoded(rgb), written, strict=True):
        r, g, b = np.moveaxis(pixels.astype(float), -1, 0)
        exact_y = 0.299 * r + 0.587 * g + 0.114 * b
        block = (H // 2, 2, W // 2, 2)
        exact_cb = (128 - 0.168736 * r - 0.331264 * g + 0.5 * b).reshape(block).mean(axis=(1, 3)).ravel()
        exact_cr = (128 + 0.5 * r - 0.418688 * g - 0.081312 * b).reshape(block).mean(axis=(1, 3)).ravel()
        flat = yuv.ravel()
        for got, exact in (
            (flat[H * W : H * W * 5 // 4], exact_cb),
            (flat[H * W * 5 // 4 :], exact_cr),
            (yuv[:H], exact_y),
        ):
            assert abs((got - exact).mean()) < 0.15 and np.abs(got - exact).max() <= 0.5 + 1e-3


def test_pcm_in_mp4_becomes_aac_and_422_is_noted(tmp_path, models):
    """A webcam's clip: 4:2:2 Motion JPEG with PCM audio, restored to H.264 in MP4: the console says that the colour
    becomes 4:2:0 and the audio AAC (MP4's PCM, ``ipcm``, plays in few players); the audio lasts as long."""
    src = make_mjpeg(tmp_path / "webcam.avi", [10] * 6)  # with PCM audio
    with av.open(str(src)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    wide = tmp_path / "wide.avi"
    with av.open(str(src)) as container, av.open(str(wide), "w") as out:
        video = out.add_stream("mjpeg", rate=25)
        video.width, video.height, video.pix_fmt = W, H, "yuvj422p"
        sound = out.add_stream_from_template(container.streams.audio[0])
        params = [cv2.IMWRITE_JPEG_QUALITY, 10, cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_422]
        for i, rgb in enumerate(frames):
            ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), params)
            assert ok
            packet = av.Packet(jpeg.tobytes())
            packet.stream, packet.time_base, packet.pts, packet.dts = video, Fraction(1, 25), i, i
            out.mux(packet)
        for packet in container.demux(audio=0):
            if packet.size:
                packet.stream = sound
                out.mux(packet)
    dst = tmp_path / "wide.mp4"
    proc = cli(wide, dst, "--codec", "h264", "--model", models)
    assert proc.returncode == 0, proc.stderr
    assert "note: the input's 4:2:2 colour is stored as 4:2:0 by h264" in proc.stderr
    assert "note: PCM audio does not play from MP4 in browsers and many players: written as AAC" in proc.stderr
    assert "FFV1 keeps every restored pixel" not in proc.stderr
    with av.open(str(dst)) as out, av.open(str(wide)) as container:
        assert out.streams.audio[0].codec_context.name == "aac"
        seconds = [sum(f.samples for f in c.decode(audio=0)) / 8000 for c in (out, container)]
    assert seconds[1] <= seconds[0] <= seconds[1] + 1024 / 8000  # AAC pads its last frame of 1024 samples
    proc = cli(wide, tmp_path / "wide.mkv", "--codec", "h264", "--model", models)  # MKV plays PCM: copied as it is
    assert proc.returncode == 0 and "PCM" not in proc.stderr
    assert packets(tmp_path / "wide.mkv", "audio") == packets(wide, "audio")


def test_the_note_for_other_codecs_is_a_whole_sentence(tmp_path, models):
    proc = cli(make_ts(tmp_path / "clip.ts", 2), tmp_path / "clip.mkv", "--model", models)
    assert proc.returncode == 0, proc.stderr
    notes = [line for line in proc.stderr.splitlines() if "not JPEG-based" in line]
    assert notes == ["note: h264 is not JPEG-based; the model was trained on JPEG artifacts, so on this codec's own it "
                     "may do less (or smooth detail)"]  # fmt: skip


def test_an_rgb_input_can_be_written_as_yuv(tmp_path, restorer):
    """An FFV1 (RGB) input restored to h264: the 4:2:0 YUV in the matrix players assume for its height (not its
    width: 768 pixels wide, 32 lines is BT.601), tagged."""
    rgb = tmp_path / "rgb.mkv"
    restore_video(make_mjpeg(tmp_path / "camera.avi", [10, 15], audio=False, size=(768, 32)), rgb, restorer)
    dst = tmp_path / "again.mp4"
    assert restore_video(rgb, dst, restorer, VideoSettings("h264", crf=0)).frames == 2
    with av.open(str(dst)) as container:
        ctx = container.streams.video[0].codec_context
        assert (ctx.colorspace, ctx.color_range) == (6, 1)  # BT.601 (under 720 lines), limited range
    for (_, before, _), (_, after, _) in zip(decoded(rgb), decoded(dst), strict=True):
        assert np.abs(after.astype(int) - restorer(before)).mean() < 3  # 4:2:0 of the restored frame


@pytest.mark.cli
def test_the_compare_clip_of_an_rgb_input_shows_the_yuv_out_in_its_colours(tmp_path, models, restorer):
    """An FFV1 (RGB) input restored to h264 with --compare: the side-by-side clip's restored column shows OUT's frames
    as a player decodes them (limited-range YUV in OUT's matrix, not the input's full-range RGB), up to the clip's own
    4:2:0 encoding."""
    rgb = tmp_path / "rgb.mkv"
    restore_video(make_mjpeg(tmp_path / "camera.avi", [10, 15], audio=False), rgb, restorer)
    dst = tmp_path / "restored.mp4"
    proc = cli(rgb, dst, "--codec", "h264", "--crf", "0", "--model", models, "-q", "--compare")
    assert proc.returncode == 0, proc.stderr
    beside = tmp_path / "restored_compare.mp4"
    columns = CompareSettings(crops=0)  # the clip's layout: labelled columns, no zoomed crops
    for (_, after, _), (_, shown, _) in zip(decoded(dst), decoded(beside), strict=True):
        y, x = layout_of(compare_images(after, after, settings=columns), columns).image_origin(1)
        assert np.abs(shown[y : y + H, x : x + W].astype(int) - after).mean() < 3  # the clip's 4:2:0 of OUT's frame


def x264_crf(path: Path) -> float:
    """The crf that libx264 wrote into ``path``'s H.264 stream (its options, in an SEI user-data string)."""
    with av.open(str(path)) as container:
        found = re.findall(rb" crf=([\d.]+) ", b"".join(bytes(p) for p in container.demux(video=0)))
    assert len(found) == 1, found
    return float(found[0])


@pytest.mark.cli
def test_the_compare_clip_is_encoded_at_outs_crf(tmp_path, models):
    """--codec h264 --compare: the side-by-side clip is encoded at OUT's crf, the codec's default without --crf
    (not libx264's own 23) and the user's --crf with it."""
    from runtime.video.encode import CODECS

    src = make_mjpeg(tmp_path / "camera.avi", [10, 15], audio=False)
    for crf in (None, 30):
        dst = tmp_path / f"crf{crf or 'default'}.mp4"
        options = ["--crf", str(crf)] if crf else []
        proc = cli(src, dst, "--codec", "h264", *options, "--model", models, "-q", "--compare")
        assert proc.returncode == 0, proc.stderr
        beside = dst.with_name(f"{dst.stem}_compare.mp4")
        assert x264_crf(dst) == x264_crf(beside) == (crf or CODECS["h264"].crf)


class _Blur(torch.nn.Module):
    """A stand-in model that smooths (a 5×5 mean): close to its input on the self-test's smooth image, visibly not on
    a photo, so neither column of a side-by-side clip can pass for the other."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.avg_pool2d(x, 5, stride=1, padding=2, count_include_pad=False)


def test_the_compare_clip_shows_the_input_left_and_the_restoration_right(tmp_path):
    """--compare: the left column of each side-by-side frame is the input frame, the right one the frame written to
    OUT (a visibly smoothed one), both exact in the lossless default FFV1."""
    from runtime.video.cli import main

    model = export_onnx(_Blur(), tmp_path / "blur.onnx", 3, receptive_field_radius=2)
    src = make_mjpeg(tmp_path / "camera.avi", [10, 15], audio=False)
    dst, beside = tmp_path / "restored.mkv", tmp_path / "side.mkv"
    argv = [str(src), str(dst), f"--compare={beside}", "--no-consistent", "--model", str(model), "-q"]
    assert main(argv) == 0
    columns = CompareSettings(crops=0)  # the clip's layout: labelled columns, no zoomed crops
    layout = layout_of(compare_images(PHOTO, PHOTO, settings=columns), columns)
    ins, outs, shown = decoded(src), decoded(dst), decoded(beside)
    for (_, before, _), (_, after, _), (_, picture, _) in zip(ins, outs, shown, strict=True):
        assert np.abs(after.astype(int) - before).mean() > 5  # visibly restored: the columns cannot pass for each other
        (y0, x0), (y1, x1) = layout.image_origin(0), layout.image_origin(1)
        np.testing.assert_array_equal(picture[y0 : y0 + H, x0 : x0 + W], before)
        np.testing.assert_array_equal(picture[y1 : y1 + H, x1 : x1 + W], after)


class Brighten(torch.nn.Module):
    """A "restoration" that contradicts every file: +10 levels everywhere."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + 10 / 255


def brighten_model(path: Path) -> Path:
    """:class:`Brighten` as an RGB ONNX model at ``path``."""
    return export_onnx(Brighten(), path, 3)


@pytest.mark.cli
def test_mjpeg_frames_are_projected_onto_their_own_packets(tmp_path, models):
    """--consistent (the default for Motion JPEG): each restored frame re-encodes, with its own packet's tables, to
    its packet's coefficients (≥ 99.9 % of luma coefficients, checked against the packets as libjpeg wrote them), also
    for packets without Huffman tables (AVI MJPEG: the standard ones are assumed); without it the frames differ and
    leave their packets' intervals. Explicit --consistent refuses other codecs and raw frames (exit 2, one line)."""
    from runtime.jpeg_consistency import consistent_share, read_coefficients

    model = brighten_model(tmp_path / "brighten.onnx")
    photo = (PHOTO.astype(np.float32) * 0.75 + 24).astype(np.uint8)  # no clipped pixels: the projection is exact
    qualities = [10, 30, 50, 20]
    src = make_mjpeg(tmp_path / "cam.avi", qualities, audio=False, photo=photo, huffman=False)
    written = []  # each packet as libjpeg wrote it, tables included, read the ordinary way
    for i, q in enumerate(qualities):
        written.append(tmp_path / f"packet{i}.jpg")
        written[-1].write_bytes(jpeg_bytes(np.roll(photo, 3 * i, axis=1), q))
    packets_coefficients = [read_coefficients(path) for path in written]
    runs = {}
    for name, flags in (("default", ()), ("off", ("--no-consistent",))):
        proc = cli(src, tmp_path / f"{name}.mkv", "--model", model, "--threads", "1", *flags)
        assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
        runs[name] = [rgb for _, rgb, _ in decoded(tmp_path / f"{name}.mkv")]
        shares = [consistent_share(rgb, jpeg) for rgb, jpeg in zip(runs[name], packets_coefficients, strict=True)]
        if name == "default":
            assert min(shares) >= 0.999, shares
            assert re.search(r"; 4 frames projected, consistent ≥ (99\.9\d|100\.00) %\n$", proc.stdout), proc.stdout
        else:
            assert min(shares) < 0.99, shares
            assert proc.stdout.endswith("; not projected: consistent mode off\n")
    assert all(not np.array_equal(a, b) for a, b in zip(runs["default"], runs["off"], strict=True))

    h264 = make_h264(tmp_path / "h264.mp4", [0, 40], photo, "ITU601")
    for args in ((h264, tmp_path / "x.mkv"), ("--raw", f"{W}x{H}:rgb24", "-", tmp_path / "raw.rgb")):
        proc = cli(*args, "--model", models, "--consistent", stdin=subprocess.DEVNULL)
        assert proc.returncode == 2 and len(proc.stderr.splitlines()) == 1, proc.stderr
        assert "--consistent" in proc.stderr and ("not Motion JPEG" in proc.stderr or "raw frames" in proc.stderr)
    proc = cli(h264, tmp_path / "y.mkv", "--model", models)  # the default: restored, not projected, and said so
    assert proc.returncode == 0 and proc.stdout.endswith("; not projected: h264 is not Motion JPEG\n"), proc.stderr
    assert not (tmp_path / "x.mkv").exists() and not (tmp_path / "raw.rgb").exists()


# -- issue 38: what a user meets at the edges (each test kills a realistic one-line bug, planted by hand once) ------


def make_broadcast_ts(path: Path, frames: int = 10) -> Path:
    """H.264 in MPEG-TS whose first frame is at 10 s (as broadcast captures start), 25 fps, no B-frames."""
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=25, options={"bf": "0"})
        video.width, video.height, video.pix_fmt = W, H, "yuv420p"
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(np.roll(PHOTO, i, axis=1), format="rgb24").reformat(format="yuv420p")
            frame.pts, frame.time_base = 250 + i, Fraction(1, 25)
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
    return path


def test_duration_alone_counts_from_the_first_timestamp(tmp_path, restorer):
    """--duration without --start on a clip starting at 10 s: its first 0.12 s (3 frames), as ``ffmpeg -t``."""
    src = make_broadcast_ts(tmp_path / "broadcast.ts")
    dst = tmp_path / "first.mkv"
    assert restore_video(src, dst, restorer, VideoSettings(span=Span(0.0, 0.12))).frames == 3
    assert [t for t, _, _ in decoded(dst)] == pytest.approx([0.0, 0.04, 0.08], abs=1e-3)


@pytest.mark.parametrize("lines", [718, 720])
def test_undeclared_matrix_follows_the_hd_boundary(lines):
    """No matrix declared: BT.709 from 720 lines up, BT.601 below (decoding, and an RGB input written as YUV)."""
    want = 1 if lines >= 720 else 6
    frame = av.VideoFrame(64, lines, "yuv420p")  # colorspace and range unspecified
    colour = frame_colour(frame)
    assert (colour.matrix, colour.range, colour.guessed) == (want, 1, True)
    name = "BT.709" if want == 1 else "BT.601"
    assert colour.describe() == f"{name} limited range (not declared: assumed)"
    rgb_source = Colour(0, 2, 1, 1)  # an FFV1 (RGB) input
    assert (rgb_source.as_yuv(lines).matrix, rgb_source.as_yuv(lines).range) == (want, 1)


def make_tagged_h264(path: Path, primaries: int, trc: int, value_range: int = 1, pix_fmt: str = "yuv420p") -> Path:
    """Two frames of H.264 (BT.2020 matrix, limited range or ``value_range``, 8-bit or ``pix_fmt``) whose primaries
    and transfer tags differ."""
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=25, options={"bf": "0"})
        video.width, video.height, video.pix_fmt = W, H, pix_fmt
        ctx = video.codec_context
        ctx.colorspace, ctx.color_range, ctx.color_primaries, ctx.color_trc = 9, value_range, primaries, trc
        for i in range(2):
            frame = av.VideoFrame.from_ndarray(PHOTO, format="rgb24").reformat(format=pix_fmt)
            frame.pts = i
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
    return path


@pytest.mark.parametrize("codec, suffix, matrix, value_range, source_range",
                         [("ffv1", ".mkv", 0, 2, 1), ("h264", ".mp4", 9, 1, 1), ("h264", ".mp4", 9, 2, 2)])  # fmt: skip
def test_colour_tags_reach_the_output_unswapped(tmp_path, restorer, codec, suffix, matrix, value_range, source_range):
    """The tags of a BT.2020 source reach the output: an RGB one (FFV1: RGB, full range) or a YUV one (h264: the
    source's matrix and range; full range here in 10 bits, declared by the range tag alone: no yuvj format has 10)."""
    pix_fmt = "yuv420p10le" if source_range == 2 else "yuv420p"
    src = make_tagged_h264(tmp_path / "hdr.mkv", 9, 14, source_range, pix_fmt)  # BT.2020 primaries, 10-bit transfer
    with av.open(str(src)) as container:
        first = next(container.decode(video=0))
        assert (int(first.color_primaries), int(first.color_trc), int(first.color_range)) == (9, 14, source_range)
        assert first.format.name == pix_fmt
    dst = tmp_path / f"out{suffix}"
    restore_video(src, dst, restorer, VideoSettings(codec))
    with av.open(str(dst)) as container:
        frame = next(container.decode(video=0))
        tags = (int(frame.colorspace), int(frame.color_range), int(frame.color_primaries), int(frame.color_trc))
    assert tags == (matrix, value_range, 9, 14)


@pytest.mark.parametrize("pix_fmt, shape, dtype", [("rgb48le", (H, W, 3), "<u2"), ("gray16le", (H, W), "<u2"),
                                                   ("gray", (H, W), "u1")])  # fmt: skip
def test_pipe_mode_frame_sizes_of_every_format(restorer, pix_fmt, shape, dtype):
    """Two frames in, two restored frames out, byte for byte the Restorer's, for the 16-bit and gray formats too."""
    import io

    from runtime.video.pipeline import Stats
    from runtime.video.raw import raw_format, restore_raw

    gray = cv2.cvtColor(PHOTO, cv2.COLOR_RGB2GRAY)
    base = PHOTO if len(shape) == 3 else gray
    frames = [np.roll(base, 5 * i, axis=1).astype(dtype) * (257 if dtype == "<u2" else 1) for i in range(2)]
    source, target, stats = io.BytesIO(b"".join(f.tobytes() for f in frames)), io.BytesIO(), Stats()
    restore_raw(source, target, raw_format(f"{W}x{H}:{pix_fmt}"), restorer, None, stats)
    out = np.frombuffer(target.getvalue(), dtype).reshape(-1, *shape)
    assert (stats.frames, stats.corrupt, len(out)) == (2, 0, 2)
    for got, frame in zip(out, frames, strict=True):
        assert np.array_equal(got, restorer(frame.astype(dtype[-2:])))


def test_a_truncated_raw_stream_is_counted_corrupt_and_exits_1(tmp_path, models, capsys):
    from runtime.video.cli import main

    frame_bytes = W * H * 3
    src, dst = tmp_path / "in.rgb", tmp_path / "out.rgb"
    src.write_bytes(np.roll(PHOTO, 1, axis=1).tobytes() + PHOTO.tobytes() + PHOTO.tobytes()[: frame_bytes // 2])
    assert main(["--raw", f"{W}x{H}:rgb24", str(src), str(dst), "--model", str(models), "-q"]) == 1
    assert dst.stat().st_size == 2 * frame_bytes  # the whole frames, restored
    assert capsys.readouterr().err == "error: 1 corrupt packet(s) skipped; the output holds the 2 frames that decoded\n"


def test_a_truncated_16_bit_raw_stream_says_what_was_dropped(tmp_path, models, restorer, capsys):
    """gray16le frames and a partial one after them: the whole frames restored (16-bit, little-endian), one line on
    the partial frame's size (shown without -q) and the error line; exit 1."""
    from runtime.video.cli import main

    gray = cv2.cvtColor(PHOTO, cv2.COLOR_RGB2GRAY).astype("<u2") * 257
    frames = [gray, np.roll(gray, 3, axis=1)]
    src, dst = tmp_path / "in.raw", tmp_path / "out.raw"
    src.write_bytes(b"".join(f.tobytes() for f in frames) + gray.tobytes()[:101])
    assert main(["--raw", f"{W}x{H}:gray16le", str(src), str(dst), "--model", str(models), "--threads", "1"]) == 1
    assert dst.read_bytes() == b"".join(restorer(f.astype("u2")).astype("<u2").tobytes() for f in frames)
    err = capsys.readouterr().err.splitlines()
    assert f"raw input ends with a partial frame (101 of {W * H * 2} bytes): dropped" in err
    assert err[-1] == "error: 1 corrupt packet(s) skipped; the output holds the 2 frames that decoded"


@pytest.mark.parametrize("text, message", [
    ("64x48", "expected WxH:FMT with FMT one of rgb24, rgb48le, gray, gray16le, got '64x48'"),
    ("64x48:yuv420p", "expected WxH:FMT with FMT one of rgb24, rgb48le, gray, gray16le, got '64x48:yuv420p'"),
    ("64by48:rgb24", "expected WxH:FMT (e.g. 640x480:rgb24), got '64by48:rgb24'"),
])  # fmt: skip
def test_a_malformed_raw_format_is_a_usage_error_naming_the_formats(tmp_path, capsys, text, message):
    """--raw without a format, with an unknown one or a malformed size: exit 2 before any work, the last stderr line
    says what is expected (the formats by name when the format is what is wrong)."""
    from runtime.video.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["--raw", text, "-", str(tmp_path / "out.raw")])
    assert exit_.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == f"python -m runtime.video: error: argument --raw: {message}"
    assert not (tmp_path / "out.raw").exists()


@pytest.fixture
def terminal(monkeypatch) -> type:
    """A stand-in for a terminal (``Terminal()``: a text stream whose ``isatty()`` is True) to put as sys.stderr,
    for tests of the progress bars that only a terminal shows."""
    import io
    import threading

    from tqdm import tqdm

    # This process's own lock, not tqdm's default one shared across forks: a bar that fails to draw (a mutant's) keeps
    # its lock, and under mutmut, which forks this process per mutant, every later mutant would wait for it forever.
    monkeypatch.setattr(tqdm, "_lock", threading.RLock(), raising=False)

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    return Terminal


def test_pipe_mode_shows_a_frame_counter_on_a_terminal_only_when_asked(restorer, monkeypatch, terminal):
    """restore_raw(progress=True) on a terminal: a bar counting the frames restored, cleared when done (no line
    left behind in the pipe's stderr); by default (as with -q) nothing is drawn, terminal or not."""
    import io

    from runtime.video.pipeline import Stats
    from runtime.video.raw import raw_format, restore_raw

    class Camera(io.BytesIO):  # a source slower than the bar's refresh interval (0.1 s), as a live one is
        def read(self, size: int = -1) -> bytes:
            time.sleep(0.15)
            return super().read(size)

    def drawn(**progress: bool) -> str:
        stderr, target = terminal(), io.BytesIO()
        with monkeypatch.context() as patch:
            patch.setattr(sys, "stderr", stderr)
            restore_raw(Camera(PHOTO.tobytes() * 2), target, raw_format(f"{W}x{H}:rgb24"), restorer, None, Stats(),
                        **progress)  # fmt: skip
        assert target.getvalue() == restorer(PHOTO).tobytes() * 2
        return stderr.getvalue()

    assert drawn() == drawn(progress=False) == ""
    shown = drawn(progress=True)
    assert re.findall(r"\r(\d+)frame \[", shown)[-1] == "2" and shown.endswith("\r") and "\n" not in shown, shown


def test_pipe_mode_shows_its_progress_and_result_unless_quiet(tmp_path, models, monkeypatch, capsys, terminal):
    """--raw IN OUT on a terminal: a frame counter while it runs and the result line on stdout (the frames, and that
    raw frames are not projected); with -q neither, and the same output."""
    from runtime.video.cli import main

    restore_frames = Restorer.restore_frames

    def slow_restore_frames(self, frames, qualities=None):  # slower than the bar's refresh interval (0.1 s)
        time.sleep(0.15)
        return restore_frames(self, frames, qualities)

    monkeypatch.setattr(Restorer, "restore_frames", slow_restore_frames)
    src = tmp_path / "in.rgb"
    src.write_bytes(PHOTO.tobytes() * 2)
    shown = {}
    for quiet in ("", "-q"):
        stderr = terminal()
        with monkeypatch.context() as patch:
            patch.setattr(sys, "stderr", stderr)
            args = ["--raw", f"{W}x{H}:rgb24", str(src), str(tmp_path / f"out{quiet}.rgb"), "--model", str(models)]
            assert main([*args, "--threads", "1", *[quiet] * bool(quiet)]) == 0
        shown[quiet] = stderr.getvalue(), capsys.readouterr().out
    assert shown["-q"] == ("", "")
    assert re.search(r"\r2frame \[", shown[""][0]), shown
    assert re.fullmatch(rf"{tmp_path / 'out.rgb'}: 2 frames in .*; not projected: raw frames carry no JPEG "
                        r"coefficients\n", shown[""][1]), shown  # fmt: skip
    assert (tmp_path / "out.rgb").read_bytes() == (tmp_path / "out-q.rgb").read_bytes()


def test_pipe_mode_counts_a_slow_reader_as_encode_time(restorer):
    """The time spent writing to a slow reader (the next process in the pipe) is the encode time the result line
    shows: the sum over the frames, within the run's wall time."""
    import io

    from runtime.video.pipeline import Stats
    from runtime.video.raw import raw_format, restore_raw

    class SlowReader(io.BytesIO):
        def write(self, data: bytes) -> int:
            time.sleep(0.05)
            return super().write(data)

    target, stats = SlowReader(), Stats()
    restore_raw(io.BytesIO(PHOTO.tobytes() * 3), target, raw_format(f"{W}x{H}:rgb24"), restorer, None, stats)
    assert target.getvalue() == restorer(PHOTO).tobytes() * 3
    assert 3 * 0.05 <= stats.encode_s <= stats.wall_s


def test_pipe_mode_stdout_carries_the_frames_only(tmp_path, models, capsysbinary):
    """--raw IN - without -q: stdout holds the restored frames, byte for byte those written to a file, and nothing
    else; the result line goes to stderr."""
    from runtime.video.cli import main

    src, dst = tmp_path / "in.rgb", tmp_path / "out.rgb"
    src.write_bytes(PHOTO.tobytes() + np.roll(PHOTO, 5, axis=1).tobytes())
    common = ["--raw", f"{W}x{H}:rgb24", "--model", str(models), "--threads", "1"]
    assert main([*common, str(src), str(dst), "-q"]) == 0
    capsysbinary.readouterr()
    assert main([*common, str(src), "-"]) == 0
    out, err = capsysbinary.readouterr()
    assert len(dst.read_bytes()) == 2 * W * H * 3 and out == dst.read_bytes()
    assert re.search(rb"^-: 2 frames in [\d.]+ s ", err, re.M), err


@pytest.mark.cli
def test_pipe_mode_into_a_reader_that_stops_early_exits_1_with_one_line(models, restorer):
    """``... | python -m runtime.video --raw ... - - | head -c ONE_FRAME``: the reader got the first restored frame;
    the pipe mode stops with exit 1 and one line on stderr (no traceback, no second error when Python exits)."""
    head = ["head", "-c", str(W * H * 3)]
    command = [sys.executable, "-m", "runtime.video", "--raw", f"{W}x{H}:rgb24", "-", "-", "--model", models, "-q"]
    with (
        subprocess.Popen(head, stdin=subprocess.PIPE, stdout=subprocess.PIPE) as reader,
        subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=reader.stdin,
            stderr=subprocess.PIPE,
            env=ENV,
            cwd=REPO_ROOT,
            bufsize=0,
        ) as middle,
    ):
        reader.stdin.close()  # the children hold the pipe now
        with contextlib.suppress(BrokenPipeError):  # it stops reading before it has all 40 frames
            middle.stdin.write(PHOTO.tobytes() * 40)
        middle.stdin.close()
        assert reader.wait(timeout=60) == 0 and middle.wait(timeout=60) == 1
        first, err = reader.stdout.read(), middle.stderr.read()
    assert re.fullmatch(rb"error: the reader of the output closed it after \d+ frames\n", err), err
    assert first == restorer(PHOTO).tobytes()


def test_a_backend_failing_in_pipe_mode_leaves_no_output(tmp_path, models, monkeypatch, capsys):
    """The backend failing on a frame (out of memory, NaN output): exit 1, one line naming the input and the error,
    and no output file (not the frames before it)."""
    from runtime.video.cli import main

    def failing(self, frames, qualities=None):
        raise RuntimeError("CUDA error: an illegal memory access")

    monkeypatch.setattr(Restorer, "restore_frames", failing)
    src, dst = tmp_path / "in.rgb", tmp_path / "out.rgb"
    src.write_bytes(PHOTO.tobytes() * 2)
    assert main(["--raw", f"{W}x{H}:rgb24", str(src), str(dst), "--model", str(models), "-q"]) == 1
    assert capsys.readouterr().err == (
        f"error: {src}: restoration failed (RuntimeError: CUDA error: an illegal memory access)\n"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.rgb"]


@pytest.mark.parametrize("content", [b"", PHOTO.tobytes()[:100]], ids=["empty", "partial"])
def test_a_raw_input_without_a_whole_frame_fails_and_writes_nothing(tmp_path, models, capsys, content):
    """An empty raw input (the ffmpeg before it failed) or one shorter than a frame: exit 1, one error line, no
    output file (not an empty one)."""
    from runtime.video.cli import main

    src, dst = tmp_path / "in.rgb", tmp_path / "out.rgb"
    src.write_bytes(content)
    assert main(["--raw", f"{W}x{H}:rgb24", str(src), str(dst), "--model", str(models), "-q"]) == 1
    assert capsys.readouterr().err == f"error: {src}: no whole {W}x{H}:rgb24 frame ({W * H * 3} bytes) to restore\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.rgb"]


@pytest.mark.parametrize("codec, top", [("h264", 51), ("h265", 51), ("av1", 63)])
def test_crf_limits_are_inclusive(tmp_path, codec, top):
    from runtime.video.cli import build_parser, check_video_options

    src = make_mjpeg(tmp_path / "cam.avi", [10], audio=False)
    for crf in (0, top):
        check_video_options(build_parser().parse_args([str(src), str(tmp_path / "o.mkv"), "--codec", codec,
                                                       "--crf", str(crf)]))  # fmt: skip
    for crf in (-1, top + 1):
        args = build_parser().parse_args([str(src), str(tmp_path / "o.mkv"), "--codec", codec, "--crf", str(crf)])
        with pytest.raises(UsageError, match=r"^--crf goes with --codec h264\|h265 \(0\.\.51\) or av1 \(0\.\.63\)$"):
            check_video_options(args)


@pytest.mark.parametrize("size", [(W - 1, H), (W, H - 1)])
def test_420_outputs_need_both_sides_even(tmp_path, models, capsys, size):
    from runtime.video.cli import main

    src = make_mjpeg(tmp_path / "odd.avi", [10], audio=False, size=size)
    assert main([str(src), str(tmp_path / "odd.mp4"), "--codec", "h264", "--model", str(models)]) == 2
    assert "needs an even width and height" in capsys.readouterr().err
    assert not (tmp_path / "odd.mp4").exists()


def test_max_pixels_counts_megapixels_for_files_and_raw(tmp_path, models, capsys):
    """--max-pixels is in MP: 64×48 frames (0.003072 MP) pass 0.0031 and are refused at 0.003, one line, nothing
    written (a file's: exit 1, found once it is opened; --raw: exit 2, before any work)."""
    from runtime.video.cli import main

    src = make_mjpeg(tmp_path / "cam.avi", [10], audio=False)
    raw = tmp_path / "in.rgb"
    raw.write_bytes(PHOTO.tobytes())
    common = ["--model", str(models), "--threads", "1", "-q"]
    assert main([str(src), str(tmp_path / "ok.mkv"), "--max-pixels", "0.0031", *common]) == 0
    assert main(["--raw", f"{W}x{H}:rgb24", str(raw), str(tmp_path / "ok.rgb"), "--max-pixels", "0.0031", *common]) == 0
    capsys.readouterr()
    assert main([str(src), str(tmp_path / "no.mkv"), "--max-pixels", "0.003", *common]) == 1
    assert capsys.readouterr().err == f"error: {src}: {W}×{H} frames are over --max-pixels 0.003 MP\n"
    assert main(["--raw", f"{W}x{H}:rgb24", str(raw), str(tmp_path / "no.rgb"), "--max-pixels", "0.003", *common]) == 2
    assert capsys.readouterr().err == f"error: --raw {W}x{H}: frames over --max-pixels 0.003 MP\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cam.avi", "in.rgb", "ok.mkv", "ok.rgb"]


def test_frames_exactly_at_max_pixels_are_restored_and_one_pixel_over_refused(tmp_path, models, capsys):
    """--max-pixels is an inclusive limit, as for images: 78×52 frames (4056 px; 0.004056 × 1e6 is 4055.999… in
    floating point) are restored at --max-pixels 0.004056, from a file and from --raw, and refused at 0.004055."""
    from runtime.video.cli import main

    w, h = 78, 52
    src = make_mjpeg(tmp_path / "cam.avi", [10], audio=False, size=(w, h))
    raw = tmp_path / "in.rgb"
    raw.write_bytes(cv2.resize(PHOTO, (w, h)).tobytes())
    common = ["--model", str(models), "--threads", "1", "-q"]
    piped = ["--raw", f"{w}x{h}:rgb24", str(raw)]
    assert main([str(src), str(tmp_path / "at.mkv"), "--max-pixels", "0.004056", *common]) == 0
    assert main([*piped, str(tmp_path / "at.rgb"), "--max-pixels", "0.004056", *common]) == 0
    assert capsys.readouterr().err == ""
    assert [frame.shape for _, frame, _ in decoded(tmp_path / "at.mkv")] == [(h, w, 3)]
    assert (tmp_path / "at.rgb").stat().st_size == w * h * 3
    assert main([str(src), str(tmp_path / "no.mkv"), "--max-pixels", "0.004055", *common]) == 1
    assert capsys.readouterr().err == f"error: {src}: {w}×{h} frames are over --max-pixels 0.004055 MP\n"
    assert main([*piped, str(tmp_path / "no.rgb"), "--max-pixels", "0.004055", *common]) == 2
    assert capsys.readouterr().err == f"error: --raw {w}x{h}: frames over --max-pixels 0.004055 MP\n"
    assert not (tmp_path / "no.mkv").exists() and not (tmp_path / "no.rgb").exists()


def test_forced_quality_chooses_the_model_for_motion_jpeg(tmp_path, restorer):
    """--quality 15 on q10 Motion JPEG: every frame restored by the q15 model, as asked."""
    src = make_mjpeg(tmp_path / "cam.avi", [10, 10], audio=False)
    dst = tmp_path / "forced.mkv"
    stats = restore_video(src, dst, restorer, VideoSettings(quality=15, consistent=False))  # the network's frames
    assert dict(stats.models) == {"q15": 2} and dict(stats.qualities) == {10: 2}
    for (_, rgb, _), (_, restored, _) in zip(decoded(src), decoded(dst), strict=True):
        assert np.array_equal(restored, restorer(rgb, 15)) and not np.array_equal(restored, restorer(rgb, 10))


def test_forced_quality_chooses_the_model_for_raw_frames(tmp_path, models, restorer):
    """--raw with --quality 15: every frame restored by the q15 model, not the one for an unknown quality (q10)."""
    from runtime.video.cli import main

    src, dst = tmp_path / "in.rgb", tmp_path / "out.rgb"
    src.write_bytes(PHOTO.tobytes() * 2)
    assert main(["--raw", f"{W}x{H}:rgb24", str(src), str(dst), "--model", str(models), "--quality", "15", "-q"]) == 0
    assert not np.array_equal(restorer(PHOTO, 15), restorer(PHOTO))
    assert dst.read_bytes() == restorer(PHOTO, 15).tobytes() * 2


def test_seconds_and_raw_sizes_are_checked_at_their_bounds():
    import argparse

    from runtime.video.cli import seconds_arg
    from runtime.video.raw import raw_format

    assert [seconds_arg(t) for t in ("60", "0:59.5", "59:59", "1:00:00", "2:05")] == [60, 59.5, 3599, 3600, 125]
    for text in ("1:60", "0:60.0", "1:60:00"):
        with pytest.raises(argparse.ArgumentTypeError, match="below 60"):
            seconds_arg(text)
    assert raw_format("1x1:gray").shape == (1, 1)
    for text in ("0x480:rgb24", "640x0:rgb24"):
        with pytest.raises(argparse.ArgumentTypeError, match="expected WxH:FMT with FMT one of"):
            raw_format(text)
    from runtime.video.cli import build_parser

    assert build_parser().parse_args(["--raw", "640X480:rgb24", "-", "-"]).raw == raw_format("640x480:rgb24")
    args = build_parser().parse_args(["in.avi", "out.mkv", "--start", ".5", "--duration", "0:.25"])
    assert (args.start, args.duration) == (0.5, 0.25)  # seconds without a leading digit, as float() reads them


def test_a_part_counts_its_own_frames(tmp_path):
    """The frame count logged (and the progress bar's total) is the part's: 8 frames at 25 fps from 0.2 s: 3."""
    from runtime.video.container import probe

    src = make_mjpeg(tmp_path / "cam.avi", [10] * 8, audio=False)
    assert (
        probe(src, Span()).frames == 8
        and probe(src, Span(0.2)).frames == 3
        and probe(src, Span(0.08, 0.12)).frames == 3
    )


def test_one_missing_frame_is_reported(tmp_path, restorer):
    """An AVI cut just before its last frame's packet: 9 frames restored, 1 missing (its header counts 10)."""
    full = make_mjpeg(tmp_path / "full.avi", [10] * 10, audio=False)
    with av.open(str(full)) as container:
        last = [p.pos for p in container.demux(video=0) if p.size][-1]
    src = tmp_path / "cut.avi"
    src.write_bytes(full.read_bytes()[:last])
    stats = restore_video(src, tmp_path / "out.mkv", restorer)
    assert (stats.frames, stats.missing) == (9, 1)


def test_a_missing_span_of_4_6_frames_is_about_5(tmp_path, models):
    """A Matroska clip of 20 frames at 25 fps (its header: 0.8 s) whose 16th frame lasts 16 ms, cut right after
    it: 0.184 s = 4.6 frames are missing, and the line says "about 5" (rounded, not truncated to 4)."""
    full = tmp_path / "full.mkv"
    with av.open(str(full), "w") as out:
        video = out.add_stream("mjpeg", rate=25)
        video.width, video.height, video.pix_fmt = W, H, "yuvj420p"
        for i in range(20):
            packet = av.Packet(jpeg_bytes(np.roll(PHOTO, 3 * i, axis=1), 10))
            packet.stream, packet.time_base, packet.pts, packet.dts = video, Fraction(1, 1000), 40 * i, 40 * i
            packet.duration, packet.is_keyframe = (16 if i == 15 else 40), True
            out.mux(packet)
    with av.open(str(full)) as container:
        cut_at = [p.pos for p in container.demux(video=0) if p.size][16]
    src = tmp_path / "cut.mkv"
    src.write_bytes(full.read_bytes()[:cut_at])
    proc = cli(src, tmp_path / "restored.mkv", "--model", models, "-q")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "truncated: about 5 frame(s) missing at its end; the output holds the 16 frames" in proc.stderr


def test_only_crf_0_selects_the_lossless_mode():
    from runtime.video.encode import CODECS

    h264, h265, av1 = CODECS["h264"], CODECS["h265"], CODECS["av1"]
    assert h264.options(0) == {"qp": "0"} and h265.options(0) == {"x265-params": "lossless=1"}
    assert h264.options(18) == {"crf": "18"} and h265.options(1) == {"crf": "1"}
    assert av1.options(0) == {"crf": "0"} and h264.options(None) == {}


def test_the_quality_line_names_the_median(caplog):
    import collections
    import logging

    from runtime.video.cli import report
    from runtime.video.pipeline import Stats

    stats = Stats(frames=3, qualities=collections.Counter({10: 1, 15: 2}))
    with caplog.at_level(logging.INFO, logger="runtime.video.cli"):
        report(Path("out.mkv"), stats, quiet=True, projected="3 frames projected")
    assert "JPEG quality per frame: q10–q15 (median q15)" in caplog.messages


def test_out_spelled_differently_is_still_the_input(tmp_path, monkeypatch):
    """-f never lets OUT replace IN, however OUT's path is written (here through a sibling folder and ..)."""
    from runtime.video.cli import build_parser, check_video_options

    monkeypatch.chdir(tmp_path)
    make_mjpeg(tmp_path / "clip.avi", [10], audio=False)
    (tmp_path / "sub").mkdir()
    with pytest.raises(UsageError, match=r"^sub/\.\./clip\.avi: is the input; refusing to overwrite an input$"):
        check_video_options(build_parser().parse_args(["clip.avi", "sub/../clip.avi", "-f"]))


IS_OUT = "--compare {compare}: is OUT; the side-by-side clip needs a file of its own"


@pytest.mark.parametrize("out, compare, message", [
    ("out.mkv", "{tmp}/out.mkv", IS_OUT), ("{tmp}/out.mkv", "sub/../out.mkv", IS_OUT),
    ("out.mkv", "sub/../clip.avi", "{compare}: is the input; refusing to overwrite an input"),
])  # fmt: skip
def test_compare_spelled_differently_is_still_out_or_the_input(tmp_path, models, monkeypatch, capsys, out, compare,
                                                                 message):  # fmt: skip
    """--compare=FILE naming OUT or IN by another spelling (absolute, relative, through ..): one error line, exit 2,
    nothing written, the input unchanged."""
    from runtime.video.cli import main

    monkeypatch.chdir(tmp_path)
    before = make_mjpeg(tmp_path / "clip.avi", [10], audio=False).read_bytes()
    (tmp_path / "sub").mkdir()
    out, compare = (p.format(tmp=tmp_path) for p in (out, compare))
    assert main(["clip.avi", out, f"--compare={compare}", "--model", str(models), "-f", "-q"]) == 2
    assert capsys.readouterr().err == f"error: {message.format(compare=compare)}\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.avi", "sub"]
    assert (tmp_path / "clip.avi").read_bytes() == before


def test_stereo_pcm_in_mp4_stays_stereo(tmp_path, restorer):
    """Stereo PCM written to MP4 becomes AAC with both channels."""
    src = tmp_path / "stereo.mkv"
    with av.open(str(src), "w") as out:
        video = out.add_stream("mjpeg", rate=25)
        video.width, video.height, video.pix_fmt = W, H, "yuvj420p"
        sound = out.add_stream("pcm_s16le", rate=8000, layout="stereo")
        for i in range(2):
            packet = av.Packet(jpeg_bytes(PHOTO, 10))
            packet.stream, packet.time_base, packet.pts, packet.dts = video, Fraction(1, 25), i, i
            out.mux(packet)
        samples = (np.sin(np.arange(640) / 5) * 8000).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(
            np.stack([samples, -samples]).T.reshape(1, -1), format="s16", layout="stereo"
        )
        frame.sample_rate, frame.pts = 8000, 0
        out.mux(sound.encode(frame))
        out.mux(sound.encode(None))
    dst = tmp_path / "stereo.mp4"
    restore_video(src, dst, restorer, VideoSettings("h264"))
    with av.open(str(dst)) as container:
        audio = container.streams.audio[0].codec_context
        assert (audio.name, audio.layout.nb_channels) == ("aac", 2)


def test_matroska_duration_tags():
    from runtime.video.container import _duration_tag

    assert _duration_tag("01:02:03.500000000") == pytest.approx(3723.5)
    assert _duration_tag("00:00:00.040000000") == pytest.approx(0.04)
    assert _duration_tag("") is None and _duration_tag("1:xx:3") is None


def test_pipe_mode_reads_whole_frames_from_short_reads():
    """A pipe returns what it has (here at most 1000 bytes a read): frames are still read whole, none corrupt."""
    import io

    from runtime.video.pipeline import Stats
    from runtime.video.raw import raw_format, read_raw

    class Trickle(io.RawIOBase):
        def __init__(self, data: bytes) -> None:
            self.data = io.BytesIO(data)

        def read(self, size: int = -1) -> bytes:
            return self.data.read(min(size, 1000))

    frames = [np.roll(PHOTO, 7 * i, axis=1) for i in range(2)]
    stats = Stats()
    read = list(read_raw(Trickle(b"".join(f.tobytes() for f in frames)), raw_format(f"{W}x{H}:rgb24"), stats))
    assert stats.corrupt == 0 and len(read) == 2
    for got, frame in zip(read, frames, strict=True):
        assert np.array_equal(got.pixels, frame)


@pytest.mark.parametrize("codec, suffix", [("ffv1", ".mkv"), ("h264", ".mp4")])
def test_the_frame_rate_is_kept(tmp_path, restorer, codec, suffix):
    """A 30 fps clip is written at 30 fps (not the 25 assumed for clips that declare none)."""
    src = tmp_path / "cam30.avi"
    with av.open(str(src), "w") as out:
        video = out.add_stream("mjpeg", rate=30)
        video.width, video.height, video.pix_fmt = W, H, "yuvj420p"
        for i in range(4):
            packet = av.Packet(jpeg_bytes(PHOTO, 10))
            packet.stream, packet.time_base, packet.pts, packet.dts, packet.duration = video, Fraction(1, 30), i, i, 1
            out.mux(packet)
    dst = tmp_path / f"out{suffix}"
    restore_video(src, dst, restorer, VideoSettings(codec))
    with av.open(str(dst)) as container:
        assert container.streams.video[0].average_rate == 30


@pytest.mark.parametrize("argv, error", [
    (["{tmp}/folder", "{tmp}/o.mkv"], "{tmp}/folder: is a folder; IN names a video file"),  # found before any work
    (["--raw", f"{W}x{H}:rgb24", "-", "{tmp}/kept.rgb"], "{tmp}/kept.rgb: exists (use -f/--overwrite)"),
    (["--raw", f"{W}x{H}:rgb24", "-", "{tmp}/folder", "-f"], "{tmp}/folder: is a folder; OUT names the output file"),
    (["{tmp}/cam.avi", "{tmp}/o.mkv", "--crf", "20"], "--crf goes with --codec h264|h265 (0..51) or av1 (0..63)"),
    (["--raw", f"{W}x{H}:rgb24", "-", "{tmp}/o.rgb", "--codec", "h264"],
     "--start, --duration, --codec and --compare are for video files, not --raw"),
    (["--raw", f"{W}x{H}:rgb24", "-", "{tmp}/o.rgb", "--start", "1"],
     "--start, --duration, --codec and --compare are for video files, not --raw"),
    (["--raw", f"{W}x{H}:rgb24", "-", "{tmp}/o.rgb", "--duration", "1"],
     "--start, --duration, --codec and --compare are for video files, not --raw"),
    (["--raw", f"{W}x{H}:rgb24", "-", "{tmp}/o.rgb", "--consistent"],
     "--consistent is for Motion-JPEG files: raw frames carry no JPEG coefficients"),
    (["--raw", f"{W}x{H}:rgb24", "{tmp}/none.rgb", "{tmp}/o.rgb"], "{tmp}/none.rgb: cannot read (No such file or "
                                                                   "directory)"),
    (["{tmp}/none.avi", "{tmp}/o.mkv"], "{tmp}/none.avi: no such file"),
    (["{tmp}/cam.avi", "{tmp}/o.mp4"], "{tmp}/o.mp4: ffv1 is written to .mkv/.nut/.avi files (or choose --codec "
                                       "h264|h265|av1)"),
    (["{tmp}/cam.avi", "{tmp}/o.avi", "--codec", "h264"], "{tmp}/o.avi: h264 is written to .mkv/.mp4/.mov files"),
], ids=["folder IN", "pipe from stdin to an existing OUT", "pipe from stdin to a folder OUT", "--crf with ffv1",
        "--codec with --raw", "--start with --raw", "--duration with --raw", "--consistent with --raw",
        "missing raw IN", "missing IN", "ffv1 to .mp4", "h264 to .avi"])  # fmt: skip
def test_unusable_arguments_are_refused_before_any_work(tmp_path, models, capsys, argv, error):
    """IN a folder or missing, in pipe mode from stdin an existing OUT without -f or a folder OUT, an output format
    the codec does not write, or an option the run would ignore (--crf with the lossless default ffv1, --codec,
    --start, --duration or --consistent with --raw frames): exit 2 and one error line, before a model is loaded or
    stdin read; nothing written, the existing OUT unchanged."""
    from runtime.video.cli import main

    (tmp_path / "folder").mkdir()
    (tmp_path / "kept.rgb").write_bytes(b"earlier frames")
    make_mjpeg(tmp_path / "cam.avi", [10], audio=False)
    argv = [a.format(tmp=tmp_path) for a in argv]
    assert main([*argv, "--model", str(models), "-q"]) == 2
    assert capsys.readouterr().err == f"error: {error.format(tmp=tmp_path)}\n"
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == ["cam.avi", "folder", "kept.rgb"]
    assert (tmp_path / "kept.rgb").read_bytes() == b"earlier frames"


def test_duration_0_is_a_usage_error(tmp_path):
    from runtime.video.cli import build_parser, check_video_options

    src = make_mjpeg(tmp_path / "cam.avi", [10], audio=False)
    with pytest.raises(UsageError, match=r"^--duration must be positive$"):
        check_video_options(build_parser().parse_args([str(src), str(tmp_path / "o.mkv"), "--duration", "0"]))
    check_video_options(build_parser().parse_args([str(src), str(tmp_path / "o.mkv"), "--duration", "0.5"]))


def test_raw_frames_of_exactly_max_pixels_pass():
    """--max-pixels is a bound frames may reach: 64×48 frames (3072 pixels) pass 0.003072 MP, not 0.003071."""
    from runtime.video.cli import build_parser, check_video_options

    def check(max_pixels: str) -> None:
        check_video_options(build_parser().parse_args(["--raw", "64x48:rgb24", "-", "-", "--max-pixels", max_pixels]))

    check("0.003072")
    with pytest.raises(UsageError, match=r"^--raw 64x48: frames over --max-pixels 0.003071 MP$"):
        check("0.003071")


def test_pipe_mode_names_the_skipped_backends_with_v_only(tmp_path, models, capsys):
    """As for files: on a CPU-only install why the GPU backends were skipped is noise, said with -v only."""
    from runtime.video.cli import main

    src = tmp_path / "in.rgb"
    src.write_bytes(PHOTO.tobytes())
    common = ["--raw", f"{W}x{H}:rgb24", str(src), "--model", str(models), "--threads", "1"]
    assert main([*common, str(tmp_path / "plain.rgb")]) == 0
    plain = capsys.readouterr().err
    if "backend: ort-cpu" not in plain:
        pytest.skip("this machine has a GPU backend")
    assert main([*common, str(tmp_path / "verbose.rgb"), "-v"]) == 0
    assert "unavailable" not in plain and "tensorrt unavailable" in capsys.readouterr().err


def test_pipe_mode_to_stdout_beside_a_file_named_dash(tmp_path, models, restorer, monkeypatch, capsysbinary):
    """OUT ``-`` is stdout, even where a file named ``-`` exists (no "exists" refusal); that file is left alone."""
    from runtime.video.cli import main

    monkeypatch.chdir(tmp_path)
    Path("-").write_bytes(b"a file")
    Path("in.rgb").write_bytes(PHOTO.tobytes())
    assert main(["--raw", f"{W}x{H}:rgb24", "in.rgb", "-", "--model", str(models), "-q"]) == 0
    assert capsysbinary.readouterr().out == restorer(PHOTO).tobytes()
    assert Path("-").read_bytes() == b"a file"


@pytest.mark.parametrize("rotation", [-90, 180])
def test_every_display_rotation_is_kept(tmp_path, restorer, rotation):
    """A phone clip turned the other way (−90°: what 270° reads as) or upside down (180° reads as −180°) keeps its
    display rotation, as 90° does."""
    src = make_h264(tmp_path / "phone.mp4", [0, 40], PHOTO, "ITU601", rotation=rotation)
    rotations = [r for _, _, r in decoded(src)]
    assert rotations[0] in (-90, -180)
    restore_video(src, tmp_path / "phone.mkv", restorer)
    assert [r for _, _, r in decoded(tmp_path / "phone.mkv")] == rotations


def test_a_part_ends_before_its_end_time(tmp_path, restorer):
    """--duration 0.14 on 25 fps video with an audio packet every 0.07 s: frames at 0–0.12 s and the audio packets
    at 0 and 0.07 s; the one starting exactly at 0.14 s is after the part, as the video frame at 0.16 s."""
    src = make_mjpeg(tmp_path / "cam.mkv", [10] * 8, audio_samples=560)
    assert [t for t, _ in packets(src, "audio")] == pytest.approx([0.0, 0.07, 0.14, 0.21])
    dst = tmp_path / "part.mkv"
    assert restore_video(src, dst, restorer, VideoSettings(span=Span(0.0, 0.14), consistent=False)).frames == 4
    assert [t for t, _ in packets(dst, "audio")] == pytest.approx([0.0, 0.07])


def test_the_restore_time_counts_every_window(tmp_path, models, monkeypatch, capsys):
    """The result line's 'restore N s' adds up every window: three windows through a backend that takes at least
    0.5 s a window say at least 1.5 s (and no more than the run's wall time)."""
    from runtime.video import WINDOW_FRAMES
    from runtime.video.cli import main

    slow = 0.5  # s a window: 3 windows sum to 1.5 s exactly in floats
    restore_frames = Restorer.restore_frames

    def slow_restore_frames(self, frames, qualities=None):
        time.sleep(slow)
        return restore_frames(self, frames, qualities)

    monkeypatch.setattr(Restorer, "restore_frames", slow_restore_frames)
    src = make_mjpeg(tmp_path / "cam.avi", [10] * (2 * WINDOW_FRAMES + 1), audio=False)  # 3 windows, the last of 1
    assert main([str(src), str(tmp_path / "out.mkv"), "--model", str(models), "--threads", "1"]) == 0
    line = capsys.readouterr().out.splitlines()[0]
    wall, restore = re.search(r"frames in ([\d.]+) s \(.*, restore ([\d.]+) s,", line).groups()
    assert 3 * slow <= float(restore) <= float(wall), line


def test_the_result_line_reports_the_least_consistent_frame(tmp_path, capsys):
    """Motion JPEG frames whose projections keep different shares of their packets' coefficients (a frame with
    clipped highlights keeps fewer): the result line's 'consistent ≥ X %' is the lowest share among the frames of the
    output file, as each frame measures against its own packet, not the best or a mean."""
    from runtime.jpeg_consistency import consistent_share, read_coefficients
    from runtime.report_types import floor_percent
    from runtime.video.cli import main

    mild = (PHOTO.astype(np.float32) * 0.75 + 24).astype(np.uint8)  # no clipped pixels: the projection is exact
    harsh = np.clip(PHOTO.astype(np.float32) * 1.6 - 40, 0, 255).astype(np.uint8)  # clipped highlights and shadows
    photos = [mild, harsh, mild]
    src = make_mjpeg(tmp_path / "cam.avi", [30] * len(photos), audio=False, photo=photos)
    written = [tmp_path / f"packet{i}.jpg" for i in range(len(photos))]  # each packet as libjpeg wrote it
    for path, photo in zip(written, photos, strict=True):
        path.write_bytes(jpeg_bytes(photo, 30))
    model = brighten_model(tmp_path / "brighten.onnx")
    assert main([str(src), str(tmp_path / "out.mkv"), "--model", str(model), "--threads", "1"]) == 0
    line = capsys.readouterr().out
    frames = [rgb for _, rgb, _ in decoded(tmp_path / "out.mkv")]
    shares = [consistent_share(rgb, read_coefficients(path)) for rgb, path in zip(frames, written, strict=True)]
    assert floor_percent(min(shares)) != floor_percent(max(shares)), shares  # the frames differ visibly in the line
    assert line.endswith(f"; 3 frames projected, consistent ≥ {floor_percent(min(shares))}\n"), (line, shares)


# -- issue 38 ----------------------------------------------------------------------------------------------------


@pytest.mark.cli
def test_pipe_mode_runs_with_consistency_turned_off_and_refuses_it_turned_on(tmp_path, models, restorer):
    """``python -m runtime.video --raw WxH:rgb24 --no-consistent - -``: the user turned off what raw frames cannot
    have anyway, so the frames are restored (exit 0, stdout the restored frames, the result line on stderr);
    ``--consistent`` instead is refused before any work (exit 2, its one line, stdout empty)."""
    frames = [PHOTO, np.roll(PHOTO, 5, axis=1)]
    common = ("--raw", f"{W}x{H}:rgb24", "--model", models, "--threads", "1")
    sent = b"".join(f.tobytes() for f in frames)
    off = cli(*common, "--no-consistent", "-", "-", input=sent, text=False)
    assert off.returncode == 0, off.stderr
    assert off.stdout == b"".join(restorer(f).tobytes() for f in frames)
    assert re.search(rb"^-: 2 frames in [\d.]+ s .*not projected: raw frames carry no JPEG", off.stderr, re.M)
    on = cli(*common, "--consistent", "-", "-", input=sent, text=False)
    assert on.returncode == 2 and on.stdout == b""
    assert on.stderr.decode() == (
        "error: --consistent is for Motion-JPEG files: raw frames carry no JPEG coefficients\n"
    )


def test_compare_against_an_out_with_fewer_frames_fails_and_leaves_no_clip(tmp_path, models, monkeypatch, capsys):
    """--compare when OUT, as read back, has fewer frames than IN (an encoder that dropped the last ones): the
    side-by-side clip would hide frames, so it is not written — exit 1 and one line saying OUT has fewer frames
    than IN; OUT itself stays."""
    import runtime.video.cli as video_cli

    def dropping_the_last_frames(src, dst, restorer, settings, clip, progress=False):
        short = dataclasses.replace(settings, span=Span(0, 1.5 / 25))  # the first 2 of the 3 frames at 25 fps
        return restore_video(src, dst, restorer, short, None, progress)

    monkeypatch.setattr(video_cli, "restore_video", dropping_the_last_frames)
    src = make_mjpeg(tmp_path / "camera.avi", [10, 15, 10], audio=False)
    dst, beside = tmp_path / "restored.mkv", tmp_path / "side.mkv"
    argv = [str(src), str(dst), f"--compare={beside}", "--model", str(models), "--threads", "1", "-q"]
    assert video_cli.main(argv) == 1
    assert len(decoded(dst)) == 2
    err = capsys.readouterr().err
    assert err.splitlines()[-1] == (
        f"error: {beside}: the side-by-side clip failed ({dst}: has fewer frames than {src})"
    ), err
    assert "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["camera.avi", "restored.mkv"]


def test_a_ten_bit_hevc_says_it_is_not_motion_jpeg_and_that_its_matrix_is_assumed(tmp_path, models, capsys):
    """A 10-bit H.265 clip declaring its range (limited) but not its matrix: the log line describing it says the
    matrix was assumed, and the result line says why its frames are not projected: it is not Motion JPEG (its codec
    is the reason, not its depth)."""
    from runtime.video.cli import main

    src = make_ten_bit(tmp_path / "deep.mkv")
    assert main([str(src), str(tmp_path / "out.mkv"), "--model", str(models), "--threads", "1"]) == 0
    captured = capsys.readouterr()
    assert f"{src}: hevc {W}×{H}, 3 frames at 25 fps, BT.601 limited range (not declared: assumed)" in captured.err
    assert captured.out.endswith("; not projected: hevc is not Motion JPEG\n"), captured


@pytest.mark.parametrize("declared", ["range", "matrix"])
def test_a_stream_declaring_only_its_range_or_only_its_matrix_is_described_as_assumed(declared):
    """Either of matrix and range left undeclared is a guess the log line owns up to."""
    frame = av.VideoFrame(64, 48, "yuv420p")
    if declared == "range":
        frame.color_range = 2  # full range; matrix unspecified: BT.601 below 720 lines
    else:
        frame.colorspace = 1  # BT.709; range unspecified: limited for yuv420p
    expected = "BT.601 full range" if declared == "range" else "BT.709 limited range"
    assert frame_colour(frame).describe() == f"{expected} (not declared: assumed)"


def test_a_file_overwritten_with_corrupt_packets_after_probing_says_how_many(tmp_path, models, monkeypatch, capsys):
    """A camera overwrites the clip while the model loads (after the CLI probed it): every video packet of the file
    read then is corrupt, so nothing decodes — exit 1, one line counting the corrupt packets, no output."""
    import runtime.video.cli as video_cli

    src = make_mjpeg(tmp_path / "cam.avi", [10] * 3, audio=False)
    damaged = tmp_path / "damaged.avi"
    with av.open(str(damaged), "w") as out:
        video = out.add_stream("mjpeg", rate=25)
        video.width, video.height, video.pix_fmt = W, H, "yuvj420p"
        for i in range(3):
            packet = av.Packet(jpeg_bytes(PHOTO, 10)[:200])  # headers, no scan: FFmpeg's decoder refuses it
            packet.stream, packet.time_base, packet.pts, packet.dts, packet.duration = video, Fraction(1, 25), i, i, 1
            packet.is_keyframe = True
            out.mux(packet)
    probe = video_cli.probe

    def probe_then_overwrite(path: Path, span: Span):
        clip = probe(path, span)
        path.write_bytes(damaged.read_bytes())
        return clip

    monkeypatch.setattr(video_cli, "probe", probe_then_overwrite)
    dst = tmp_path / "out.mkv"
    assert video_cli.main([str(src), str(dst), "--model", str(models), "--threads", "1", "-q"]) == 1
    err = capsys.readouterr().err
    assert err.splitlines()[-1] == f"error: {src}: no frame could be decoded (3 corrupt packets)", err
    assert "Traceback" not in err and sorted(p.name for p in tmp_path.iterdir()) == ["cam.avi", "damaged.avi"]


def test_the_progress_bar_counts_frames_not_the_audio_packets_between_them(tmp_path, restorer, monkeypatch, terminal):
    """A Motion JPEG clip of 8 frames with audio, restored with progress on a terminal: the bar counts up to 8/8
    frames, never past it (the copied audio packets between the frames are not frames)."""
    restore_frames = Restorer.restore_frames

    def slow_restore_frames(self, frames, qualities=None):  # slower than the bar's refresh interval (0.1 s)
        time.sleep(0.15)
        return restore_frames(self, frames, qualities)

    monkeypatch.setattr(Restorer, "restore_frames", slow_restore_frames)
    src = make_mjpeg(tmp_path / "cam.avi", [10] * 8)
    assert len(packets(src, "audio")) >= 2
    stderr = terminal()
    with monkeypatch.context() as patch:
        patch.setattr(sys, "stderr", stderr)
        stats = restore_video(src, tmp_path / "out.mkv", restorer, progress=True)
    counts = [int(n) for n in re.findall(r"(\d+)/8 \[", stderr.getvalue())]
    assert stats.frames == 8 and counts and counts[-1] == 8 and max(counts) == 8, stderr.getvalue()
