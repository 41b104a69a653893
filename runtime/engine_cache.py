"""A self-healing, process-safe cache of serialized inference engines (TensorRT plans), independent of TensorRT.

Layout under the cache root (default ``$WCDGAN_CACHE_DIR`` or the platform user cache, ``…/wcdgan/engines``)::

    <model>-<slot>.plan   serialized engine
    <model>-<slot>.json   sidecar: the full :class:`EngineKey`, the plan's sha256 and size, creation time
    <model>-<slot>.lock   file lock held while building

``slot`` hashes every key field except the TensorRT version, so an engine built by an older TensorRT is found,
recognised as stale and *replaced* rather than left behind. An entry is used only if its sidecar equals the
requested key, the plan's sha256 matches the sidecar and ``load_fn`` deserializes it; otherwise it is rebuilt
with a warning saying why. Concurrent processes asking for the same entry serialise on the lock: one builds,
the others wait and load its result.

Tests drive this with plain ``build_fn``/``load_fn`` callables; :mod:`runtime.backends.tensorrt` plugs in TensorRT.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import re
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import platformdirs

from common.files import atomic_write_bytes, atomic_write_text, safe_name

ENV_VAR = "WCDGAN_CACHE_DIR"
FORMAT = "wcdgan-engine"
T = TypeVar("T")
log = logging.getLogger(__name__)


class EngineBuildError(RuntimeError):
    """A freshly built engine could not be loaded back."""


@dataclass(frozen=True)
class EngineKey:
    """Everything an engine depends on. ``profiles``: per input ``(name, min, opt, max)`` NCHW shapes."""

    model_name: str
    onnx_sha256: str
    precision: str
    input_dtype: str
    output_dtype: str
    profiles: tuple[tuple[str, tuple[int, ...], tuple[int, ...], tuple[int, ...]], ...]
    trt_version: str
    gpu_name: str
    compute_capability: str
    builder_options: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (tuples become lists), the form stored in and compared with sidecars."""
        return json.loads(json.dumps(dataclasses.asdict(self), sort_keys=True))

    def slot(self) -> str:
        """File stem ``<model>-<16 hex>``: a hash of every field except the TensorRT version (see module doc)."""
        fields = {k: v for k, v in self.to_dict().items() if k != "trt_version"}
        digest = hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:16]
        return f"{safe_name(self.model_name)}-{digest}"


OPENVINO_SUBDIR = "openvino"  # OpenVINO's own compiled-model cache (runtime.backends.openvino) lives here


def default_cache_dir() -> Path:
    """``$WCDGAN_CACHE_DIR`` if set, else the user cache folder (e.g. ``~/.cache/wcdgan/engines``)."""
    env = os.environ.get(ENV_VAR)
    return Path(env).expanduser() if env else Path(platformdirs.user_cache_dir("wcdgan")) / "engines"


def cache_root(cache_dir: str | os.PathLike | None = None) -> Path:
    """The cache folder a caller named (``~`` expanded), or :func:`default_cache_dir` for None."""
    return Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()


