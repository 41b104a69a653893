"""Video restoration speed on the CPU: frames/s and s/MP of ``runtime.video`` on Motion-JPEG q10 clips.

Each row restores one clip (480p or 720p, ``--frames`` frames of a shifted photo, libjpeg q10 as cameras write it, in
AVI) end to end with :func:`runtime.video.restore_video` into lossless FFV1 — decode, YUV→RGB, model, RGB→FFV1, mux
— with the bundled model at one precision, after a one-frame warm-up. Reported: frames/s, seconds per output
megapixel, and each stage's busy time as a share of the wall time (decode and encode run in their own threads beside
the model, so the shares overlap), with what the rest of the machine did meanwhile
(:class:`benchmarks.common.Contention`: rows that ran while other processes used the CPU are flagged BUSY).

    python -m benchmarks.video                             # → out/benchmarks/video.{json,md}
    python -m benchmarks.video --frames 3 --update-results  # → benchmarks/results/video.{json,md} (tracked)
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from benchmarks.common import (
    RESULTS_DIR,
    Contention,
    add_output_options,
    busy_warning,
    contention_cell,
    library_versions,
    machine_info,
    markdown_table,
    print_report,
    write_results,
)

SIZES = {"480p": (480, 640), "720p": (720, 1280)}
TINY = {"tiny": (48, 64)}  # CI smoke runs
PRECISIONS = ("int8", "fp32")


def write_clip(path: Path, height: int, width: int, frames: int, quality: int = 10) -> Path:
    """Motion JPEG at 25 fps: skimage's astronaut resized, shifted 4 px per frame, libjpeg ``quality``."""
    import av
    from skimage import data

    from runtime.video.container import open_media

    photo = cv2.resize(cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR), (width, height), interpolation=cv2.INTER_AREA)
    with open_media(path, "w") as out:
        stream = out.add_stream("mjpeg", rate=25)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuvj420p"
        for i in range(frames):
            ok, jpeg = cv2.imencode(".jpg", np.roll(photo, 4 * i, axis=1), [cv2.IMWRITE_JPEG_QUALITY, quality])
            assert ok
            packet = av.Packet(jpeg.tobytes())
            packet.stream, packet.time_base, packet.pts, packet.dts = stream, Fraction(1, 25), i, i
            out.mux(packet)
    return path


def time_row(clip: Path, size: str, precision: str, threads: int, folder: Path) -> dict[str, Any]:
    """Restore ``clip`` once at ``precision`` (after a one-frame warm-up); the row's numbers."""
    from runtime.restorer import Restorer
    from runtime.video import Span, VideoSettings, restore_video

    t0 = time.perf_counter()
    with Restorer(precision=precision, backend="ort-cpu", threads=threads) as restorer:
        load_s = time.perf_counter() - t0
        restore_video(clip, folder / "warmup.mkv", restorer, VideoSettings(span=Span(0.0, 0.04)))
        with Contention() as machine:
            stats = restore_video(clip, folder / f"{size}_{precision}.mkv", restorer)
    height, width = (SIZES | TINY)[size]
    megapixels = stats.frames * height * width / 1e6
    return {
        "size": size, "precision": precision, "frames": stats.frames, "threads": threads, "load_s": load_s,
        "wall_s": stats.wall_s, "frames_per_s": stats.frames / stats.wall_s, "s_per_mp": stats.wall_s / megapixels,
        "decode_share": stats.decode_s / stats.wall_s, "restore_share": stats.restore_s / stats.wall_s,
        "encode_share": stats.encode_s / stats.wall_s, **machine.as_dict(),
    }  # fmt: skip


def to_markdown(payload: dict[str, Any]) -> str:
    rows, m = payload["rows"], payload["machine"]
    head = (
        f"# Video restoration on the CPU ({m['date_utc']})\n\n"
        f"Machine: {m['cpu']}, {m['cpu_count']} logical CPUs, load average (1/5/15 min) "
        f"{' '.join(f'{v:.2f}' for v in m['load_average_1_5_15min'] or [])}; "
        f"onnxruntime {m['libraries']['onnxruntime']}, PyAV {m['libraries']['av']}. Bundled model, ort-cpu. "
        f"Clips: Motion JPEG q10, {payload['frames']} frames each → lossless FFV1 MKV "
        "(python -m runtime.video defaults), one warm-up frame first. s/MP = wall seconds per output megapixel; "
        "decode/restore/encode = each stage's busy time over the wall time (decode and encode run in their own "
        "threads, beside the model).\n\n"
    ) + busy_warning(rows)
    table = markdown_table(
        ["clip", "precision", "frames", "frames/s", "s/MP", "decode", "restore", "encode", "others' CPU"],
        [[r["size"], r["precision"], r["frames"], f"{r['frames_per_s']:.2f}", f"{r['s_per_mp']:.2f}",
          f"{r['decode_share']:.1%}", f"{r['restore_share']:.1%}", f"{r['encode_share']:.1%}", contention_cell(r)]
         for r in rows],
    )  # fmt: skip
    return head + table


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.video", description=__doc__.split("\n\n")[0])
    add_output_options(p, "--update-results", RESULTS_DIR)
    p.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES | TINY),
                   help=f"clip sizes (default: {' '.join(SIZES)})")  # fmt: skip
    p.add_argument("--precisions", nargs="+", default=list(PRECISIONS), choices=PRECISIONS, help="(default: all)")
    p.add_argument("--frames", type=int, default=8, help="frames per clip (default 8)")
    p.add_argument("--threads", type=int, default=None, help="ORT threads (default: one per core)")
    p.add_argument("-q", "--quiet", action="store_true", help="no table on stdout")
    args = p.parse_args(argv)
    if args.frames < 2:
        p.error("--frames must be at least 2")
    return args


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory(prefix="wcdgan-video-") as tmp:
        folder = Path(tmp)
        for size in args.sizes:
            clip = write_clip(folder / f"{size}.avi", *(SIZES | TINY)[size], args.frames)
            for precision in args.precisions:
                rows.append(time_row(clip, size, precision, args.threads, folder))
                if not args.quiet:
                    r = rows[-1]
                    print(f"{size} {precision}: {r['frames_per_s']:.2f} frames/s, {r['s_per_mp']:.2f} s/MP",
                          file=sys.stderr)  # fmt: skip
    payload = {
        "machine": machine_info() | {"libraries": library_versions(("onnxruntime", "av", "numpy", "cv2"))},
        "model": "bundled default",
        "frames": args.frames,
        "rows": rows,
    }
    try:
        paths = write_results(args.output, "video", payload, to_markdown(payload))
    except OSError as e:
        print(f"error: cannot write results: {e}", file=sys.stderr)
        return 1
    if not args.quiet:
        print_report(to_markdown(payload), paths)
    return 0


if __name__ == "__main__":
    sys.exit(main())
