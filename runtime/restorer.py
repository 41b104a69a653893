"""The Python API: ``Restorer`` restores whole images by streaming fixed-shape tiles through a backend.

Memory is bounded by the tile size, not the image: tiles are cut from the input (reflected at borders, see
:mod:`common.tiling`), converted to the model's float input a batch at a time, and each result's central
crop is rounded straight into a preallocated output of the input's dtype. No full-image float copy exists.

When a backend runs out of memory — while running or while being built (TensorRT allocates at build and
context creation) — it is closed and rebuilt smaller: half the batch, and at batch 1 half the tile core (down
to :data:`MIN_CORE`); the run continues and says so in the log. Rebuilding is needed for both GPU backends: a
TensorRT profile and ONNX Runtime's bound device buffers are sized for the maximum batch.
"""

from __future__ import annotations

import contextlib
import logging
import os
import platform
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from common.color import rgb_to_y, with_luma
from common.files import NAME_MAX, sha256_file
from common.tiling import ALIGN, TileGrid, crop_slices, extract_window
from runtime.backends.base import Backend, BackendUnavailable, first_line, is_out_of_memory
from runtime.backends.catalogue import BACKENDS
from runtime.backends.select import backend_file, select_backend, tile_grid
from runtime.engine_cache import passed_self_test, record_self_test
from runtime.io import DEFAULT_MAX_PIXELS, ImageError, LoadedImage, read_image, write_image
from runtime.jpeg_consistency import (
    ConsistencyError,
    JpegCoefficients,
    ReaderMissing,
    consistent_share,
    project,
    read_coefficients,
)
from runtime.jpeg_quality import JpegQuality
from runtime.model_files import Model, ModelError, ModelFile, ModelSet, resolve_models
from runtime.settings import RestoreSettings
from runtime.strength import blend

log = logging.getLogger(__name__)

MIN_CORE = 64
SELF_TEST_WINDOW = 320  # side of the load-time check's window on backends that take any window
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # RGB model output → gray (BT.601, as OpenCV)


class OutOfMemory(RuntimeError):
    """The backend ran out of memory even with batch 1 and the smallest tile."""


@dataclass
class FileResult:
    """What :meth:`Restorer.restore_file` did."""

    output: Path
    jpeg_quality: JpegQuality | None
    model: str
    precision: str  # of the graph that ran: "fp32", "fp16" or "int8"
    backend: str
    tiles: int
    size: tuple[int, int]  # height, width
    consistent: float | None = None  # projected: the share of luma coefficients that quantise to the file's
    unprojected: str = ""  # not projected: why ("not a JPEG", "consistent mode off", ...)


@dataclass
class _Engine:
    """A backend loaded for one model and one (largest) window shape."""

    model: Model
    backend: Backend
    precision: str  # of the graph it runs
    core: tuple[int, int]  # the core (any_window backends: the largest core) it was built for
    overlap: int
    batch: int


