"""The ``triton`` backend's own logic against an in-process fake client (the real server tests are in test_triton.py
and need a tritonserver): batch limits, metadata checks, request errors, one client per thread."""

from __future__ import annotations

import sys
import threading
import types

import numpy as np
import pytest

from runtime.backends.base import BackendNotInstalled, BackendUnavailable
from runtime.backends.triton import CONNECT_TIMEOUT_S, TIMEOUT_S, TritonBackend, _summary, parse_server
from runtime.spec import ModelSpec

SPEC = ModelSpec(name="tiny", channels=3, color="rgb", precision="fp32")
WINDOW = (64, 48)


class _Result:
    def __init__(self, array: np.ndarray) -> None:
        self.array = array

    def as_numpy(self, name: str) -> np.ndarray:
        assert name == "output"
        return self.array

    def get_result(self, timeout: float) -> _Result:
        return self


class _Input:
    def __init__(self, name: str, shape: list[int], wire: str) -> None:
        self.name, self.shape, self.wire = name, shape, wire

    def set_data_from_numpy(self, array: np.ndarray) -> None:
        assert list(array.shape) == self.shape and array.flags.c_contiguous
        self.array = array


class _Server:
    """What the fake clients talk to: a model serving 1 − x, its metadata, and a record of the requests."""

    def __init__(self, shape: list[int] | None = None, datatype: str = "FP32", fail: bool = False) -> None:
        self.shape, self.datatype, self.fail = shape or [-1, 3, *WINDOW], datatype, fail
        self.requests: list[tuple[int, ...]] = []
        self.clients: list[tuple[str, dict]] = []

    def module(self) -> types.ModuleType:
        server = self

        class Client:
            def __init__(self, address: str, **options) -> None:
                server.clients.append((address, options))
                self.thread = threading.get_ident()

            def is_server_live(self) -> bool:
                return True

            def is_model_ready(self, name: str) -> bool:
                return name == "tiny"

            def get_model_metadata(self, name: str, **_) -> dict:
                tensor = {"shape": server.shape, "datatype": server.datatype}
                return {"inputs": [{"name": "input", **tensor}], "outputs": [{"name": "output", **tensor}]}

            def async_infer(self, model: str, inputs: list[_Input], outputs=None, **_) -> _Result:
                assert threading.get_ident() == self.thread  # a client is used only by the thread that made it
                if server.fail:
                    raise ConnectionError("connection reset by peer")
                server.requests.append(tuple(inputs[0].array.shape))
                return _Result(1 - inputs[0].array)

            def close(self) -> None:
                pass

        return types.SimpleNamespace(
            InferenceServerClient=Client, InferInput=_Input, InferRequestedOutput=lambda *a, **k: a
        )


def _install(monkeypatch, server: _Server) -> _Server:
    """Make ``import tritonclient.http`` give ``server``'s fake client module."""
    module = server.module()
    monkeypatch.setitem(sys.modules, "tritonclient", types.SimpleNamespace(http=module))
    monkeypatch.setitem(sys.modules, "tritonclient.http", module)
    return server


@pytest.fixture
def fake(monkeypatch) -> _Server:
    return _install(monkeypatch, _Server())


def test_a_batch_of_exactly_max_batch_runs_one_more_is_refused(fake) -> None:
    backend = TritonBackend("http://localhost:8000", SPEC, WINDOW, max_batch=4)
    batch = np.random.default_rng(0).random((4, 3, *WINDOW), dtype=np.float32)
    np.testing.assert_array_equal(backend.run(batch), 1 - batch)
    assert fake.requests == [(1, 3, *WINDOW)] * 4  # one request per window, the server batches
    np.testing.assert_array_equal(backend.run(batch[:1]), 1 - batch[:1])
    with pytest.raises(ValueError, match="does not fit this backend"):
        backend.run(np.zeros((5, 3, *WINDOW), np.float32))
    with pytest.raises(ValueError, match="does not fit this backend"):
        backend.run(np.zeros((1, 3, WINDOW[1], WINDOW[0]), np.float32))
    assert fake.clients == [  # the start-up probe with its short timeout, then the client that runs windows
        (
            "localhost:8000",
            {"concurrency": 4, "connection_timeout": CONNECT_TIMEOUT_S, "network_timeout": CONNECT_TIMEOUT_S},
        ),
        ("localhost:8000", {"concurrency": 4, "connection_timeout": CONNECT_TIMEOUT_S, "network_timeout": TIMEOUT_S}),
    ]


def test_each_thread_gets_its_own_client(fake) -> None:
    backend = TritonBackend("localhost:8000", SPEC, WINDOW, max_batch=2)
    ones = np.ones((2, 3, *WINDOW), np.float32)
    assert not backend.run(ones).any()  # this thread's client is made first: the worker must not be handed it
    results = []
    worker = threading.Thread(target=lambda: results.append(backend.run(ones)))
    worker.start()
    worker.join()
    assert len(fake.clients) == 3, fake.clients  # the start-up probe, this thread's client, the worker's
    assert results[0].shape == (2, 3, *WINDOW) and not results[0].any()


@pytest.mark.parametrize(
    ("server", "message"),
    [
        (_Server(shape=[-1, 3, 32, 32]), r"input is FP32 \[3, 32, 32\], this run needs FP32 \[3, 64, 48\]"),
        (_Server(datatype="FP16"), "input is FP16 .*needs FP32"),
    ],
)
def test_a_served_model_that_does_not_fit_is_unavailable(monkeypatch, server, message) -> None:
    _install(monkeypatch, server)
    with pytest.raises(BackendUnavailable, match=message):
        TritonBackend("localhost:8000", SPEC, WINDOW, max_batch=2)
    with pytest.raises(BackendUnavailable, match="has no model 'other' ready"):
        TritonBackend("localhost:8000", SPEC, WINDOW, max_batch=2, remote_model="other")


def test_request_failures_name_the_server(monkeypatch) -> None:
    _install(monkeypatch, _Server(fail=True))
    backend = TritonBackend("http://gpu-box:8000", SPEC, WINDOW, max_batch=2)
    with pytest.raises(RuntimeError, match=r"Triton server http://gpu-box:8000: ConnectionError: connection reset"):
        backend.run(np.zeros((1, 3, *WINDOW), np.float32))


def test_missing_client_library_and_addresses(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "tritonclient.http", None)  # import fails
    with pytest.raises(BackendNotInstalled, match=r'pip install -e "[^"]*\[triton\]"'):
        TritonBackend("localhost:8000", SPEC, WINDOW, max_batch=2)
    assert parse_server("localhost:8000") == ("http", "localhost:8000")
    assert parse_server("grpc://h:8001") == ("grpc", "h:8001") and parse_server("http://h:1") == ("http", "h:1")
    for bad in ("ftp://h:1", "http://"):
        with pytest.raises(ValueError, match="expected HOST:PORT"):
            parse_server(bad)


def test_server_errors_are_summarised_in_one_line() -> None:
    traceback = 'inference failed: Traceback (most recent call last):\n  File "m.py", line 3\nValueError: bad shape\n'
    assert _summary(traceback) == "inference failed (ValueError: bad shape)"
    assert _summary("  model not ready \n") == "model not ready" and _summary("") == "no detail"
