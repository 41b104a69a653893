"""The bundled default model: README's main command restores the example better than the JPEG it got."""

from __future__ import annotations

import re
import subprocess
import sys

import cv2
import pytest
from skimage import data

from common.files import sha256_file
from common.metrics import psnr
from tests.conftest import REPO_ROOT

EXAMPLE = REPO_ROOT / "examples" / "astronaut_q10.jpg"  # skimage's astronaut[:384, :384] at libjpeg q10


@pytest.mark.cli
def test_readme_main_command_beats_jpeg_on_the_example(tmp_path):
    before = sha256_file(EXAMPLE)
    proc = subprocess.run(
        [sys.executable, "-m", "runtime.infer", str(EXAMPLE), "-o", str(tmp_path / "restored")],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"backend: (ort-cpu|ort-cuda|tensorrt)\n", proc.stderr)
    # results on stdout
    assert re.search(r"\(JPEG q10\) → .*astronaut_q10.png  \[default (int8|fp16|fp32), ", proc.stdout)
    truth = data.astronaut()[:384, :384]
    jpeg = cv2.cvtColor(cv2.imread(str(EXAMPLE)), cv2.COLOR_BGR2RGB)
    restored = cv2.cvtColor(cv2.imread(str(tmp_path / "restored" / "astronaut_q10.png")), cv2.COLOR_BGR2RGB)
    assert restored.shape == truth.shape
    gain = psnr(restored, truth) - psnr(jpeg, truth)
    print(f"default model gain on the example: {gain:+.2f} dB")
    assert gain > 0.3
    assert sha256_file(EXAMPLE) == before  # the input is untouched