class Restorer:
    """Restores JPEG-compressed images with a WCDGAN ONNX model.

    Args:
        model: None (the bundled default), an ``.onnx`` file with its ``.json`` sidecar, or a folder of
            per-quality models (see :mod:`runtime.model_files`).
        backend: "auto" (tensorrt > ort-cuda > ort-cpu > openvino, the first that loads), one of those names, or
            "triton" with ``server`` (``HOST:PORT``, ``grpc://HOST:PORT``) serving ``remote_model`` (default: the
            model's name).
        tile: core tile size, int or (h, w), rounded up to ``align``; the window adds ``overlap`` per side. On
            backends that take any window (the CPU ones) it is the largest core: each image gets the core that
            covers it in the fewest tiles (:meth:`common.tiling.TileGrid.fitted`). None: the backend's
            :func:`~runtime.backends.catalogue.default_tile` (256 on GPU backends and Triton; on the CPU 1024 for
            INT8 graphs, 512 for FP32).
        overlap: context pixels per side; None takes the sidecar's ``recommended_overlap`` (else 32,
            :data:`common.tiling.DEFAULT_OVERLAP`).
        batch: tiles per backend call (None: 4 on GPU backends, 1 on the CPU).
        precision: "auto" (GPU backends FP16 > FP32, CPU backends INT8 > FP32, among the exported files) or
            "fp32", "fp16", "int8" (:meth:`runtime.model_files.Model.file`).
        device_id: GPU ordinal. threads: ORT CPU intra-op threads (None: ONNX Runtime's default). spin: whether
            idle ORT CPU threads busy-wait (None: unless the machine is busy at start,
            :func:`runtime.backends.onnxruntime.spin_default`).
        cache_dir: TensorRT engine cache (also the records of passed self-tests). align: tile grid (16 = JPEG 4:2:0
            MCU). progress: tqdm bar over tiles (on terminals only). max_pixels: :meth:`restore_file` refuses
            larger images (checked from the header).
        verify: run the load-time self-test of each model (:func:`self_test`); off only for timing random weights.
            On CPU backends a passed test is recorded in ``cache_dir`` per graph bytes, library and machine
            (:func:`self_test_key`): later loads of the same file skip it.
        strength: the fraction of the restoration applied, 0 < S ≤ 1 (1: all of it): every result is
            ``round(input + S · (restored − input))`` (:func:`runtime.strength.blend`), for a lighter touch.
        consistent: whether :meth:`restore_file` projects each restoration onto what its JPEG file allows (every DCT
            coefficient inside the quantisation interval of the file's; :mod:`runtime.jpeg_consistency`) and reports
            the share of luma coefficients that quantise back to the file's values. None (the default): 8-bit JPEG
            files are projected, other inputs restored as they are (the result says why not); True: other inputs are
            refused; False: never. Arrays given to ``restorer(image)`` have no file: project them with
            :func:`runtime.jpeg_consistency.project`.

    The settings are held as one :class:`~runtime.settings.RestoreSettings` (``.settings``; invalid ones raise its
    :class:`~runtime.settings.SettingError`, a ``ValueError``; :meth:`from_settings` takes one directly). A model
    whose ONNX does not match its sidecar's hash, fails the self-test or produces NaN/Inf raises :class:`ModelError`.

    Calling it: ``restorer(image)`` with an H×W (gray) or H×W×3 **RGB** array of uint8 or uint16 returns the
    restored image with the same shape and dtype. 16-bit images are scaled to [0, 1] by 65535 and the output
    is rounded back to 16 bit (the model itself was trained on 8-bit JPEG artifacts). Gray images given to
    an RGB model are expanded to three channels and the result turned back to gray with BT.601 weights; RGB
    images given to a Y model have their MATLAB-Y restored and keep their chroma (8-bit only).

    Thread-safety: calls are serialised by an internal lock (a backend runs one batch at a time); for
    parallel work create one Restorer per thread (each holds its own backend and GPU memory).

    Lifecycle: :meth:`close` (or ``with Restorer(...) as restorer:``) frees the backends' sessions, device memory and
    server connections at once instead of at garbage collection; a closed Restorer refuses to restore.
    """

    def __init__(
        self,
        model: str | os.PathLike | ModelSet | None = None,
        *,
        backend: str = "auto",
        tile: int | tuple[int, int] | None = None,
        overlap: int | None = None,
        batch: int | None = None,
        precision: str = "auto",
        device_id: int = 0,
        threads: int | None = None,
        spin: bool | None = None,
        cache_dir: str | os.PathLike | None = None,
        align: int = ALIGN,
        progress: bool = False,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        verify: bool = True,
        server: str | None = None,
        remote_model: str | None = None,
        strength: float = 1.0,
        consistent: bool | None = None,
    ) -> None:
        settings = RestoreSettings(
            backend=backend, tile=tile, overlap=overlap, batch=batch, precision=precision, device_id=device_id,
            threads=threads, spin=spin, cache_dir=cache_dir, align=align, progress=progress, max_pixels=max_pixels,
            verify=verify, server=server, remote_model=remote_model, strength=strength, consistent=consistent,
        )  # fmt: skip
        self._open(model, settings)

    @classmethod
    def from_settings(cls, settings: RestoreSettings, model: str | os.PathLike | ModelSet | None = None) -> Restorer:
        """A Restorer with ``settings`` (what the commands build: :func:`runtime.cli.settings_from_args`)."""
        restorer = cls.__new__(cls)
        restorer._open(model, settings)
        return restorer

    def _open(self, model: str | os.PathLike | ModelSet | None, settings: RestoreSettings) -> None:
        self.settings = settings
        self.models = model if isinstance(model, ModelSet) else resolve_models(model)
        self.batch = settings.batch  # None until the first backend loads: then that backend's default
        self._backend_kind = settings.backend
        self._engines: dict[str, _Engine] = {}
        self._lock = threading.Lock()
        self._closed = False
        self.skipped_backends: list[str] = []  # "name unavailable: reason" for each backend auto skipped
        self.notable_skips: list[str] = []  # those of them whose library is installed: worth telling the user
        self._engine(self.models.for_quality(None))  # load now: a missing backend or bad model fails here

    @property
    def tile(self) -> tuple[int, int] | None:
        """The tile core asked for, (height, width); None: the backend's default."""
        return self.settings.tile

    def close(self) -> None:
        """Release every loaded backend (sessions, device memory, server connections) now rather than at garbage
        collection. Idempotent; restoring afterwards raises ``RuntimeError``."""
        with self._lock:
            self._closed = True
            engines, self._engines = list(self._engines.values()), {}
            for engine in engines:
                engine.backend.close()

    def __enter__(self) -> Restorer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def backend_name(self) -> str:
        """The backend that actually runs ("tensorrt", "ort-cuda", "ort-cpu", "openvino" or "triton")."""
        return self._backend_kind

    def __call__(self, image: np.ndarray, quality: int | None = None, out: np.ndarray | None = None) -> np.ndarray:
        """Restore ``image`` (see class docstring); ``quality`` (its JPEG quality) picks among per-quality models.

        ``out``: a writable array of the image's shape and dtype to restore into (any strides, e.g. a view of a
        caller's buffer, as the C++ embedding passes); it must not overlap ``image``. Returns ``out`` or a new array.
        """
        _check_image(image)
        _check_out(out, image)
        check_quality(quality)
        with self._lock:
            self._check_open()
            return self._restore(image, self.models.for_quality(quality), out)

    def restore_frames(
        self, frames: Sequence[np.ndarray], qualities: Sequence[int | None] | None = None
    ) -> list[np.ndarray]:
        """Restore several images of one shape and dtype (a window of video frames), frame ``i`` with the model for
        ``qualities[i]`` (None: all with the default model). The results are those of ``[self(f, q) for f, q in
        zip(frames, qualities)]``, bit for bit, but the tiles of all frames that share a model go through one tile
        loop, batched together: a GPU backend gets full batches even where one frame has fewer tiles than the batch.
        """
        qualities = [None] * len(frames) if qualities is None else list(qualities)
        if len(qualities) != len(frames):
            raise ValueError(f"got {len(frames)} frames and {len(qualities)} qualities")
        for frame in frames:
            _check_image(frame)
            if frame.shape != frames[0].shape or frame.dtype != frames[0].dtype:
                raise ValueError(f"frames differ in shape or dtype: {frames[0].shape} {frames[0].dtype} and "
                                 f"{frame.shape} {frame.dtype}")  # fmt: skip
        for quality in qualities:
            check_quality(quality)
        outs = [np.empty_like(frame) for frame in frames]
        groups: dict[str, list[int]] = {}  # model key → indices of its frames
        with self._lock:
            self._check_open()
            models = [self.models.for_quality(quality) for quality in qualities]
            for i, model in enumerate(models):
                groups.setdefault(model.key, []).append(i)
            for indices in groups.values():
                self._restore_all([frames[i] for i in indices], models[indices[0]], [outs[i] for i in indices])
        return outs

    def restore_file(
        self, path: str | os.PathLike, out_path: str | os.PathLike, quality: int | None = None
    ) -> FileResult:
        """Read ``path``, restore it (model chosen by ``quality`` or the file's estimated JPEG quality; in consistent
        mode projected onto the file's DCT coefficients) and write ``out_path`` atomically (format from its suffix;
        alpha re-attached). Never writes over ``path``. With ``consistent`` True a file that is not an 8-bit JPEG
        raises :class:`~runtime.jpeg_consistency.ConsistencyError` (an ImageError) before the model runs; with None
        (the default) it is restored without the projection, and the result's ``unprojected`` says why."""
        path, out_path = Path(path), Path(out_path)
        self._check_open()
        check_quality(quality)
        if out_path.resolve() == path.resolve():
            raise ImageError(f"{out_path}: is the input itself; refusing to overwrite an input")
        check_writable(out_path)  # before minutes of work, not after
        image = read_image(path, self.settings.max_pixels)
        jpeg, unprojected = self._coefficients(path, image)
        if quality is None and image.jpeg_quality is not None:
            quality = image.jpeg_quality.quality
        model, why = self.models.choose(quality)
        log.debug("%s: model %s (%s)", path, model.name, why)
        with self._lock:
            self._check_open()
            restored = self._restore(image.pixels, model)
            engine = self._engines[model.key]
            tiles = len(self._grid(image.pixels, engine))
        alpha, quality_found = image.alpha, image.jpeg_quality
        del image  # drop the input pixels: the encoder needs a full-size buffer of its own
        share = None
        if jpeg is not None:
            restored = project(restored, jpeg)
            share = consistent_share(restored, jpeg)
        write_image(out_path, restored, alpha, in_place=True)
        return FileResult(out_path, quality_found, model.name, engine.precision, self.backend_name, tiles,
                          restored.shape[:2], share, unprojected)  # fmt: skip

    # -- internals -------------------------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("this Restorer is closed (close() or the end of its with block); make a new one")

    def _coefficients(self, path: Path, image: LoadedImage) -> tuple[JpegCoefficients | None, str]:
        """``(the JPEG's coefficients, "")`` when the projection runs on ``path``, else ``(None, why not)``: the mode
        is off, or (mode None) the input is not one it applies to. With the mode True (asked for) an input it cannot
        work on raises ConsistencyError instead."""
        mode = self.settings.consistent
        if mode is False:
            return None, "consistent mode off"
        try:
            jpeg = read_coefficients(path, image.orientation)
            if image.pixels.dtype != np.uint8:
                raise ConsistencyError(f"{path}: consistent mode works on 8-bit JPEGs; this one decodes to 16 bit")
            return jpeg, ""
        except (ConsistencyError, ReaderMissing) as e:
            if mode:
                raise
            return None, _short_reason(path, e)

    def _engine(self, model: Model, core: tuple[int, int] | None = None, batch: int | None = None) -> _Engine:
        """The loaded engine for ``model`` (built on first use, or rebuilt for a new ``core`` or ``batch``)."""
        engine = self._engines.get(model.key)
        if engine is not None and core in (None, engine.core) and batch in (None, engine.batch):
            return engine
        settings = self.settings
        batch = batch or self.batch
        if engine is not None:  # free the old backend (GPU memory) before building the next one
            del self._engines[model.key]
            engine.backend.close()
        backend, skipped = select_backend(self._backend_kind, model, core, batch, settings)
        probe = tile_grid(backend.name, model, settings, core)
        log.debug("backend %s: %s", backend.name, "asked for" if self._backend_kind != "auto" else
                  f"auto takes the first that loads of {' > '.join(BACKENDS)}; skipped: {len(skipped)}")  # fmt: skip
        if self._backend_kind == "auto":
            self.skipped_backends = [str(skip) for skip in skipped]
            self.notable_skips = [str(skip) for skip in skipped if skip.installed]
            self._backend_kind = backend.name  # later models use the same backend
        if backend.note:
            log.warning("%s: %s", backend.name, backend.note)
        file, why = backend_file(backend.name, model, settings.precision)  # the file create_backend loaded
        log.debug("precision %s for model %s on %s: %s", file.spec.precision, model.name, backend.name, why)
        if self.batch is None:
            self.batch = backend.max_batch  # the backend's default, now known
        engine = _Engine(model, backend, file.spec.precision, probe.core, probe.overlap, backend.max_batch)
        if settings.verify:
            # a fixed-window backend is tested at its window (it must fit); one taking any window at a small one:
            # the same check, without seconds of start-up for a large CPU core
            window = probe.window if not backend.any_window else tuple(min(w, SELF_TEST_WINDOW) for w in probe.window)
            key = self_test_key(file, backend, window)
            if key is not None and passed_self_test(settings.cache_dir, key):
                log.debug("self-test of %s on %s: passed before on this machine (same graph bytes)", model.name,
                          backend.name)  # fmt: skip
            else:
                try:
                    self_test(model, backend, window)
                except Exception as e:
                    backend.close()
                    if is_out_of_memory(e):  # one window does not fit: for _shrink, as if the build had failed
                        raise BackendUnavailable(f"out of memory running one {probe.window} window: {e}") from e
                    raise
                if key is not None:
                    record_self_test(settings.cache_dir, key)
        self._engines[model.key] = engine
        return engine

    def _grid(self, image: np.ndarray, engine: _Engine) -> TileGrid:
        h, w = image.shape[:2]
        if engine.backend.any_window:
            return TileGrid.fitted(h, w, engine.core, engine.overlap, self.settings.align)
        return TileGrid(h, w, engine.core, engine.overlap, self.settings.align)

    def _restore(self, image: np.ndarray, model: Model, out: np.ndarray | None = None) -> np.ndarray:
        out = np.empty_like(image) if out is None else out
        self._restore_all([image], model, [out])
        return out

    def _restore_all(self, images: list[np.ndarray], model: Model, outs: list[np.ndarray]) -> None:
        """Restore ``images`` (one shape and dtype) into ``outs`` with ``model``, their tiles batched together."""
        engine = self._engine(model)
        while True:
            try:
                self._run_tiles(images, engine, outs)
                break
            except Exception as e:  # backends raise library-specific types; only out-of-memory is handled
                if not is_out_of_memory(e):
                    raise
                engine = self._shrink(model, engine.core, engine.batch, e)
        for image, out in zip(images, outs, strict=True):
            blend(image, out, self.settings.strength, out=out)

    def _shrink(self, model: Model, core: tuple[int, int], batch: int, error: BaseException) -> _Engine:
        """Rebuild ``model``'s engine one step smaller (half the batch, then half the core) until one loads."""
        while True:
            if batch > 1:
                batch //= 2
            elif (smaller := tuple(max(c // 2, MIN_CORE) for c in core)) != core:
                core = smaller
            else:
                raise OutOfMemory(f"out of memory even with one {core[0]}×{core[1]} tile: {error}") from error
            log.warning("out of memory (%s): retrying with batch %d, tile core %s", first_line(error), batch, core)
            try:
                return self._engine(model, core, batch)
            except BackendUnavailable as e:  # TensorRT runs out of memory while building or creating a context
                if not is_out_of_memory(e):
                    raise
                error = e

    def _run_tiles(self, images: list[np.ndarray], engine: _Engine, outs: list[np.ndarray]) -> None:
        grid = self._grid(images[0], engine)  # the images share a shape, so a grid
        adapter = _ColorAdapter(engine.model.spec.channels, images[0])
        tiles = [(image, out, tile) for image, out in zip(images, outs, strict=True) for tile in grid]
        buffer = np.empty((engine.batch, engine.model.spec.channels, *grid.window), dtype=np.float32)
        with _tile_bar(len(tiles), self.settings.progress) as bar:
            for pos in range(0, len(tiles), engine.batch):
                chunk = tiles[pos : pos + engine.batch]
                batch = buffer[: len(chunk)]
                for i, (image, _, tile) in enumerate(chunk):
                    batch[i] = adapter.to_model(extract_window(image, tile, grid.window))
                result = engine.backend.run(batch)
                if not np.isfinite(result).all():
                    raise ModelError(
                        f"model {engine.model.name} produced NaN/Inf on this image ({engine.backend.name})"
                    )
                for i, (image, out, tile) in enumerate(chunk):
                    image_region, window_region = crop_slices(tile)
                    restored = result[i][(slice(None), *window_region)]
                    out[image_region] = adapter.from_model(restored, image[image_region])
                bar.update(len(chunk))


class _NoBar(contextlib.nullcontext):
    """What :func:`_tile_bar` gives without progress: a context manager whose ``update`` does nothing."""

    def __enter__(self) -> _NoBar:
        return self

    def update(self, n: int) -> None:
        pass


def _tile_bar(total: int, progress: bool) -> contextlib.AbstractContextManager:
    """A tqdm bar over ``total`` tiles (on terminals) with ``progress``; else :class:`_NoBar`, without importing tqdm
    (a one-image command never needs it)."""
    if not progress:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, unit="tile", disable=None, leave=False)


def _short_reason(path: Path, error: Exception) -> str:
    """Why the projection did not run on ``path``, for a result line: ``not a JPEG``, ``16-bit``, or the error."""
    message = str(error).removeprefix(f"{path}: ")
    if "needs a JPEG file" in message:
        return "not a JPEG"
    return "16-bit" if "16 bit" in message else message


def check_quality(quality: int | None) -> None:
    if quality is not None and not (
        isinstance(quality, int | np.integer) and not isinstance(quality, bool) and 1 <= quality <= 100
    ):
        raise ValueError(f"JPEG quality must be an integer in 1..100, got {quality!r}")


def check_writable(out_path: Path) -> None:
    """Raise ImageError unless ``out_path`` can be created: name length, folder writable (or creatable)."""
    if len(os.fsencode(out_path.name)) > NAME_MAX:
        raise ImageError(f"{out_path.name[:40]}…: output file name longer than {NAME_MAX} bytes")
    folder = out_path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent  # the nearest existing ancestor must let us create the rest
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        raise ImageError(f"{out_path}: cannot write into {folder} (not a writable folder)")


_CPU_LIBRARIES = {"ort-cpu": "onnxruntime", "openvino": "openvino"}  # backend → the module that runs the graph


def self_test_key(file: ModelFile, backend: Backend, window: tuple[int, int]) -> dict | None:
    """What a passed :func:`self_test` depends on, for :func:`runtime.engine_cache.passed_self_test`: the graph's
    SHA-256 (the sidecar's, which :mod:`runtime.model_files` checked against the file's bytes when it loaded them;
    else hashed now), the backend, its library's version, the window and this machine. None (test every time) for a
    backend whose result depends on more than that: a GPU's card and driver, a Triton server's current model.

    A record saves a one-image process the test (≈ 0.17 s CPU at a 320² window, ``benchmarks/results/startup.md``);
    a changed graph file has another hash, so it is tested again."""
    library = sys.modules.get(_CPU_LIBRARIES.get(backend.name, ""))
    if library is None or file.onnx is None:
        return None
    return {
        "onnx_sha256": file.spec.onnx_sha256 or sha256_file(file.onnx), "backend": backend.name,
        "library": f"{library.__name__} {getattr(library, '__version__', '?')}", "window": list(window),
        "host": platform.node(), "machine": platform.machine(),
    }  # fmt: skip


def self_test(model: Model, backend: Backend, window: tuple[int, int]) -> None:
    """Raise ModelError unless the model behaves like a restorer on a smooth synthetic image: right output shape,
    finite values, close to its input (PSNR ≥ 20 dB) and not displaced (no one-pixel shift fits better)."""
    rng = np.random.default_rng(0)
    c, (h, w) = model.spec.channels, window
    coarse = rng.random((c, max(h // 16, 2), max(w // 16, 2)))
    x = np.stack([_resize(p, h, w) for p in coarse]).astype(np.float32)[None] * 0.6 + 0.2
    try:
        out = backend.run(x)
    except Exception as e:  # the library's own error for a graph that does not run (e.g. its channels)
        if is_out_of_memory(e):
            raise
        raise ModelError(f"model {model.name} failed the load-time self-test ({backend.name}): {first_line(e)}") from e
    problem = None
    if out.shape != x.shape:
        problem = f"output shape {out.shape} for input {x.shape}"
    elif not np.isfinite(out).all():
        problem = "NaN/Inf output"
    else:
        m = 8  # compare away from the borders, where a shift brings in nothing
        core = out[..., m:-m, m:-m]
        mse = {d: float(np.mean((core - np.roll(x, d, axis=(2, 3))[..., m:-m, m:-m]) ** 2)) for d in
               [(0, 0), (0, 1), (1, 0), (0, -1), (-1, 0)]}  # fmt: skip
        psnr = 10 * np.log10(1 / max(mse[(0, 0)], 1e-12))
        if psnr < 20:
            problem = f"output far from its input on a smooth image ({psnr:.1f} dB PSNR)"
        elif min(mse, key=mse.get) != (0, 0):
            problem = f"output displaced by {min(mse, key=mse.get)} px"
    if problem:
        raise ModelError(f"model {model.name} failed the load-time self-test ({backend.name}): {problem}")


def _resize(plane: np.ndarray, h: int, w: int) -> np.ndarray:
    return cv2.resize(plane.astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)


class _ColorAdapter:
    """Converts tiles between the image's pixels and the model's C×H×W float input/output in [0, 1]."""

    def __init__(self, model_channels: int, image: np.ndarray) -> None:
        self.dtype = image.dtype
        self.scale = float(np.iinfo(image.dtype).max)
        gray = image.ndim == 2
        if model_channels == 1 and not gray and image.dtype != np.uint8:
            raise ImageError("a Y-channel model restores 8-bit colour images only (this one is 16-bit)")
        self.mode = "same" if gray == (model_channels == 1) else ("gray_rgb" if gray else "rgb_y")

    def to_model(self, window: np.ndarray) -> np.ndarray:
        if self.mode == "rgb_y":
            return rgb_to_y(window)[None] / np.float32(255)
        chw = window[None] if window.ndim == 2 else window.transpose(2, 0, 1)
        return chw / np.float32(self.scale)  # broadcasting into the 3-channel buffer expands gray for gray_rgb

    def from_model(self, out: np.ndarray, source: np.ndarray) -> np.ndarray:
        """``out``: C×h×w model output for the region whose input pixels are ``source``."""
        if self.mode == "rgb_y":
            return with_luma(source, out[0])
        if self.mode == "gray_rgb":
            out = np.tensordot(_LUMA, out, axes=1)[None]
        quantised = np.rint(np.clip(out, 0, 1) * self.scale).astype(self.dtype)
        return quantised[0] if source.ndim == 2 else quantised.transpose(1, 2, 0)


def _check_out(out: np.ndarray | None, image: np.ndarray) -> None:
    if out is None:
        return
    if not isinstance(out, np.ndarray) or out.shape != image.shape or out.dtype != image.dtype:
        raise ValueError(
            f"out must be an array of the image's shape {image.shape} and dtype {image.dtype}, got "
            f"{getattr(out, 'shape', type(out))} {getattr(out, 'dtype', '')}".rstrip()
        )
    if not out.flags.writeable:
        raise ValueError("out is read-only")
    if np.may_share_memory(out, image):  # tiles read context that earlier tiles would already have overwritten
        raise ValueError("out must not overlap the image (restoring in place is not possible)")


def _check_image(image: np.ndarray) -> None:
    if not isinstance(image, np.ndarray) or image.dtype not in (np.uint8, np.uint16):
        raise TypeError(f"expected a uint8 or uint16 numpy array, got {getattr(image, 'dtype', type(image))}")
    if not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 3)) or min(image.shape[:2]) < 1:
        raise ValueError(f"expected an H×W or H×W×3 (RGB) image, got shape {image.shape}")
