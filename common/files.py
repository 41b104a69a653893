"""Atomic file writes: a reader sees the old file or the complete new one, never a partial one.

A write goes to a hidden temporary beside the target (``.<stem>.<random>.tmp<suffix>``) and is renamed over it
at the end. A process killed mid-write (SIGKILL, power loss) leaves that temporary behind; the next write to the
same target removes such leftovers at once. A temporary of a writer that is still alive is never removed: the
writer holds an exclusive ``flock`` on it until the rename, and the kernel releases it when the writer dies (no pid
to be reused, no age to guess). Without ``flock`` (Windows) an open file cannot be deleted, which protects it alike.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

NAME_MAX = 255  # bytes per file name on Linux, macOS and Windows file systems
# Image files the project reads from folders (OpenCV decodes them all in its standard wheels).
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".webp", ".bmp", ".tif", ".tiff")
# Common video file names: the image commands point these to runtime.video instead of failing to decode them.
VIDEO_SUFFIXES = (".avi", ".mp4", ".m4v", ".mov", ".mkv", ".webm", ".mjpeg", ".mjpg", ".mpg", ".mpeg", ".ts", ".mts",
                  ".m2ts", ".wmv", ".flv", ".3gp", ".ogv", ".nut")  # fmt: skip
_TEMP_EXTRA = len(".") + len(".") + 8 + len(".tmp")  # what a temporary name adds around stem and suffix


def temp_prefix(path: Path) -> str:
    """``.<stem>.`` with the stem shortened so that the temporary name fits :data:`NAME_MAX` bytes."""
    room = NAME_MAX - _TEMP_EXTRA - len(os.fsencode(path.suffix))
    stem = os.fsdecode(os.fsencode(path.stem)[: max(room, 1)])  # names are bytes (not always UTF-8) on POSIX
    return f".{stem}."


def sweep_stale_temps(targets: Iterable[Path]) -> list[Path]:
    """Remove leftover temporaries of earlier writes to any of ``targets`` whose writer is dead (see module
    docstring); each folder is listed once. Returns what was removed."""
    by_folder: dict[Path, set[tuple[str, str]]] = {}
    for target in targets:
        by_folder.setdefault(target.parent, set()).add((temp_prefix(target), target.suffix))
    removed = []
    for folder, names in by_folder.items():
        suffixes = {suffix for _, suffix in names}
        with contextlib.suppress(OSError):
            for entry in os.scandir(folder):
                if _temp_of(entry.name, names, suffixes) and entry.is_file(follow_symlinks=False):
                    with contextlib.suppress(OSError):
                        _remove_if_unlocked(entry.path)
                        removed.append(Path(entry.path))
    return removed


def _remove_if_unlocked(path: str) -> None:
    """Delete ``path`` unless a live writer holds its lock (OSError then)."""
    if fcntl is None:
        os.unlink(path)  # fails while the writer has it open
        return
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # BlockingIOError while its writer lives
        os.unlink(path)
    finally:
        os.close(fd)


def _temp_of(name: str, names: set[tuple[str, str]], suffixes: set[str]) -> bool:
    """Whether ``name`` is ``<prefix><8 random characters>.tmp<suffix>`` for a (prefix, suffix) in ``names``."""
    for suffix in suffixes:
        tail = f".tmp{suffix}"
        if name.endswith(tail):
            stem = name[: -len(tail)]
            if _RANDOM.fullmatch(stem[-8:]) and (stem[:-8], suffix) in names:
                return True
    return False


_RANDOM = re.compile(r"[A-Za-z0-9_]{8}")  # what tempfile.mkstemp puts between prefix and suffix


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path in ``path``'s folder; on success it replaces ``path`` in one rename.

    The temporary name keeps the final suffix, so writers that choose a format by extension
    (``cv2.imwrite``, ``onnx.save``) behave as for the final name. On error the temporary is removed.
    """
    path = Path(path)
    if len(os.fsencode(path.name)) > NAME_MAX:
        raise OSError(36, "File name too long", str(path))  # before any work, not at the final rename
    path.parent.mkdir(parents=True, exist_ok=True)
    sweep_stale_temps([path])
    fd, tmp_path = _locked_temp(path)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)
        if fd >= 0:
            os.close(fd)


def _locked_temp(path: Path) -> tuple[int, Path]:
    """A new temporary for ``path`` and a descriptor holding its lock (-1 without ``flock``: closed at once, as
    Windows cannot rename an open file)."""
    while True:
        fd, tmp = tempfile.mkstemp(prefix=temp_prefix(path), suffix=f".tmp{path.suffix}", dir=path.parent)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp creates 0600; give the file the mode open() would
        if fcntl is None:
            os.close(fd)
            return -1, Path(tmp)
        fcntl.flock(fd, fcntl.LOCK_EX)
        if os.fstat(fd).st_nlink:  # not swept in the instant between its creation and the lock
            return fd, Path(tmp)
        os.close(fd)


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _read_umask()  # read once at import: os.umask is process-wide, changing it later would race


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def safe_name(text: str) -> str:
    """``text`` with every character but letters, digits, ``-``, ``_`` and ``.`` replaced by ``_``: a file name part."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")  # C0 (NUL, tab, newline, escape...), DEL and C1


def check_plain_name(name: object, what: str = "name") -> str:
    """``name`` if it can be used as one file-name component inside a folder the tool writes to: a non-empty string
    without path separators, NUL or other control characters (a newline in a name breaks every line-based listing
    and config that holds it), not ``.``/``..``, not starting with ``.`` (hidden, or a temporary's prefix), at most
    :data:`NAME_MAX` bytes. ValueError naming ``what`` otherwise — so that no name from an option or a sidecar can
    lead a write out of its folder."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"{what} must be a non-empty string, got {name!r:.60}")
    if "/" in name or "\\" in name or name.startswith(".") or len(name.encode()) > NAME_MAX or _CONTROL.search(name):
        raise ValueError(
            f"{what} {name!r:.80} is not a plain file name (no path separators or control characters, no leading "
            f"'.', ≤ {NAME_MAX} bytes)"
        )
    return name


def list_images(folder: str | os.PathLike) -> list[Path]:
    """Image files (by :data:`IMAGE_SUFFIXES`) directly in ``folder``, sorted."""
    return sorted(p for p in Path(folder).iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def shared_dir() -> Path:
    """The team's read-only inputs (data, weights, docs): ``$WCDGAN_SHARED`` or ``<repository>/../shared``. A user's
    clone has none; everything that reads it takes explicit paths too."""
    env = os.environ.get("WCDGAN_SHARED")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared"


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()
