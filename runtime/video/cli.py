"""``python -m runtime.video``: the command line — options, checks before any work, the run and its console lines.

Exit codes: 0 every frame restored, 1 the input failed (nothing written), some packets were corrupt (skipped) or
the file is truncated (the output holds every frame that decoded; the count is logged), 2 usage error, 130/143/129
interrupted (Ctrl-C / SIGTERM / SIGHUP: no output and no temporary are left). Results on stdout, logs and progress on
stderr (in pipe mode stdout carries the frames).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import re
import sys
from pathlib import Path
from typing import BinaryIO

import av

from common.cli import UsageError, run_cli
from common.files import atomic_path
from common.lazy import importable
from runtime.cli import (
    add_restore_options,
    failure_message,
    log_backend,
    max_pixels_of,
    open_restorer,
    path_problem,
    print_result,
    settings_from_args,
)
from runtime.report_types import floor_percent
from runtime.restorer import Restorer
from runtime.settings import CONSISTENT_INSTALL_HINT, RestoreSettings
from runtime.video.compare import write_compare
from runtime.video.container import Clip, Span, VideoError, probe
from runtime.video.encode import CODECS
from runtime.video.pipeline import Stats
from runtime.video.raw import RAW_FORMATS, RawFormat, raw_format, restore_raw
from runtime.video.restore import VideoSettings, restore_video

log = logging.getLogger(__name__)

DESCRIPTION = """\
Remove JPEG compression artifacts from the frames of a video with WCDGAN (PyAV: any container and codec FFmpeg
decodes). Motion JPEG is restored best: the JPEG quality of every frame is estimated from its own quantisation
tables and, with a folder of per-quality models (--model DIR), picks the model per frame; each restored frame is
projected onto its own packet's DCT coefficients (--consistent, on for Motion JPEG by default: a frame re-encoded
with its packet's tables gives the packet's coefficients; packets without Huffman tables get the standard ones of
ITU-T T.81 Annex K). Other codecs' artifacts are not what the model was trained on (a note says so); they are not
projected (--consistent refuses them).

