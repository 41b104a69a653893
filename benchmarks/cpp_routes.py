"""``python -m benchmarks.cpp_routes``: the C++ samples (``examples/cpp``) against the Python runtime, one image.

Builds the samples with CMake, writes the OpenCV variant of the model (:mod:`export.opencv_compat`) and restores
one JPEG-q10 photo (2 MP by default) with the same tiles (core ``--tile``, the sidecar's overlap) three ways:

* ``python``: ``runtime.Restorer(backend="ort-cpu", precision="fp32")`` on the bundled ONNX (ONNX Runtime CPU; FP32,
  the graph both samples run by default);
* ``embedded``: the same Restorer inside a C++ process (``restore_embedded``): its output must be bit-identical;
* ``native``: OpenCV's DNN module on the OpenCV variant, no Python (``restore_native``): PSNR vs ``python``.

Speed is seconds per megapixel of the restore call alone (decoding, encoding and model loading excluded), the
best and median of ``--repeat`` rounds (each round runs every route once); every route gets ``--threads`` CPU
threads. ``tests/test_cpp.py`` uses the build and image helpers here.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from common.cli import run_cli
from common.jpeg import jpeg_roundtrip
from common.metrics import psnr

REPO_ROOT = Path(__file__).resolve().parents[1]
SOURCE = REPO_ROOT / "examples" / "cpp"
DEFAULT_BUILD = REPO_ROOT / "build" / "cpp"
_TIMING = re.compile(r"-> (.+): \d+x\d+, ([0-9.]+) s, ")


class CppBuildError(RuntimeError):
    """The samples could not be configured or built; ``missing`` names an absent prerequisite (else None)."""

    def __init__(self, message: str, missing: str | None = None) -> None:
        super().__init__(message)
        self.missing = missing


def build_samples(build_dir: Path = DEFAULT_BUILD, python: str = sys.executable, jobs: int = 2) -> str:
    """Configure and build ``examples/cpp`` into ``build_dir`` (incremental); return CMake's configure output.

    ``python``: the interpreter the embedded route uses (it must have the project's requirements installed).
    """
    for tool in ("cmake", "c++"):
        if shutil.which(tool) is None:
            raise CppBuildError(f"{tool} not found", missing=tool)
    configure = subprocess.run(
        ["cmake", "-S", str(SOURCE), "-B", str(build_dir), f"-DPython_EXECUTABLE={python}"],
        capture_output=True, text=True,
    )  # fmt: skip
    log = configure.stdout + configure.stderr
    if configure.returncode != 0:
        missing = "OpenCV development files (libopencv-dev)" if "OpenCV" in log else None
        raise CppBuildError(f"cmake configure failed:\n{log[-4000:]}", missing=missing)
    compiled = subprocess.run(["cmake", "--build", str(build_dir), f"-j{jobs}"], capture_output=True, text=True)
    if compiled.returncode != 0:
        raise CppBuildError(f"cmake build failed:\n{(compiled.stdout + compiled.stderr)[-4000:]}")
    return log


def embedded_disabled_reason(configure_log: str) -> str | None:
    """Why CMake left the embedded route out (its own status line), or None when it is built."""
    found = re.search(r"wcdgan: embedded route disabled: (.*)", configure_log)
    return found.group(1).strip() if found else None


def sample_photo(width: int = 1917, height: int = 1083, quality: int = 10) -> np.ndarray:
    """An RGB photo (skimage's astronaut, stretched) with libjpeg quality-``quality`` artifacts; odd sizes on
    purpose, so the last tiles are cut short and reflected."""
    from skimage import data

    return jpeg_roundtrip(cv2.resize(data.astronaut(), (width, height), interpolation=cv2.INTER_CUBIC), quality)


def sample_seconds(stderr: str) -> list[float]:
    """Per-image restore seconds that a sample printed, in order."""
    return [float(m.group(2)) for m in _TIMING.finditer(stderr)]


def run_sample(args: list[str], timeout: float = 1200) -> subprocess.CompletedProcess:
    proc = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"{Path(args[0]).name} exited {proc.returncode}:\n{proc.stderr[-3000:]}")
    return proc


def read_rgb(path: Path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.cpp_routes", description=__doc__.split("\n\n")[0])
    p.add_argument("--build", type=Path, default=DEFAULT_BUILD, help=f"CMake build folder (default {DEFAULT_BUILD})")
    p.add_argument("--image", type=Path, help="image to restore (default: a 1917×1083 JPEG-q10 photo)")
    p.add_argument("--tile", type=int, default=256, help="tile core (default 256, the runtime's)")
    p.add_argument("--threads", type=int, default=2, help="CPU threads for every route (default 2)")
    p.add_argument("--repeat", type=int, default=3, help="rounds over the routes; the best counts (default 3)")
    return run_cli(run, p.parse_args(argv))


def run(a: argparse.Namespace) -> int:
    from export.opencv_compat import write_opencv_variant
    from runtime import Restorer
    from runtime.model_files import DEFAULT_MODEL

    build_samples(a.build)
    work = a.build / "bench"
    work.mkdir(parents=True, exist_ok=True)
    model = write_opencv_variant(DEFAULT_MODEL, work)
    source = a.image or work / "photo_q10.png"
    if a.image is None:
        cv2.imwrite(str(source), cv2.cvtColor(sample_photo(), cv2.COLOR_RGB2BGR))
    image = read_rgb(source)
    megapixels = image.shape[0] * image.shape[1] / 1e6

    # FP32: what restore_native runs and restore_embedded runs by default
    with Restorer(backend="ort-cpu", precision="fp32", tile=a.tile, threads=a.threads) as restorer:
        common = ["--tile", str(a.tile), "--threads", str(a.threads)]
        samples = {
            "embedded": [str(a.build / "restore_embedded"), "--backend", "ort-cpu", *common],
            "native": [str(a.build / "restore_native"), str(model), *common],
        }
        seconds: dict[str, list[float]] = {"python": [], **{route: [] for route in samples}}
        agreement = {}
        for _ in range(a.repeat):  # routes interleaved: a busy shared machine slows them alike
            t0 = time.perf_counter()
            reference = restorer(image)
            seconds["python"].append(time.perf_counter() - t0)
            for route, args in samples.items():
                out = work / f"{route}.png"
                seconds[route] += sample_seconds(run_sample([*args, str(source), str(out)]).stderr)
                same = np.array_equal(restored := read_rgb(out), reference)
                agreement[route] = "bit-identical" if same else f"{psnr(restored, reference):.2f} dB PSNR"

    print(f"{source.name}: {image.shape[1]}×{image.shape[0]} ({megapixels:.2f} MP), tile {a.tile}, {a.threads} threads")
    print(f"load average (1, 5, 15 min) at the end: {', '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print(f"| route | s/MP best of {a.repeat} | median | vs Python |")
    print("|---|---|---|---|")
    for route, runs in seconds.items():
        best, median = min(runs) / megapixels, float(np.median(runs)) / megapixels
        print(f"| {route} | {best:.3f} | {median:.3f} | {agreement.get(route, 'reference')} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
