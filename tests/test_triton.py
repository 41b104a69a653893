"""Triton Inference Server: the repository export against Triton's own config schema, and the ``triton`` backend
against a real ``tritonserver`` (PyTriton's bundled binary, tests/triton_server.py) serving the exported entry."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from skimage import data

pytest.importorskip("tritonclient", reason="tritonclient is not installed (pip install -e '.[triton]')")
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as pb

from export.triton import main as export_main
from runtime import Restorer
from runtime.backends.base import BackendUnavailable
from runtime.infer import main as infer_main
from runtime.io import read_image
from tests.conftest import tiny_model
from tests.runtime_fixtures import tiny_wcdgan, write_jpeg

REPO = Path(__file__).resolve().parents[1]
TILE = 32  # the server's window: 32 + 2 × 16 = 64


def _server_python() -> str | None:
    """A Python with nvidia-pytriton (it needs numpy < 2, so it lives in its own environment; .ci/run makes it)."""
    for candidate in (os.environ.get("WCDGAN_TRITON_PYTHON"), str(REPO / ".ci" / "triton-venv" / "bin" / "python")):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


def _free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


class Server:
    """A tritonserver process serving ``repo``'s ``name``; ``http``/``grpc`` addresses, ``metrics()`` counters."""

    def __init__(self, python: str, repo: Path, name: str) -> None:
        self.ports = _free_ports(3)
        self.http, self.grpc = f"localhost:{self.ports[0]}", f"grpc://localhost:{self.ports[1]}"
        self.log = repo / "server.log"
        self.proc = subprocess.Popen(
            [python, str(REPO / "tests" / "triton_server.py"), str(repo), name, *map(str, self.ports)],
            stdout=open(self.log, "w"), stderr=subprocess.STDOUT, start_new_session=True,  # noqa: SIM115
        )  # fmt: skip
        deadline = time.time() + 120
        while "READY" not in self.log.read_text():
            if self.proc.poll() is not None or time.time() > deadline:
                self.stop()
                pytest.fail(f"tritonserver did not start:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.5)

    def metrics(self) -> dict[str, float]:
        text = urllib.request.urlopen(f"http://localhost:{self.ports[2]}/metrics", timeout=10).read().decode()
        return {line.split("{")[0]: float(line.split()[-1]) for line in text.splitlines() if line.startswith("nv_")}

    def stop(self) -> None:
        """SIGTERM to the server's whole process group (tritonserver and its python-backend stub too)."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)  # leftovers of the group


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return tiny_model(tmp_path_factory, "tiny.onnx", net=tiny_wcdgan, recommended_overlap=16)


@pytest.fixture(scope="module")
def repository(model, tmp_path_factory) -> Path:
    repo = tmp_path_factory.mktemp("repo")
    assert export_main(["--model", str(model), "-o", str(repo), "--cpu", "--tile", str(TILE), "--max-batch", "8"]) == 0
    return repo


@pytest.fixture(scope="module")
def server(repository):
    python = _server_python()
    if python is None:
        pytest.skip("no Python with nvidia-pytriton: set WCDGAN_TRITON_PYTHON (.ci/run makes .ci/triton-venv)")
    s = Server(python, repository, "tiny")
    yield s
    s.stop()


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> list[Path]:
    folder = tmp_path_factory.mktemp("jpegs")
    crops = [data.astronaut()[:150, :200], data.coffee()[20:117, 30:170], data.chelsea()[:64, :64]]
    return [write_jpeg(folder / f"img{i}.jpg", c, q) for i, (c, q) in enumerate(zip(crops, (10, 20, 40), strict=True))]


def test_repository_entry_is_a_valid_triton_config(repository, model):
    entry = repository / "tiny"
    config = text_format.Parse((entry / "config.pbtxt").read_text(), pb.ModelConfig())  # Triton's own schema
    assert config.name == "tiny" and config.platform == "onnxruntime_onnx" and config.max_batch_size == 8
    assert list(config.input[0].dims) == [3, 64, 64] and config.input[0].data_type == pb.TYPE_FP32
    assert config.instance_group[0].kind == pb.ModelInstanceGroup.KIND_CPU
    assert list(config.dynamic_batching.preferred_batch_size) == [4, 8]
    assert (entry / "1" / "model.onnx").read_bytes() == model.read_bytes() and (entry / "model.json").is_file()


@pytest.mark.parametrize("flags", [["--max-batch", "0"], ["--instances", "0"], ["--tile", "8"], ["--overlap", "-1"]])
def test_export_refuses_impossible_geometry(model, tmp_path, capsys, flags):
    with pytest.raises(SystemExit) as e:
        export_main(["--model", str(model), "-o", str(tmp_path), *flags])
    assert e.value.code == 2 and f"{flags[0]} must be in" in capsys.readouterr().err and not any(tmp_path.iterdir())


def test_gpu_entry_uses_the_fp16_graph_and_tensorrt_accelerator(tmp_path):
    assert export_main(["--model", str(REPO / "runtime/weights/default.onnx"), "-o", str(tmp_path), "--trt-fp16"]) == 0
    config = text_format.Parse((tmp_path / "default" / "config.pbtxt").read_text(), pb.ModelConfig())
    accelerator = config.optimization.execution_accelerators.gpu_execution_accelerator[0]
    assert accelerator.name == "tensorrt" and accelerator.parameters["precision_mode"] == "FP16"
    assert config.instance_group[0].kind == pb.ModelInstanceGroup.KIND_GPU
    fp16 = (REPO / "runtime/weights/default_fp16.onnx").read_bytes()
    assert (tmp_path / "default" / "1" / "model.onnx").read_bytes() == fp16


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_triton_restores_bit_for_bit_like_the_local_backend(server, model, images, protocol):
    remote = Restorer(model, backend="triton", server=getattr(server, protocol), tile=TILE)
    local = Restorer(model, backend="ort-cpu", tile=TILE)
    assert remote.backend_name == "triton"
    for path in images:
        pixels = read_image(path).pixels
        np.testing.assert_array_equal(remote(pixels), local(pixels))


def test_four_clients_at_once_are_batched_by_the_server(server, model, images):
    pixels = read_image(images[0]).pixels
    want = Restorer(model, backend="ort-cpu", tile=TILE)(pixels)
    before = server.metrics()
    results: list = [None] * 4
    clients = [Restorer(model, backend="triton", server=server.http, tile=TILE, batch=8) for _ in range(4)]

    def client(i: int) -> None:  # made in this thread, used in another: the HTTP client must follow
        results[i] = clients[i](pixels)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for r in results:
        np.testing.assert_array_equal(r, want)
    after = server.metrics()
    requests = after["nv_inference_request_success"] - before["nv_inference_request_success"]
    executions = after["nv_inference_exec_count"] - before["nv_inference_exec_count"]
    assert requests >= 4 * 12 and executions < requests  # the dynamic batcher merged windows into batches > 1


def test_cli_restores_a_folder_through_triton_like_locally(server, model, images, tmp_path):
    folder = images[0].parent
    common = [str(folder), "--model", str(model), "--tile", str(TILE), "-q"]
    assert infer_main([*common, "-o", str(tmp_path / "remote"), "--backend", "triton", "--url", server.http]) == 0
    assert infer_main([*common, "-o", str(tmp_path / "local"), "--backend", "ort-cpu"]) == 0
    for png in (tmp_path / "local").iterdir():
        assert (tmp_path / "remote" / png.name).read_bytes() == png.read_bytes()


def test_clear_errors_for_a_wrong_model_address_or_window(server, model, capsys):
    with pytest.raises(BackendUnavailable, match="no model 'nope' ready"):
        Restorer(model, backend="triton", server=server.http, remote_model="nope", tile=TILE)
    with pytest.raises(BackendUnavailable, match="not reachable"):
        Restorer(model, backend="triton", server=f"localhost:{_free_ports(1)[0]}", tile=TILE)
    with pytest.raises(BackendUnavailable, match=r"does not fit this run.*\[3, 96, 96\]"):
        Restorer(model, backend="triton", server=server.http, tile=64)
    with pytest.raises(ValueError, match="needs a server address"):
        Restorer(model, backend="triton", tile=TILE)
    assert infer_main([str(REPO / "examples/astronaut_q10.jpg"), "--model", str(model), "--backend", "triton"]) == 2
    assert "needs a server address" in capsys.readouterr().err


@pytest.mark.cli
def test_server_killed_mid_run_fails_the_file_cleanly(repository, model, tmp_path):
    python = _server_python()
    if python is None:
        pytest.skip("no Python with nvidia-pytriton: set WCDGAN_TRITON_PYTHON (.ci/run makes .ci/triton-venv)")
    server = Server(python, repository, "tiny")
    big = write_jpeg(tmp_path / "big.jpg", np.tile(data.astronaut(), (3, 3, 1)), 20)
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "runtime.infer", str(big), "-o", str(out), "--model", str(model), "--tile", str(TILE),
         "--backend", "triton", "--url", server.http], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    try:
        while "backend:" not in proc.stderr.readline():
            assert proc.poll() is None
        time.sleep(1)
    finally:
        server.stop()
    _, err = proc.communicate(timeout=180)
    assert proc.returncode == 1, err
    assert "Triton server http://" in err and "Traceback" not in err
    assert not (out.exists() and any(out.iterdir()))  # no partial output, no temporary