class EngineCache:
    """Get-or-build engines; see the module docstring for the on-disk contract.

    ``build_fn(onnx_path, key) -> bytes`` serializes a new engine; ``load_fn(bytes) -> engine | None`` returns
    None for a plan it cannot use (TensorRT's ``deserialize_cuda_engine`` does so for incompatible plans).
    """

    def __init__(
        self,
        build_fn: Callable[[Path, EngineKey], bytes],
        load_fn: Callable[[bytes], T | None],
        root: str | os.PathLike | None = None,
        lock_timeout: float = -1,
    ) -> None:
        self.root = cache_root(root)
        self.build_fn, self.load_fn, self.lock_timeout = build_fn, load_fn, lock_timeout

    def paths(self, key: EngineKey) -> tuple[Path, Path, Path]:
        """``(plan, sidecar, lock)`` paths of ``key``'s entry."""
        stem = self.root / key.slot()
        return stem.with_suffix(".plan"), stem.with_suffix(".json"), stem.with_suffix(".lock")

    def get(self, onnx_path: str | os.PathLike, key: EngineKey) -> T:
        """The loaded engine for ``key``, building (once, across processes) and storing it if needed."""
        engine, problem = self._try_load(key)
        if engine is not None:
            return engine
        plan_path, sidecar, lock_path = self.paths(key)
        self.root.mkdir(parents=True, exist_ok=True)
        import filelock  # here, not at the top: only a TensorRT build takes the lock (start-up, issue 34)

        with filelock.FileLock(str(lock_path), timeout=self.lock_timeout):
            engine, problem = self._try_load(key)  # another process may have built it while we waited
            if engine is not None:
                return engine
            if problem != "missing":
                log.warning("engine cache entry %s: %s; rebuilding", plan_path.name, problem)
            plan = self.build_fn(Path(onnx_path), key)
            atomic_write_bytes(plan_path, plan)
            record = {
                "format": FORMAT,
                "key": key.to_dict(),
                "plan_sha256": hashlib.sha256(plan).hexdigest(),
                "size": len(plan),
                "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            }
            atomic_write_text(sidecar, json.dumps(record, indent=2, sort_keys=True) + "\n")  # last: marks it complete
            engine = self.load_fn(plan)
        if engine is None:
            raise EngineBuildError(f"{plan_path}: a freshly built engine failed to deserialize")
        return engine

    def _try_load(self, key: EngineKey) -> tuple[T | None, str]:
        """``(engine, "")`` for a valid entry, else ``(None, reason)``; reason "missing" when there is none."""
        plan_path, sidecar, _ = self.paths(key)
        if not sidecar.exists() and not plan_path.exists():
            return None, "missing"
        try:
            record = read_json(sidecar)
            plan = plan_path.read_bytes()
        except (OSError, ValueError) as e:
            return None, f"unreadable ({type(e).__name__}: {e})"
        if not isinstance(record, dict) or record.get("format") != FORMAT:
            return None, "sidecar is not an engine record"
        stored = record.get("key", {})
        if stored != key.to_dict():
            diff = sorted(k for k in key.to_dict() if stored.get(k) != key.to_dict()[k])
            details = ", ".join(f"{k}: {stored.get(k)!r} → {key.to_dict()[k]!r}" for k in diff)
            return None, f"stale (built for a different {details})"
        if hashlib.sha256(plan).hexdigest() != record.get("plan_sha256"):
            return None, "corrupt (plan file does not match its recorded sha256)"
        engine = self.load_fn(plan)
        if engine is None:
            return None, "incompatible (the plan failed to deserialize)"
        return engine, ""


MAX_SIDECAR_BYTES = 1 << 20  # a record is a few hundred bytes; anything larger is not ours


def read_json(path: Path) -> Any:
    """The JSON in the regular file ``path`` itself (not a link's target): a FIFO, device or folder of that name is
    refused without blocking, as are files over :data:`MAX_SIDECAR_BYTES` and nesting too deep to parse.
    Raises OSError or ValueError."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0))
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ValueError("not a regular file")
        if info.st_size > MAX_SIDECAR_BYTES:
            raise ValueError(f"{info.st_size} bytes, larger than any engine record")
        data = f.read(MAX_SIDECAR_BYTES + 1)
    try:
        return json.loads(data.decode("utf-8"))
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None
    except UnicodeDecodeError as e:
        raise ValueError(f"not UTF-8 ({e})") from None


def owned_record(sidecar: Path) -> dict[str, Any]:
    """The engine record in ``sidecar`` if this cache wrote it — a regular file, readable, tagged with our format,
    holding a complete, well-typed key whose slot is the file's own name, a plan size and a creation time — else
    ValueError saying why. Nothing else is ever listed as an entry or deleted."""
    try:
        record = read_json(sidecar)
    except (OSError, ValueError) as e:
        raise ValueError(f"unreadable ({e})") from None
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise ValueError("not an engine record")
    try:
        key = EngineKey(**record["key"])
        _check_key(key)
        slot = key.slot()
    except (KeyError, TypeError, AttributeError, ValueError) as e:
        raise ValueError(f"incomplete engine record ({type(e).__name__}: {e})") from None
    if slot != sidecar.stem:
        raise ValueError(f"record of entry {slot}, not of {sidecar.stem}")
    size, created = record.get("size"), record.get("created")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0 or not isinstance(created, str):
        raise ValueError(f"malformed engine record (size {size!r:.20}, created {created!r:.30})")
    return record


def _check_key(key: EngineKey) -> None:
    """ValueError unless ``key`` (as read from JSON) has the types :class:`EngineKey` declares: text fields are
    strings, ``profiles`` a list of ``[name, min, opt, max]`` with integer shapes, ``builder_options`` a mapping."""
    text = {f.name: getattr(key, f.name) for f in dataclasses.fields(key) if f.type == "str"}
    if bad := sorted(name for name, value in text.items() if not isinstance(value, str)):
        raise ValueError(f"{', '.join(bad)} must be text")
    if not isinstance(key.builder_options, dict):
        raise ValueError("builder_options must be a mapping")
    profiles = key.profiles
    if not isinstance(profiles, list | tuple) or not profiles:
        raise ValueError(f"profiles must be a non-empty list, got {profiles!r:.60}")
    for profile in profiles:
        if not (
            isinstance(profile, list | tuple)
            and len(profile) == 4
            and isinstance(profile[0], str)
            and all(isinstance(s, list | tuple) and all(type(d) is int for d in s) for s in profile[1:])
        ):
            raise ValueError(f"profile {profile!r:.60} is not [name, min, opt, max] with integer shapes")


def list_entries(root: str | os.PathLike | None = None) -> list[dict[str, Any]]:
    """Records of every entry under ``root``; a sidecar tagged as ours but damaged is listed with an ``error``."""
    root = cache_root(root)
    entries = []
    for sidecar in _own_files(root, lambda name: name.endswith(".json")):
        try:
            record = owned_record(sidecar)
        except ValueError as e:
            if str(e) == "not an engine record" or not os.path.lexists(sidecar.with_suffix(".plan")):
                continue  # not ours
            record = {"error": str(e)}
        entries.append({"slot": sidecar.stem, "path": str(sidecar.with_suffix(".plan")), **record})
    return entries


SELF_TEST_SUBDIR = "self_test"  # records of passed load-time self-tests (passed_self_test)
SELF_TEST_FORMAT = "wcdgan-self-test"
_SELF_TEST_RECORD = re.compile(r"[0-9a-f]{16}\.json")


def _self_test_path(root: Path, key: dict[str, Any]) -> Path:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return root / SELF_TEST_SUBDIR / f"{digest}.json"


def passed_self_test(root: str | os.PathLike | None, key: dict[str, Any]) -> bool:
    """Whether :func:`record_self_test` recorded ``key`` (JSON-ready: the graph's SHA-256, backend, library version,
    window, machine; :func:`runtime.restorer.self_test_key`) under the cache ``root``. The whole key is compared, not
    only its file name; an unreadable or foreign record is no record."""
    try:
        record = read_json(_self_test_path(cache_root(root), key))
    except (OSError, ValueError):
        return False
    return isinstance(record, dict) and record.get("format") == SELF_TEST_FORMAT and record.get("key") == key


def self_test_records(root: str | os.PathLike) -> list[Path]:
    """The self-test records under ``root`` (``SELF_TEST_SUBDIR/<16 hex>.json``)."""
    return _own_files(Path(root) / SELF_TEST_SUBDIR, _SELF_TEST_RECORD.fullmatch)


def record_self_test(root: str | os.PathLike | None, key: dict[str, Any]) -> None:
    """Record that the self-test of ``key`` passed (atomically). A cache that cannot be written only costs the
    next process the test again: logged at DEBUG, never an error."""
    path = _self_test_path(cache_root(root), key)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps({"format": SELF_TEST_FORMAT, "key": key}, sort_keys=True) + "\n")
    except OSError as e:
        log.debug("self-test record not written (%s): the next process tests the model again", e)


_TIMING_CACHE = re.compile(r"trt.+-sm\d+\.\d+\.(cache|lock)")  # runtime.backends.tensorrt._TimingCache names


def _own_files(folder: Path, wanted: Callable[[str], bool]) -> list[Path]:
    """The non-folder entries of ``folder`` whose name is ``wanted``, sorted: files, and links as links (a link
    found here is removed, never followed). Empty when ``folder`` is missing or is itself a link, so nothing outside
    the cache is ever reached through one."""
    try:
        if not stat.S_ISDIR(os.lstat(folder).st_mode):
            return []
        with os.scandir(folder) as entries:
            return sorted(Path(e.path) for e in entries if wanted(e.name) and not e.is_dir(follow_symlinks=False))
    except OSError:
        return []


def openvino_blobs(root: str | os.PathLike) -> list[Path]:
    """OpenVINO's compiled models under ``root`` (``OPENVINO_SUBDIR/<number>.blob``, OpenVINO's own naming)."""
    return _own_files(Path(root) / OPENVINO_SUBDIR, lambda name: name.endswith(".blob") and name[:-5].isdigit())


def clear(root: str | os.PathLike | None = None) -> int:
    """Delete every entry (plan, sidecar, lock), timing cache, OpenVINO compiled model (``OPENVINO_SUBDIR/*.blob``)
    and self-test record (``SELF_TEST_SUBDIR/*.json``) under ``root``; return the number of files removed.

    Only files provably written by this cache are touched (:func:`owned_record`; timing caches and OpenVINO blobs by
    their name and folder), so a user's own ``notes.plan`` or a foreign JSON in the same folder survives. Links are
    removed as links: neither a linked file nor a linked ``timing``/``openvino`` folder's content is ever deleted.
    """
    root = cache_root(root)
    victims = _own_files(root / "timing", _TIMING_CACHE.fullmatch)
    victims += openvino_blobs(root)
    victims += self_test_records(root)
    for sidecar in _own_files(root, lambda name: name.endswith(".json")):
        try:
            owned_record(sidecar)
        except ValueError:
            continue
        victims += [sidecar.with_suffix(".plan"), sidecar, sidecar.with_suffix(".lock")]
    removed = 0
    for path in victims:
        try:
            if not stat.S_ISDIR(os.lstat(path).st_mode):
                path.unlink()  # a link itself, never its target
                removed += 1
        except FileNotFoundError:
            continue
    return removed
