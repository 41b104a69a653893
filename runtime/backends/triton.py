"""``triton`` backend: the tiles of a run are restored by a Triton Inference Server (``export.triton`` writes its
model repository).

The runtime tiles as with any backend; each window of a batch goes to the server as its own request, all of them in
flight at once, so that the server's dynamic batcher can merge them — with the windows of other clients too — into
the batches its instances run. ``server``: ``HOST:PORT`` or ``http://HOST:PORT`` (HTTP, port 8000 by default) or
``grpc://HOST:PORT`` (gRPC, 8001). On connection, the server must be live and hold the model ready, with the
sidecar's tensor names and dtypes and this run's window shape; anything else is :class:`BackendUnavailable` with
the reason. A request that fails, times out or gets an answer that is not an inference response raises
:class:`TritonError` (a :class:`BackendUnavailable`: one line naming the server). ``auto`` never picks this backend:
it needs an address.

Timeouts: the connection and the start-up checks (liveness, readiness, metadata) give up after
:data:`CONNECT_TIMEOUT_S`, each inference request after ``timeout_s`` (default :data:`TIMEOUT_S`), so a server that
accepts connections but never answers fails the run instead of blocking it.
"""

from __future__ import annotations

import contextlib
import re
import threading
import weakref
from collections.abc import Callable
from typing import Any

import numpy as np

from common.cli import pip_install
from runtime.backends.base import BackendNotInstalled, BackendUnavailable, Closing
from runtime.spec import ModelSpec

_DTYPES = {"float32": ("FP32", np.float32), "float16": ("FP16", np.float16)}
CONNECT_TIMEOUT_S = 10.0  # connecting, and each start-up check: a live server answers these at once
TIMEOUT_S = 60.0  # each window's inference request, queueing in the server's dynamic batcher included


class TritonError(BackendUnavailable):
    """The server failed a request, did not answer in time, or answered with something that is not a result."""


def parse_server(server: str) -> tuple[str, str]:
    """``(protocol, "host:port")`` of ``server`` (see module docstring)."""
    protocol, _, address = server.rpartition("://")
    protocol = protocol or "http"
    if protocol not in ("http", "grpc") or not address:
        raise ValueError(f"server address {server!r}: expected HOST:PORT, http://HOST:PORT or grpc://HOST:PORT")
    return protocol, address


def _summary(message: str) -> str:
    """A server's error in one line: its first line and, when it carries a server-side traceback, the final error."""
    lines = [line.strip() for line in str(message).strip().splitlines() if line.strip()]
    if len(lines) <= 1:
        return lines[0] if lines else "no detail"
    last = next((line for line in reversed(lines) if ":" in line and not line.startswith(("File ", "At:"))), lines[-1])
    return f"{lines[0].split(' Traceback')[0].rstrip(':')} ({last})"