Output: lossless FFV1 (RGB, exactly the restored pixels) in OUT (.mkv), or --codec h264|h265|av1 --crf N (4:2:0,
in the input's YUV matrix and range). Kept: timestamps (variable frame rate too), frame rate, rotation metadata,
colour matrix, range, primaries and transfer, and every audio and subtitle stream (copied untouched). The YUV→RGB
conversion is the one the stream declares (BT.601/BT.709/BT.2020, limited/full range); where it declares none:
BT.709 from 720 lines up, BT.601 below, limited range (full for JPEG formats). More than 8 bits per sample stays
16-bit through the model (FFV1 48-bit RGB, or 10-bit YUV).

The output is written to a temporary beside OUT and renamed at the end: an interrupted run leaves nothing. The
input is never modified; an existing OUT is kept unless -f. Corrupt packets are skipped, counted and reported.

Pipe mode: --raw WxH:FMT reads raw frames (FMT rgb24, rgb48le, gray or gray16le) from IN and writes the restored
frames to OUT, - being stdin/stdout, e.g.
  ffmpeg -i in.avi -f rawvideo -pix_fmt rgb24 - | python -m runtime.video --raw 640x480:rgb24 - - |
    ffmpeg -f rawvideo -pix_fmt rgb24 -s 640x480 -r 25 -i - -c:v ffv1 out.mkv
"""

COMPARE_SUFFIX = "_compare"  # --compare's default clip: <OUT stem><this><OUT suffix>


_SECONDS = re.compile(r"(?:(?:(\d+):)?(\d+):)?(\d+(?:\.\d*)?|\.\d+)")  # [[HH:]MM:]SS[.frac], digits only


def seconds_arg(text: str) -> float:
    """``90``, ``1:30`` or ``0:01:30.5`` → seconds (≥ 0; minutes and seconds after a ``:`` below 60)."""
    match = _SECONDS.fullmatch(text.strip())
    if match is None:
        raise argparse.ArgumentTypeError(f"expected seconds or [HH:]MM:SS[.ms] (digits only), got {text!r}")
    hours, minutes, seconds = (float(part) if part else 0.0 for part in match.groups())
    if ":" in text and (seconds >= 60 or (match.group(1) is not None and minutes >= 60)):
        raise argparse.ArgumentTypeError(f"expected [HH:]MM:SS with MM and SS below 60, got {text!r}")
    return hours * 3600 + minutes * 60 + seconds


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m runtime.video", description=DESCRIPTION,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("input", metavar="IN", help="a video file; with --raw a file of raw frames or - (stdin)")
    p.add_argument("output", metavar="OUT", help="the output video (.mkv for FFV1; .mkv/.mp4/.mov for the others); "
                   "with --raw a file or - (stdout)")  # fmt: skip
    p.add_argument("--codec", choices=list(CODECS), default="ffv1",
                   help="output codec: ffv1 = lossless RGB (default), else 4:2:0 YUV at --crf")  # fmt: skip
    defaults = ", ".join(f"{k} {c.crf}" for k, c in CODECS.items() if c.crf is not None)
    p.add_argument("--crf", type=int, help=f"quality of h264/h265/av1 (lower: better; 0: lossless YUV for h264/h265; "
                   f"default {defaults})")  # fmt: skip
    p.add_argument("--start", type=seconds_arg, default=0.0, help="restore from this time (seconds or [HH:]MM:SS)")
    p.add_argument("--duration", type=seconds_arg, help="how long to restore (default: to the end)")
    p.add_argument("--compare", nargs="?", const="", metavar="FILE",
                   help="also write a side-by-side clip: the input | the restoration, labelled (the JPEG quality of "
                   "each frame), read back from OUT, with OUT's codec, timestamps and audio, into FILE (default: "
                   f"OUT's name + {COMPARE_SUFFIX}); its path is printed. Put it after IN OUT, or write "
                   "--compare=FILE")  # fmt: skip
    p.add_argument("--raw", type=raw_format, metavar="WxH:FMT",
                   help=f"pipe mode: raw frames in and out, FMT one of {', '.join(RAW_FORMATS)}")  # fmt: skip
    add_restore_options(p, image_output=False)  # a video's container follows OUT's suffix
    p.add_argument("--threads", type=int, help="CPU threads for ort-cpu (default: one per core)")
    p.add_argument("--device-id", type=int, default=0, help="GPU ordinal (default 0)")
    p.add_argument("-v", "--verbose", action="store_true", help="also say why backends were skipped")
    return p


def main(argv: list[str] | None = None) -> int:
    return run_cli(run, build_parser().parse_args(argv))


def run(args: argparse.Namespace) -> int:
    settings = settings_from_args(args, device_id=args.device_id)
    check_video_options(args)
    if args.raw:
        return run_raw(args, settings)
    src, dst = Path(args.input), Path(args.output)
    span = Span(args.start, args.duration)
    try:
        clip = probe(src, span)
    except VideoError as e:
        log.error("error: %s", e)
        return 1
    if clip.width * clip.height > max_pixels_of(args):
        log.error("error: %s: %d×%d frames are over --max-pixels %g MP", src, clip.width, clip.height, args.max_pixels)
        return 1
    if CODECS[args.codec].crf is not None and (clip.width % 2 or clip.height % 2):
        raise UsageError(f"{args.codec} stores 4:2:0 colour, which needs an even width and height (this video is "
                         f"{clip.width}×{clip.height}); use the default lossless FFV1")  # fmt: skip
    target = compare_target(args)
    unprojected = why_not_projected(src, clip, args.consistent)
    video = VideoSettings(args.codec, args.crf, span, args.quality, consistent=not unprojected)
    with open_restorer(args.model, settings) as restorer:
        log_backend(restorer, args.verbose)
        describe(src, clip, args.codec)
        try:
            with atomic_path(dst) as tmp:
                stats = restore_video(src, tmp, restorer, video, clip, progress=not args.quiet)
        except (VideoError, av.error.FFmpegError, OSError) as e:
            log.error("error: %s", e if str(src) in str(e) else f"{src} → {dst}: {e}")
            return 1
        except Exception as e:  # the backend failing on a frame (NaN output, out of memory): one line, no traceback
            log.error("error: %s", failure_message(src, e))
            return 1
    report(dst, stats, args.quiet, projection(stats, unprojected))
    if args.codec == "ffv1":
        ffv1_note(src, dst, stats.frames / float(clip.rate or 25), target is not None)
    if target is not None and not compare_clip(src, dst, target, clip, video, args.quiet):
        return 1
    return 1 if stats.corrupt or stats.missing else 0


def why_not_projected(src: Path, clip: Clip, asked: bool | None) -> str:
    """Why the restored frames are not projected onto their packets' DCT coefficients ("" when they are: 8-bit Motion
    JPEG, unless ``asked`` is False, --no-consistent). Other codecs have no JPEG coefficients: with ``asked`` True
    (--consistent) that is a UsageError, before any frame is restored."""
    if asked is False:
        return "consistent mode off"
    if not clip.is_jpeg or clip.deep:
        if asked:
            kind = f"{clip.codec}, not Motion JPEG" if not clip.is_jpeg else "Motion JPEG of more than 8 bits"
            raise UsageError(f"--consistent: {src} is {kind}: its frames have no 8-bit JPEG coefficients to project "
                             "onto (leave --consistent out: such a video is restored without it)")  # fmt: skip
        return f"{clip.codec} is not Motion JPEG" if not clip.is_jpeg else "more than 8 bits per sample"
    # jpeglib is a dependency: only a broken install lacks it (--consistent was refused then by the settings)
    if not importable("jpeglib"):
        log.warning("jpeglib is not installed: frames are not projected (%s)", CONSISTENT_INSTALL_HINT)
        return "jpeglib is not installed"
    return ""


def projection(stats: Stats, unprojected: str) -> str:
    """What the result line says about the projection: the lowest share of luma coefficients true to their packet
    among the projected frames, or why the frames were not projected (``unprojected``)."""
    if unprojected:
        return f"not projected: {unprojected}"
    if not stats.consistent:
        return "no frame projected"
    unread = f", {stats.unprojected} not (unreadable coefficients)" if stats.unprojected else ""
    return f"{len(stats.consistent)} frames projected, consistent ≥ {floor_percent(min(stats.consistent))}{unread}"


def ffv1_note(src: Path, dst: Path, seconds: float, compare: bool) -> None:
    """Log what the default codec costs: FFV1 keeps every restored pixel, but is large and browsers do not play it
    (OUT, and the --compare clip when ``compare``), and what to choose instead."""
    size = dst.stat().st_size / 1e6
    log.info("note: FFV1 keeps every restored pixel, but is large (%.1f MB for %.1f s; the input: %.1f MB) and "
             "browsers do not play %s (VLC, mpv, ffplay do); --codec h264 writes a file a fraction of the size that "
             "every player opens", size, seconds, src.stat().st_size / 1e6,
             "it or its side-by-side clip" if compare else "it")  # fmt: skip


def compare_clip(src: Path, dst: Path, target: Path, clip: Clip, video: VideoSettings, quiet: bool) -> bool:
    """Write --compare's side-by-side clip of ``src`` and its restoration ``dst`` into ``target`` (atomically) and
    print its path (not when ``quiet``); log the error (one line) and return False when that fails."""
    try:
        with atomic_path(target) as tmp:
            write_compare(src, dst, tmp, clip, video)
    except (VideoError, av.error.FFmpegError, OSError) as e:
        log.error("error: %s: the side-by-side clip failed (%s)", target, e)
        return False
    if not quiet:
        print_result(f"compare clip: {target}")
    return True


def compare_target(args: argparse.Namespace) -> Path | None:
    """Where --compare writes (None without it): FILE, or OUT's name + :data:`COMPARE_SUFFIX`; UsageError when that
    cannot be written (as for OUT) or is OUT."""
    if args.compare is None:
        return None
    dst = Path(args.output)
    target = Path(args.compare) if args.compare else dst.with_name(dst.stem + COMPARE_SUFFIX + dst.suffix)
    if target.suffix.lower() not in CODECS[args.codec].suffixes:
        raise UsageError(f"--compare {target}: {args.codec} is written to {'/'.join(CODECS[args.codec].suffixes)} "
                         "files")  # fmt: skip
    if target.resolve() == dst.resolve():
        raise UsageError(f"--compare {target}: is OUT; the side-by-side clip needs a file of its own")
    _check_output(target, args)
    return target


def check_video_options(args: argparse.Namespace) -> None:
    """Raise UsageError for options that cannot work, before a model is loaded or a frame decoded."""
    if args.duration is not None and args.duration <= 0:
        raise UsageError("--duration must be positive")
    codec = CODECS[args.codec]
    if args.crf is not None and (codec.crf is None or not 0 <= args.crf <= codec.crf_max):
        raise UsageError("--crf goes with --codec h264|h265 (0..51) or av1 (0..63)")
    if args.raw:
        if args.start or args.duration or args.codec != "ffv1" or args.compare is not None:
            raise UsageError("--start, --duration, --codec and --compare are for video files, not --raw")
        if args.consistent:
            raise UsageError("--consistent is for Motion-JPEG files: raw frames carry no JPEG coefficients")
        if args.raw.width * args.raw.height > max_pixels_of(args):
            raise UsageError(
                f"--raw {args.raw.width}x{args.raw.height}: frames over --max-pixels {args.max_pixels:g} MP"
            )
        if args.output != "-":
            _check_output(Path(args.output), args)
        return
    src, dst = Path(args.input), Path(args.output)
    if problem := path_problem(src):
        raise UsageError(f"{src}: {problem}")
    if src.is_dir():
        raise UsageError(f"{src}: is a folder; IN names a video file")
    if not src.is_file():
        raise UsageError(f"{src}: no such file")
    if dst.suffix.lower() not in CODECS[args.codec].suffixes:
        raise UsageError(f"{dst}: {args.codec} is written to {'/'.join(CODECS[args.codec].suffixes)} files"
                         + (" (or choose --codec h264|h265|av1)" if args.codec == "ffv1" else ""))  # fmt: skip
    _check_output(dst, args)


def _check_output(dst: Path, args: argparse.Namespace) -> None:
    if problem := path_problem(dst):  # e.g. a name over 255 bytes
        raise UsageError(f"{dst}: {problem}")
    if args.input != "-" and dst.resolve() == Path(args.input).resolve():
        raise UsageError(f"{dst}: is the input; refusing to overwrite an input")
    if dst.exists() and not args.overwrite:
        raise UsageError(f"{dst}: exists (use -f/--overwrite)")
    if dst.is_dir():
        raise UsageError(f"{dst}: is a folder; OUT names the output file")


def describe(src: Path, clip: Clip, codec: str) -> None:
    """Log what will be restored, the note for codecs the model was not trained for, and what ``codec`` (the output's)
    does not keep."""
    streams = f", {len(clip.copied)} audio/subtitle stream(s) copied" if clip.copied else ""
    log.info("%s: %s %d×%d, %s frames at %s fps, %s%s", src, clip.codec, clip.width, clip.height,
             clip.frames or "?", f"{float(clip.rate):.3g}" if clip.rate else "?", clip.colour.describe(),
             streams)  # fmt: skip
    if not clip.is_jpeg:
        log.info("note: %s is not JPEG-based; the model was trained on JPEG artifacts, so on this codec's own it may "
                 "do less (or smooth detail)", clip.codec)  # fmt: skip
    if CODECS[codec].crf is not None and clip.chroma in ("4:2:2", "4:4:4"):
        log.info("note: the input's %s colour is stored as 4:2:0 by %s (what players accept): less chroma "
                 "resolution; the default FFV1 keeps it (RGB)", clip.chroma, codec)  # fmt: skip


def report(dst: Path, stats: Stats, quiet: bool, projected: str) -> None:
    """The run's result line (output, frames, speed, stage times, ``projected``: :func:`projection`) on stdout —
    logged instead when the frames went to stdout (pipe mode), not at all when ``quiet`` — and the log of JPEG
    qualities, models and corrupt packets."""
    busy = f"decode {stats.decode_s:.1f} s, restore {stats.restore_s:.1f} s, encode {stats.encode_s:.1f} s"
    rate = stats.frames / max(stats.wall_s, 1e-9)
    line = f"{dst}: {stats.frames} frames in {stats.wall_s:.1f} s ({rate:.2f} frames/s; {busy}); {projected}"
    if str(dst) == "-":
        log.info("%s", line)
    elif not quiet:
        print_result(line)
    qualities = sorted(q for q in stats.qualities if q is not None)
    if qualities:
        each = sorted(stats.qualities.elements(), key=lambda q: q or 0)
        log.info("JPEG quality per frame: q%d–q%d (median q%d)", qualities[0], qualities[-1], each[len(each) // 2] or 0)
    if len(stats.models) > 1:
        log.info("models: %s", ", ".join(f"{name} ({n} frames)" for name, n in stats.models.most_common()))
    if stats.corrupt:
        log.error("error: %d corrupt packet(s) skipped; the output holds the %d frames that decoded", stats.corrupt,
                  stats.frames)  # fmt: skip
    if stats.missing:
        log.error("error: the input is truncated: %s frame(s) missing at its end; the output holds the %d frames "
                  "that decoded", f"about {stats.missing}" if stats.missing > 1 else "at least 1",
                  stats.frames)  # fmt: skip


def run_raw(args: argparse.Namespace, settings: RestoreSettings) -> int:
    """Pipe mode: raw frames from IN to OUT ('-': stdin, stdout), each restored with --quality's model choice."""
    fmt: RawFormat = args.raw
    source = sys.stdin.buffer if args.input == "-" else _open_input(args.input)
    with contextlib.closing(source), open_restorer(args.model, settings) as restorer:
        log_backend(restorer, args.verbose)
        return _restore_raw(args, fmt, source, restorer)


def _restore_raw(args: argparse.Namespace, fmt: RawFormat, source: BinaryIO, restorer: Restorer) -> int:
    """Pipe mode's work: the frames of ``source`` restored into OUT; 1 (logged) when it fails."""
    stats = Stats()
    try:  # around the output's temporary: a failed run leaves no partial file
        with contextlib.ExitStack() as stack:
            if args.output == "-":
                target = sys.stdout.buffer
            else:
                target = stack.enter_context(open(stack.enter_context(atomic_path(args.output)), "wb"))
            restore_raw(source, target, fmt, restorer, args.quality, stats, progress=not args.quiet)
            if not stats.frames:  # e.g. the ffmpeg before it failed: an error, not an empty output
                raise VideoError(f"{args.input}: no whole {fmt.width}x{fmt.height}:{fmt.pix_fmt} frame "
                                 f"({fmt.frame_bytes} bytes) to restore")  # fmt: skip
    except VideoError as e:
        log.error("error: %s", e)
        return 1
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error when Python flushes it
        log.error("error: the reader of the output closed it after %d frames", stats.frames)
        return 1
    except Exception as e:  # as in run(): one line, no traceback
        log.error("error: %s", failure_message(Path(args.input), e))
        return 1
    report(Path(args.output), stats, args.quiet, "not projected: raw frames carry no JPEG coefficients")
    return 1 if stats.corrupt else 0


def _open_input(name: str) -> BinaryIO:
    try:
        return open(name, "rb")
    except OSError as e:
        raise UsageError(f"{name}: cannot read ({e.strerror or e})") from None
