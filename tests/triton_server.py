"""A real Triton Inference Server for the tests: PyTriton's bundled ``tritonserver`` serving a repository entry written
by ``python -m export.triton`` — same model name, tensors, window shape, batch size and dynamic batcher as its
``config.pbtxt`` — with the model itself run by ONNX Runtime (CPU) in a PyTriton-bound function.

Runs in its own environment (PyTriton 0.7 needs numpy < 2; see .ci/run): ``PYTHON tests/triton_server.py REPO NAME
HTTP_PORT GRPC_PORT METRICS_PORT``; prints ``READY`` once serving, stops on SIGTERM.
"""

from __future__ import annotations

import os
import signal
import sys
import sysconfig
import time
from pathlib import Path

# The python-backend stub links a libpython; the interpreter's own must come first (../shared/docs/PLATFORM.md).
os.environ["LD_LIBRARY_PATH"] = f"{sysconfig.get_config_var('LIBDIR')}:{os.environ.get('LD_LIBRARY_PATH', '')}"

import numpy as np
import onnxruntime as ort
from google.protobuf import text_format
from pytriton.decorators import batch
from pytriton.model_config import DynamicBatcher, ModelConfig, Tensor
from pytriton.triton import Triton, TritonConfig
from tritonclient.grpc import model_config_pb2 as pb

_NP = {pb.TYPE_FP32: np.float32, pb.TYPE_FP16: np.float16}


def main(repo: str, name: str, http: int, grpc: int, metrics: int) -> None:
    entry = Path(repo) / name
    config = text_format.Parse((entry / "config.pbtxt").read_text(), pb.ModelConfig())
    session = ort.InferenceSession(str(entry / "1" / "model.onnx"), providers=["CPUExecutionProvider"])
    (inp,), (out,) = config.input, config.output

    @batch
    def infer(**inputs: np.ndarray) -> dict[str, np.ndarray]:
        return {out.name: session.run([out.name], {inp.name: inputs[inp.name]})[0]}

    batcher = DynamicBatcher(
        preferred_batch_size=list(config.dynamic_batching.preferred_batch_size),
        max_queue_delay_microseconds=config.dynamic_batching.max_queue_delay_microseconds,
    )
    with Triton(config=TritonConfig(http_port=http, grpc_port=grpc, metrics_port=metrics)) as triton:
        triton.bind(
            model_name=name,
            infer_func=infer,
            inputs=[Tensor(name=inp.name, dtype=_NP[inp.data_type], shape=tuple(inp.dims))],
            outputs=[Tensor(name=out.name, dtype=_NP[out.data_type], shape=tuple(out.dims))],
            config=ModelConfig(max_batch_size=config.max_batch_size, batcher=batcher),
        )
        triton.run()
        print("READY", flush=True)
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # leaves the with-block: the server shuts down
        while True:
            time.sleep(1)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], *map(int, sys.argv[3:6]))
