"""OpenVINO backend (``openvino``): an ONNX graph (FP32, FP16 or INT8 QDQ) on the CPU with float32 I/O.

* **One compiled model with dynamic batch, height and width** serves every window up to ``tile_hw``. Measured on the
  bundled model (2-core AVX2 CPU): a model compiled per window shape ran no faster (320² and 576²: within 0–2 %) and
  switching shapes between calls cost the dynamic one nothing, while each new static shape cost 0.1–0.26 s of
  compile and first call, its own memory and its own cache blob.
* ``INFERENCE_PRECISION_HINT=f32``: OpenVINO otherwise computes in bf16 on CPUs with AVX512_BF16/AMX (and f16 on
  Arm), which would change the results of an FP32 model behind the user's back. Quantized (INT8 QDQ) graphs still
  run their quantized layers in INT8.
* ``PERFORMANCE_HINT=LATENCY`` (one stream: a call is one batch); ``INFERENCE_NUM_THREADS`` when ``threads`` is given.
* ``ENABLE_CPU_PINNING=NO``: pinning (OpenVINO's default on Linux) binds every process's threads to the same first
  cores, so several processes (``runtime.batch``'s actors, parallel jobs) would share those cores while others idle.
* Compiled models are cached (OpenVINO's ``CACHE_DIR``) in ``<cache>/openvino``, ``<cache>`` being the toolkit's
  cache folder (:func:`runtime.engine_cache.default_cache_dir` unless ``cache_dir`` is given); OpenVINO keys its blobs
  by model, configuration and its own version itself.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from common.cli import pip_install
from runtime.backends.base import BackendUnavailable, Closing, import_library, io_mismatch
from runtime.engine_cache import OPENVINO_SUBDIR, cache_root
from runtime.spec import ModelSpec


def import_openvino():
    """The ``openvino`` module, or :class:`BackendNotInstalled` naming the extra to install."""
    return import_library("openvino", pip_install("openvino"))


def openvino_cache_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    """Where compiled models are cached: ``<cache_dir or the toolkit's default cache folder>/openvino``."""
    return cache_root(cache_dir) / OPENVINO_SUBDIR


class OpenVinoBackend(Closing):
    """Runs N×C×H×W float32 batches (N ≤ ``max_batch``, any H ≤ ``tile_hw[0]``, W ≤ ``tile_hw[1]``) on the CPU.

    ``threads``: inference threads (None: OpenVINO's default for the latency hint, one per physical core).
    ``cache_dir``: the toolkit's cache folder (see module doc). Raises :class:`BackendNotInstalled` without the
    ``openvino`` package and :class:`BackendUnavailable` when the model cannot be read or compiled or its I/O names
    differ from ``spec``'s. ``note``: what the user should know about how it runs ("" when nothing). Not thread-safe.
    """

    name = "openvino"
    any_window = True  # run() takes any window up to tile_hw, not only tile_hw itself

    def __init__(
        self,
        onnx_path: str | os.PathLike,
        spec: ModelSpec,
        tile_hw: tuple[int, int],
        max_batch: int,
        threads: int | None = None,
        cache_dir: str | os.PathLike | None = None,
    ) -> None:
        ov = import_openvino()
        import openvino.properties as props
        import openvino.properties.hint as hints

        self.max_batch, self.tile_hw, self.spec, self.note = int(max_batch), tuple(tile_hw), spec, ""
        core = ov.Core()
        cache = openvino_cache_dir(cache_dir)
        try:
            cache.mkdir(parents=True, exist_ok=True)
            core.set_property({props.cache_dir: os.fspath(cache)})
        except (OSError, RuntimeError) as e:  # a read-only home must not stop inference: compile every time instead
            self.note = f"compiled-model cache disabled ({_reason(e)})"
        try:
            model = core.read_model(os.fspath(onnx_path))
        except Exception as e:  # OpenVINO raises RuntimeError subclasses with the parser's message
            raise BackendUnavailable(f"OpenVINO cannot read {onnx_path}: {_reason(e)}") from None
        if len(model.inputs) != 1 or len(model.outputs) != 1:
            raise BackendUnavailable(
                f"{onnx_path}: expected one input and one output, found {len(model.inputs)} and {len(model.outputs)}"
            )
        input_names, output_names = model.input(0).get_names(), model.output(0).get_names()
        if spec.input_name not in input_names or spec.output_name not in output_names:
            found = (model.input(0).any_name, model.output(0).any_name)
            raise io_mismatch(onnx_path, found, (spec.input_name, spec.output_name))
        self._input_name = spec.input_name
        config = {
            hints.performance_mode: hints.PerformanceMode.LATENCY,
            hints.inference_precision: ov.Type.f32,
            hints.enable_cpu_pinning: False,
        }
        if threads:
            config[props.inference_num_threads] = int(threads)
        try:
            model = _float32_io(ov, model)
            self._request = core.compile_model(model, "CPU", config).create_infer_request()
        except Exception as e:
            raise BackendUnavailable(f"OpenVINO cannot compile {onnx_path} for the CPU: {_reason(e)}") from None

    def run(self, batch: np.ndarray) -> np.ndarray:
        """N×C×H×W float32 in [0, 1] → N×C×H×W float32 (unclipped); ValueError for a shape outside the contract."""
        if self._request is None:
            raise RuntimeError("backend is closed")
        shape = tuple(batch.shape)
        if (
            len(shape) != 4
            or not 1 <= shape[0] <= self.max_batch
            or shape[1] != self.spec.channels
            or not (1 <= shape[2] <= self.tile_hw[0] and 1 <= shape[3] <= self.tile_hw[1])
        ):
            raise ValueError(
                f"batch {shape} does not fit this backend (≤{self.max_batch}×{self.spec.channels}×≤{self.tile_hw})"
            )
        x = np.ascontiguousarray(batch, dtype=np.float32)
        return self._request.infer({self._input_name: x}, share_inputs=True)[0]

    def close(self) -> None:
        """Release the compiled model and its buffers now (rather than at garbage collection)."""
        self._request = None


def _float32_io(ov, model):
    """``model`` with float32 input and output tensors whatever the graph's own I/O dtype (e.g. an FP16 export)."""
    ppp = ov.preprocess.PrePostProcessor(model)
    ppp.input().tensor().set_element_type(ov.Type.f32)
    ppp.output().tensor().set_element_type(ov.Type.f32)
    return ppp.build()


# Lines of OpenVINO's error messages that locate its C++ source rather than say what went wrong.
_SOURCE_LINE = re.compile(r"Exception from \S+:\d+:|Check '.*' failed at \S+:\d+:|FrontEnd API failed with \w+:")


def _reason(error: BaseException) -> str:
    """What an OpenVINO (or OS) error says went wrong, on one line, without its C++ source locations."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return "; ".join(line for line in lines if not _SOURCE_LINE.fullmatch(line)) or type(error).__name__