class TritonBackend(Closing):
    """Runs N×C×H×W float32 tile batches (N ≤ ``max_batch``, (H, W) = ``tile_hw``) on a Triton server."""

    name = "triton"
    note = ""
    any_window = False  # the server's model configuration fixes the window

    def __init__(
        self,
        server: str,
        spec: ModelSpec,
        tile_hw: tuple[int, int],
        max_batch: int,
        remote_model: str | None = None,
        timeout_s: float = TIMEOUT_S,
    ) -> None:
        self.protocol, self.address = parse_server(server)
        self.spec, self.tile_hw, self.max_batch = spec, tuple(tile_hw), int(max_batch)
        self.remote_model, self.timeout_s = remote_model or spec.name, timeout_s
        if spec.input_dtype not in _DTYPES or spec.output_dtype not in _DTYPES:
            raise BackendUnavailable(f"model {spec.name}: Triton serves {' or '.join(_DTYPES)} tensors, not "
                                     f"{spec.input_dtype!r:.20}/{spec.output_dtype!r:.20}")  # fmt: skip
        try:
            if self.protocol == "grpc":
                import tritonclient.grpc as client
            else:
                import tritonclient.http as client
        except ImportError as e:
            raise BackendNotInstalled(f"tritonclient is not installed ({e}): {pip_install('triton')}") from None
        self._client_module = client
        self._local = threading.local()  # the HTTP client (gevent) only works in the thread that made it
        self._closed = False
        self._clients: list[Any] = []  # every client made, closed explicitly: never left to tritonclient's __del__
        self._closer = weakref.finalize(self, _close_all, self._clients)
        self._wire, self._dtype = _DTYPES[spec.input_dtype]
        probe = self._new_client(CONNECT_TIMEOUT_S)
        try:
            self._check_server(probe, server)
        finally:
            _close_all([probe])

    def _new_client(self, timeout_s: float) -> Any:
        """A client whose connection and requests give up after ``timeout_s`` (closed by :meth:`close`)."""
        c = self._client_module
        if self.protocol == "grpc":
            client = c.InferenceServerClient(self.address)
        else:
            client = c.InferenceServerClient(
                self.address, concurrency=self.max_batch, connection_timeout=CONNECT_TIMEOUT_S,
                network_timeout=timeout_s,
            )  # fmt: skip
            _quiet_gevent_hub()
        self._clients.append(client)
        return client

    def _timeout(self, seconds: float) -> dict[str, float]:
        """The per-call timeout argument (gRPC; the HTTP client has it per connection)."""
        return {"client_timeout": seconds} if self.protocol == "grpc" else {}

    def _check_server(self, probe: Any, server: str) -> None:
        """Live, the model ready, its tensors the sidecar's with this run's window (:meth:`_check_metadata`)."""
        try:
            live = probe.is_server_live(**self._timeout(CONNECT_TIMEOUT_S))
            ready = live and probe.is_model_ready(self.remote_model, **self._timeout(CONNECT_TIMEOUT_S))
        except Exception as e:  # connection refused, DNS, protocol mismatch, no answer in time
            raise BackendUnavailable(f"Triton server {server} is not reachable ({_describe(e)})") from None
        if not ready:
            raise BackendUnavailable(f"Triton server {server} has no model '{self.remote_model}' ready")
        options = {**self._timeout(CONNECT_TIMEOUT_S), **({"as_json": True} if self.protocol == "grpc" else {})}
        try:
            meta = probe.get_model_metadata(self.remote_model, **options)
        except Exception as e:
            raise BackendUnavailable(
                f"Triton server {server}: cannot read model '{self.remote_model}'s metadata ({_describe(e)})"
            ) from None
        self._check_metadata(meta, server)

    @property
    def client(self) -> Any:
        """This thread's client (one per thread: a Restorer may be made in one thread and used in another)."""
        client = getattr(self._local, "client", None)
        if client is None:
            client = self._local.client = self._new_client(self.timeout_s)
        return client

    def _check_metadata(self, meta: Any, server: str) -> None:
        """The served model's tensors (``meta``: its KServe v2 metadata) must be the sidecar's, with this run's
        window shape."""
        try:
            described = {kind: {t["name"]: (str(t["datatype"]), [int(d) for d in t["shape"]]) for t in meta[kind]}
                         for kind in ("inputs", "outputs")}  # fmt: skip
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise BackendUnavailable(
                f"Triton server {server}: the metadata of model '{self.remote_model}' is not a model description "
                f"with named tensors, datatypes and shapes ({type(e).__name__}: {e})"
            ) from None
        want = [self.spec.channels, *self.tile_hw]
        problems = []
        for kind, name, dtype in (("inputs", self.spec.input_name, self.spec.input_dtype),
                                  ("outputs", self.spec.output_name, self.spec.output_dtype)):  # fmt: skip
            tensors = described[kind]
            if name not in tensors:
                problems.append(f"no {kind[:-1]} '{name}' (it has {sorted(tensors)})")
                continue
            datatype, shape = tensors[name][0], tensors[name][1][-3:]
            if shape != want or datatype != _DTYPES[dtype][0]:
                problems.append(f"{name} is {datatype} {shape}, this run needs {_DTYPES[dtype][0]} {want}")
        if problems:
            raise BackendUnavailable(
                f"Triton model '{self.remote_model}' on {server} does not fit this run: {'; '.join(problems)} "
                "(export the repository with the same --tile/--overlap: python -m export.triton)"
            )

    def run(self, batch: np.ndarray) -> np.ndarray:
        """N×C×H×W float32 in [0, 1] → N×C×H×W float32: one request per window, all in flight at once."""
        if self._closed:
            raise RuntimeError("backend is closed")
        if batch.shape[0] > self.max_batch or tuple(batch.shape[2:]) != self.tile_hw:
            raise ValueError(f"batch {batch.shape} does not fit this backend ({self.max_batch}×C×{self.tile_hw})")
        windows = [np.ascontiguousarray(batch[i : i + 1], dtype=self._dtype) for i in range(batch.shape[0])]
        try:
            results = self._infer_all(windows)
        except Exception as e:  # server errors, timeouts, a server that went away mid-run, garbage answers
            raise TritonError(f"Triton server {self.protocol}://{self.address}: {_describe(e)}") from None
        expected = (1, self.spec.channels, *self.tile_hw)
        if bad := [getattr(r, "shape", None) for r in results if getattr(r, "shape", None) != expected]:
            raise TritonError(
                f"Triton server {self.protocol}://{self.address}: answered {bad[0]} for a {expected} window"
            )
        return np.concatenate(results).astype(np.float32, copy=False)

    def _request(self, window: np.ndarray) -> tuple[list, list]:
        c = self._client_module
        tensor = c.InferInput(self.spec.input_name, list(window.shape), self._wire)
        tensor.set_data_from_numpy(window)
        output = c.InferRequestedOutput(
            self.spec.output_name, **({} if self.protocol == "grpc" else {"binary_data": True})
        )
        return [tensor], [output]

    def _infer_all(self, windows: list[np.ndarray]) -> list[np.ndarray]:
        if self.protocol == "http":
            requests = [self._request(w) for w in windows]
            pending = [self.client.async_infer(self.remote_model, i, outputs=o) for i, o in requests]
            return [p.get_result(timeout=self.timeout_s).as_numpy(self.spec.output_name) for p in pending]
        done = threading.Semaphore(0)
        results: list[Any] = [None] * len(windows)

        def callback(i: int) -> Callable:
            def store(result: Any, error: Any) -> None:
                results[i] = error if error is not None else result.as_numpy(self.spec.output_name)
                done.release()

            return store

        for i, w in enumerate(windows):
            inputs, outputs = self._request(w)
            self.client.async_infer(
                self.remote_model, inputs, callback(i), outputs=outputs, client_timeout=self.timeout_s
            )
        for _ in windows:
            if not done.acquire(timeout=self.timeout_s + 5):
                raise TimeoutError(f"no answer within {self.timeout_s:.0f} s")
        for r in results:
            if isinstance(r, Exception):
                raise r
        return results

    def close(self) -> None:
        """Close every client this backend made (also done when it is collected, or at exit); idempotent, and
        ``run`` afterwards raises RuntimeError instead of connecting again."""
        self._closed = True
        self._closer()
        self._local = threading.local()


def _close_all(clients: list[Any]) -> None:
    """Close ``clients`` (and forget them); a client that fails to close (its connection already gone) is dropped."""
    while clients:
        with contextlib.suppress(Exception):
            clients.pop().close()


def _describe(error: BaseException) -> str:
    """One line for a client-side exception: the server's own message; for an answer the client could not decode
    (not JSON, not UTF-8, too short for its shape) what was wrong with it; else the exception's type and message."""
    text = error.message() if callable(getattr(error, "message", None)) else f"{type(error).__name__}: {error}"
    if isinstance(error, ValueError) or isinstance(error.__cause__ or error.__context__, UnicodeError):
        decoding = re.search(r"(\w+Error: .*)", text, re.DOTALL)
        return f"its answer is not an inference result ({_summary(decoding.group(1) if decoding else text)})"
    return _summary(text or type(error).__name__)


def _quiet_gevent_hub() -> None:
    """Stop gevent printing a failed request's multi-line traceback to stderr: the error reaches the caller as a
    :class:`TritonError` anyway. Per thread (each thread's HTTP client has its own hub)."""
    with contextlib.suppress(ImportError):
        import gevent

        gevent.get_hub().exception_stream = None
