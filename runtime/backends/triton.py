"""``triton`` backend: the tiles of a run are restored by a Triton Inference Server (``export.triton`` writes its
model repository).

The runtime tiles as with any backend; each window of a batch goes to the server as its own request, all of them in
flight at once, so that the server's dynamic batcher can merge them — with the windows of other clients too — into
the batches its instances run. ``server``: ``HOST:PORT`` or ``http://HOST:PORT`` (HTTP, port 8000 by default) or
``grpc://HOST:PORT`` (gRPC, 8001). On connection, the server must be live and hold the model ready, with the
sidecar's tensor names and dtypes and this run's window shape; anything else is :class:`BackendUnavailable` with
the reason. A request that fails or times out during a run raises ``RuntimeError`` naming the server. ``auto``
never picks this backend: it needs an address.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import numpy as np

from runtime.backends.base import BackendNotInstalled, BackendUnavailable, Closing
from runtime.spec import ModelSpec

_DTYPES = {"float32": ("FP32", np.float32), "float16": ("FP16", np.float16)}


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
        timeout_s: float = 120.0,
    ) -> None:
        self.protocol, self.address = parse_server(server)
        self.spec, self.tile_hw, self.max_batch = spec, tuple(tile_hw), int(max_batch)
        self.remote_model, self.timeout_s = remote_model or spec.name, timeout_s
        try:
            if self.protocol == "grpc":
                import tritonclient.grpc as client
            else:
                import tritonclient.http as client
        except ImportError as e:
            raise BackendNotInstalled(
                f"tritonclient is not installed ({e}): pip install 'wcdgan-toolkit[triton]'"
            ) from None
        self._client_module = client
        self._local = threading.local()  # the HTTP client (gevent) only works in the thread that made it
        self._closed = False
        try:
            live = self.client.is_server_live()
            ready = live and self.client.is_model_ready(self.remote_model)
        except Exception as e:  # connection refused, DNS, protocol mismatch
            raise BackendUnavailable(f"Triton server {server} is not reachable ({type(e).__name__}: {e})") from None
        if not ready:
            raise BackendUnavailable(f"Triton server {server} has no model '{self.remote_model}' ready")
        self._check_metadata(server)
        self._wire, self._dtype = _DTYPES[spec.input_dtype]

    @property
    def client(self) -> Any:
        """This thread's client (one per thread: a Restorer may be made in one thread and used in another)."""
        client = getattr(self._local, "client", None)
        if client is None:
            c = self._client_module
            client = (
                c.InferenceServerClient(self.address)
                if self.protocol == "grpc"
                else c.InferenceServerClient(
                    self.address,
                    concurrency=self.max_batch,
                    connection_timeout=self.timeout_s,
                    network_timeout=self.timeout_s,
                )
            )
            self._local.client = client
        return client

    def _check_metadata(self, server: str) -> None:
        """The served model's tensors must be the sidecar's, with this run's window shape."""
        meta = self.client.get_model_metadata(
            self.remote_model, **({"as_json": True} if self.protocol == "grpc" else {})
        )
        want = [self.spec.channels, *self.tile_hw]
        problems = []
        for kind, name, dtype in (("inputs", self.spec.input_name, self.spec.input_dtype),
                                  ("outputs", self.spec.output_name, self.spec.output_dtype)):  # fmt: skip
            tensors = {t["name"]: t for t in meta.get(kind, [])}
            if name not in tensors:
                problems.append(f"no {kind[:-1]} '{name}' (it has {sorted(tensors)})")
                continue
            shape = [int(d) for d in tensors[name]["shape"]][-3:]
            if shape != want or tensors[name]["datatype"] != _DTYPES[dtype][0]:
                problems.append(
                    f"{name} is {tensors[name]['datatype']} {shape}, this run needs {_DTYPES[dtype][0]} {want}"
                )
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
        except Exception as e:  # server errors, timeouts, a server that went away mid-run
            detail = e.message() if hasattr(e, "message") else f"{type(e).__name__}: {e}"
            raise RuntimeError(f"Triton server {self.protocol}://{self.address}: {_summary(detail)}") from None
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
        """Close this thread's client (others close when their thread ends); idempotent, and ``run`` afterwards
        raises RuntimeError instead of connecting again."""
        self._closed = True
        client = getattr(getattr(self, "_local", None), "client", None)
        if client is not None:
            client.close()
            self._local.client = None
