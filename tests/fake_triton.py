"""A fake Triton Inference Server (HTTP/REST, KServe v2 protocol) on 127.0.0.1 for the client's failure modes: it
answers health, readiness and metadata for one model and echoes each window back (an identity model), or misbehaves
as ``mode`` says. Bounded: every request handler gives up after ``HANG_S``, and :meth:`FakeTriton.stop` (or leaving
the ``with`` block) shuts the server down and closes its socket."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

HANG_S = 30.0  # the longest a "hang" request is held (the client's timeout must fire well before)
MODES = ("ok", "meta_list", "meta_no_shape", "infer_500", "short_output", "bad_json", "garbage", "hang", "hang_all",
         "die_after_one")  # fmt: skip


class FakeTriton:
    """``with FakeTriton(mode, channels, window) as server:`` — ``server.url`` is ``127.0.0.1:PORT``."""

    def __init__(self, mode: str = "ok", channels: int = 3, window: tuple[int, int] = (64, 64), name: str = "tiny"):
        assert mode in MODES, mode
        self.mode, self.channels, self.window, self.name = mode, channels, window, name
        self.infers = 0
        self.released = threading.Event()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        self.url = f"127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> FakeTriton:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self.released.set()
        self.httpd.shutdown()
        self.httpd.server_close()

    def metadata(self) -> Any:
        shape = [-1, self.channels, *self.window]
        tensors = {"inputs": [{"name": "input", "datatype": "FP32", "shape": shape}],
                   "outputs": [{"name": "output", "datatype": "FP32", "shape": shape}]}  # fmt: skip
        if self.mode == "meta_list":
            return [tensors]
        if self.mode == "meta_no_shape":
            for t in tensors["inputs"] + tensors["outputs"]:
                del t["shape"]
        return {"name": self.name, "versions": ["1"], "platform": "onnxruntime_onnx", **tensors}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:  # quiet
                pass

            def _send(self, code: int, body: bytes, headers: dict[str, str] | None = None) -> None:
                self.send_response(code)
                for k, v in {"Content-Type": "application/json", **(headers or {})}.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                if fake.mode == "hang_all":
                    fake.released.wait(HANG_S)
                    return
                if self.path in ("/v2/health/live", f"/v2/models/{fake.name}/ready"):
                    self._send(200, b"")
                elif self.path == f"/v2/models/{fake.name}":
                    self._send(200, json.dumps(fake.metadata()).encode())
                else:
                    self._send(404, json.dumps({"error": f"unknown {self.path}"}).encode())

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                fake.infers += 1
                mode = fake.mode
                if mode == "die_after_one" and fake.infers > 1:
                    threading.Thread(target=fake.stop, daemon=True).start()
                    self.close_connection = True
                    self.connection.close()
                    return
                if mode in ("hang", "hang_all"):
                    fake.released.wait(HANG_S)
                    return
                if mode == "infer_500":
                    return self._send(500, json.dumps({"error": "model crashed (fake)"}).encode())
                if mode == "bad_json":
                    return self._send(200, b'{"outputs": [', {"Inference-Header-Content-Length": "13"})
                if mode == "garbage":
                    return self._send(200, bytes(range(128, 256)) * 4)
                split = int(self.headers.get("Inference-Header-Content-Length", len(body)))
                request, data = json.loads(body[:split]), body[split:]
                if mode == "short_output":
                    data = data[: len(data) // 2]
                shape = request["inputs"][0]["shape"]
                output = {"name": "output", "datatype": "FP32", "shape": shape,
                          "parameters": {"binary_data_size": len(data)}}  # fmt: skip
                header = json.dumps({"model_name": fake.name, "outputs": [output]}).encode()
                self._send(200, header + data, {"Inference-Header-Content-Length": str(len(header))})

        return Handler
