"""The streaming pipeline: decode (thread) → restore (the calling thread) → encode (thread), joined by bounded queues.

At most :data:`QUEUE_FRAMES` items wait between two stages and :data:`WINDOW_FRAMES` frames are restored together, so
memory does not depend on the clip's length. Items are :class:`Frame` s (restored) and anything else (e.g. a
container's packets to copy, passed through in order). An error or interrupt in any stage stops the others: no thread
is left waiting, and the first error is re-raised in the calling thread.
"""

from __future__ import annotations

import collections
import contextlib
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from tqdm import tqdm

if TYPE_CHECKING:
    from runtime.jpeg_consistency import JpegCoefficients

QUEUE_FRAMES = 4  # frames waiting between two stages: enough to overlap them, little memory at any resolution
WINDOW_FRAMES = 4  # frames restored together: a few frames' tiles fill a GPU batch; memory stays a few frames
_POLL_S = 0.1
_JOIN_S = 30.0  # after a failure or interrupt: how long the other stages may take to finish their current frame
_END = object()


@dataclass
class Stats:
    """What a run did; the ``*_s`` are busy seconds of each stage (the stages overlap: they add up to more than
    ``wall_s``)."""

    frames: int = 0
    corrupt: int = 0  # packets (raw mode: trailing partial frames) that could not be decoded
    missing: int = 0  # frames the input's header declares after where the file ends (a truncated file)
    qualities: collections.Counter = field(default_factory=collections.Counter)  # estimated JPEG quality → frames
    models: collections.Counter = field(default_factory=collections.Counter)  # model name → frames
    consistent: list[float] = field(default_factory=list)  # --consistent: each projected frame's luma share
    unprojected: int = 0  # --consistent: frames whose packet's coefficients could not be read (restored as they are)
    decode_s: float = 0.0
    restore_s: float = 0.0
    encode_s: float = 0.0
    wall_s: float = 0.0


@dataclass(frozen=True)
class Frame:
    """One frame on its way: H×W×3 (raw gray: H×W) uint8/uint16 ``pixels``, its ``pts`` in the stream's time base,
    the JPEG quality estimated from its packet (None: not a JPEG) and, in consistent mode, the packet's DCT
    coefficients (:class:`~runtime.jpeg_consistency.JpegCoefficients`; None: not read)."""

    pixels: np.ndarray
    pts: int
    quality: int | None = None
    jpeg: JpegCoefficients | None = None


class _Stopped(Exception):
    """Raised in a stage when another stage failed or the run was interrupted."""


class _Pipe:
    """A bounded queue from one thread to another. ``fail(error)`` makes the other side's next ``put`` or iteration
    raise ``error``: a failing stage stops the whole pipeline instead of leaving a thread waiting."""

    def __init__(self, depth: int = QUEUE_FRAMES) -> None:
        self._queue: queue.Queue = queue.Queue(depth)
        self._error: BaseException | None = None

    def put(self, item: object) -> None:
        while True:
            self.check()
            with contextlib.suppress(queue.Full):
                self._queue.put(item, timeout=_POLL_S)
                return

    def close(self) -> None:
        self.put(_END)

    def fail(self, error: BaseException) -> None:
        self._error = self._error or error

    def check(self) -> None:
        if self._error is not None:
            raise self._error

    def __iter__(self) -> Iterator[Any]:
        while True:
            self.check()
            try:
                item = self._queue.get(timeout=_POLL_S)
            except queue.Empty:
                continue
            if item is _END:
                return
            yield item


def _start(name: str, work: Callable[[], None], pipe: _Pipe) -> threading.Thread:
    """Run ``work()`` in a thread whose exception fails ``pipe``."""

    def run() -> None:
        try:
            work()
        except BaseException as e:
            pipe.fail(e)

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    return thread


def run_pipeline(
    items: Iterator[Any], restore: Callable[[list[Frame]], list[Frame]], write: Callable[[Iterable[Any]], None],
    stats: Stats, progress: tqdm | None = None,
) -> None:  # fmt: skip
    """Decode (``items``, in a thread) → ``restore`` windows of up to :data:`WINDOW_FRAMES` :class:`Frame` s (here;
    it returns them restored, in order) → ``write`` (in a thread, given frames and other items in order). Returns
    when ``write`` has returned; re-raises the first stage's error. On any error or interrupt both threads are
    stopped and joined before this returns."""
    decoded, restored = _Pipe(), _Pipe()
    window: list[Any] = []  # frames to restore together, and the items between them

    def flush() -> None:
        frames = [item for item in window if isinstance(item, Frame)]
        t0 = time.perf_counter()
        done = iter(restore(frames) if frames else [])
        stats.restore_s += time.perf_counter() - t0
        stats.frames += len(frames)
        if progress is not None:
            progress.update(len(frames))
        for item in window:
            restored.put(next(done) if isinstance(item, Frame) else item)
        window.clear()

    def read() -> None:
        for item in items:
            decoded.put(item)
        decoded.close()

    def encode() -> None:
        write(restored)

    start = time.perf_counter()
    reader, writer = _start("decode", read, decoded), _start("encode", encode, restored)
    try:
        frames = 0
        for item in decoded:
            window.append(item)
            frames += isinstance(item, Frame)
            if frames == WINDOW_FRAMES:
                flush()
                frames = 0
        flush()
        restored.close()
        writer.join()
        restored.check()
    except BaseException:
        decoded.fail(_Stopped())
        restored.fail(_Stopped())
        raise
    finally:  # bounded: a thread blocked on a pipe that nobody closes must not hold the exit (daemon threads)
        reader.join(_JOIN_S)
        writer.join(_JOIN_S)
        stats.wall_s = time.perf_counter() - start


def timed(items: Iterator[Any], stats: Stats, attribute: str) -> Iterator[Any]:
    """``items``, adding the time spent producing each to ``stats.<attribute>`` (e.g. ``"decode_s"``)."""
    while True:
        t0 = time.perf_counter()
        item = next(items, _END)
        setattr(stats, attribute, getattr(stats, attribute) + time.perf_counter() - t0)
        if item is _END:
            return
        yield item
