"""Torch-free primitives shared by every stage: atomic files, colour, the JPEG codec, metrics, tile geometry.

Everything here needs only numpy and OpenCV, so ``runtime/`` may import it.

Importing this package turns ONNX Runtime's telemetry off for the process (unless ``ORT_DISABLE_TELEMETRY`` is
already set): merely importing ``onnxruntime`` (1.32 on Linux, measured) writes a device id and an event database
under ``~/.cache/Microsoft/DeveloperTools/`` (and queues uploads), and a run must write only where the user pointed.
The library reads the variable once, when it is first imported, so it is set here: every module of the toolkit
imports ``common`` before it can import ``onnxruntime``.
"""

import os

os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
