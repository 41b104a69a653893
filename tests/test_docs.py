"""The documentation cannot rot: every ```bash and ```python block of README.md and docs/*.md runs, in a fresh copy of
this checkout, and leaves its ``git status`` clean — or it is marked, right before the block, with
``<!-- not run: REASON -->``. Blocks are run as written; placeholder inputs (``photo.jpg``, ``photos/``,
``originals/``, and with PyAV ``camera.avi``) are created first, from the bundled example image."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
import pytest

from tests.conftest import REPO_ROOT, SHARED
from tests.video_fixtures import make_mjpeg

pytestmark = [pytest.mark.slow, pytest.mark.cli]  # exports, trains, builds or runs commands: not in the inner loop

DOCS = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]
NOT_RUN = re.compile(r"^<!--\s*not run:\s*(\S.*?)\s*-->$")
FENCE = re.compile(r"^```(\S*)\s*$")
RUNNABLE = {"bash", "python"}
ALLOWED = RUNNABLE | {"text"}  # any other fence (sh, console, none) could hide a command that never runs
EXAMPLE = REPO_ROOT / "examples" / "astronaut_q10.jpg"
COMMAND_TIMEOUT_S = 600

# What a block needs beyond the runtime; a block is skipped, with the reason, when it is missing here.
NEEDS_MODULE = {
    "runtime.batch": "ray",
    "runtime.video": "av",
    "export.triton": "tritonclient",
    "export.build": "torch",
    "train": "torch",
    "benchmarks.": "torch",
}
NEEDS_SHARED = re.compile(r"\.\./shared|benchmarks\.(figures|quality|tiling_fidelity)")
SLOW = re.compile(r"runtime\.batch|python -m train |benchmarks\.(figures|runtime|cpu_paths|quality)|export\.build")


@dataclass(frozen=True)
class Block:
    doc: Path
    line: int  # 1-based line of the opening fence
    lang: str
    text: str
    not_run: str | None  # the reason given by the marker before the block

    @property
    def id(self) -> str:
        return f"{self.doc.relative_to(REPO_ROOT)}:{self.line}"


def code_blocks(doc: Path) -> list[Block]:
    """The fenced blocks of a markdown file, with the not-run reason of the line (non-blank) before each."""
    blocks, lines, i = [], doc.read_text().splitlines(), 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
        before = next((lines[j].strip() for j in range(i - 1, -1, -1) if lines[j].strip()), "")
        marker = NOT_RUN.match(before)
        blocks.append(Block(doc, i + 1, m.group(1), "\n".join(lines[i + 1 : end]) + "\n", marker and marker.group(1)))
        i = end + 1
    return blocks


def shell_commands(text: str) -> list[str]:
    """A bash block's commands: continuation lines joined, blank and comment-only lines left out."""
    joined = re.sub(r"\\\n\s*", " ", text)
    return [line for line in joined.splitlines() if line.strip() and not line.lstrip().startswith("#")]


ALL_BLOCKS = [b for doc in DOCS for b in code_blocks(doc)]
TO_RUN = [b for b in ALL_BLOCKS if b.lang in RUNNABLE and b.not_run is None]


def test_every_block_is_runnable_or_marked_with_a_reason():
    assert len(DOCS) > 5 and TO_RUN, "README.md and docs/*.md hold the runnable examples"
    for block in ALL_BLOCKS:
        assert block.lang in ALLOWED, f"{block.id}: fence '{block.lang or '(none)'}': use bash, python or text"
    marked_elsewhere = [b.id for b in ALL_BLOCKS if b.not_run and b.lang not in RUNNABLE]
    assert not marked_elsewhere, f"not-run markers on blocks that never run anyway: {marked_elsewhere}"


def test_ci_runs_the_readme_test_command():
    readme = [c for b in code_blocks(REPO_ROOT / "README.md") if b.lang == "bash" for c in shell_commands(b.text)]
    test_commands = [c for c in readme if "pytest" in c]
    assert test_commands == ["python -m pytest -q -rs"]  # -rs: every skip says why
    last = (REPO_ROOT / ".ci" / "run").read_text().strip().splitlines()[-1]
    assert last == test_commands[0]


def _anchor(heading: str) -> str:
    """GitHub's anchor for a markdown heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_relative_links_and_anchors_exist():
    broken = []
    for doc in DOCS:
        for target in re.findall(r"\]\(([^)\s]+)\)", doc.read_text()):
            if re.match(r"[a-z]+://", target):
                continue
            path, _, anchor = target.partition("#")
            file = (doc.parent / path).resolve() if path else doc
            if not file.exists():
                broken.append(f"{doc.name}: {target}")
            elif anchor and anchor not in {_anchor(h) for h in re.findall(r"^#+ (.+)$", file.read_text(), re.M)}:
                broken.append(f"{doc.name}: {target} (no such heading)")
    assert not broken, broken


def test_markers_are_parsed():
    """The parser this file relies on: markers bind to the next fence only, continuations join, comments drop."""
    assert shell_commands("a\\\n   b  # x\n# only a comment\n\nc\n") == ["a b  # x", "c"]
    assert NOT_RUN.match("<!-- not run: needs a GPU -->").group(1) == "needs a GPU"
    assert NOT_RUN.match("<!-- not run: -->") is None  # a reason is required


def _missing_need(block: Block) -> str | None:
    """Why ``block`` cannot run here (a package or ../shared absent), or None."""
    for needle, module in NEEDS_MODULE.items():
        if f"-m {needle}" in block.text and importlib.util.find_spec(module) is None:
            return f"{block.id} needs {module}, not installed"
    if NEEDS_SHARED.search(block.text) and not SHARED.is_dir():
        return f"{block.id} needs the team's shared data ({SHARED} not found)"
    return None


# A virtual environment's marker file (venv, virtualenv; conda): such a folder is never part of the checkout.
ENV_MARKERS = ("pyvenv.cfg", "conda-meta/history")


def checkout_files(source: Path) -> list[str]:
    """The files of the checkout at ``source`` that a documented command may need: tracked ones and untracked ones
    git does not ignore (work not yet added), minus any virtual environment inside the clone whatever its name
    (one such folder holds gigabytes, copied for every block otherwise)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=source, capture_output=True, check=True,
    ).stdout.decode().split("\0")  # fmt: skip
    env_roots = tuple(rel[: -len(marker)] for rel in listed for marker in ENV_MARKERS if rel.endswith("/" + marker))
    return sorted({rel for rel in listed if rel and not rel.startswith(env_roots)})


def _checkout_copy(root: Path) -> Path:
    """A git repository at ``root/repo`` holding this checkout's :func:`checkout_files`, with ``root/shared``
    pointing at the team's shared folder, so that ``../shared`` in a command resolves."""
    repo = root / "repo"
    for rel in checkout_files(REPO_ROOT):
        source = REPO_ROOT / rel
        if source.is_file():  # deleted but not yet staged: skip
            (repo / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, repo / rel)
    if SHARED.is_dir():
        (root / "shared").symlink_to(SHARED.resolve())
    git = ["git", "-c", "user.name=docs", "-c", "user.email=docs@test", "-c", "commit.gpgsign=false"]
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "copy"]):
        subprocess.run([*git, *args], cwd=repo, check=True, capture_output=True)
    return repo


def test_the_copy_leaves_virtual_environments_out(tmp_path):
    """A clone with ``python -m venv .venv`` (or any other name) inside: the docs test copies the checkout's files
    only, so it stays fast and small however big the environment is."""
    clone = tmp_path / "clone"
    files = {
        ".gitignore": (REPO_ROOT / ".gitignore").read_text(),  # the project's: ignores .venv/ and venv/
        "tracked.py": "",
        "not_yet_added.py": "",
        ".venv/pyvenv.cfg": "home = /usr/bin",
        ".venv/lib/big.bin": "x" * 1000,
        "venv/lib/site.py": "",  # no marker: ignored by name
        "myenv/pyvenv.cfg": "home = /usr/bin",
        "myenv/lib/site.py": "",
        "tools/conda_env/conda-meta/history": "",
        "tools/conda_env/lib/site.py": "",
    }
    for rel, text in files.items():
        (clone / rel).parent.mkdir(parents=True, exist_ok=True)
        (clone / rel).write_text(text)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"]
    for args in (["init", "-q"], ["add", ".gitignore", "tracked.py"], ["commit", "-q", "-m", "init"]):
        subprocess.run([*git, *args], cwd=clone, check=True, capture_output=True)
    assert checkout_files(clone) == [".gitignore", "not_yet_added.py", "tracked.py"]
    status = subprocess.run(["git", "status", "--porcelain"], cwd=clone, capture_output=True, text=True).stdout
    assert ".venv" not in status and "venv/" not in status.replace("myenv/", "")  # git itself ignores them too


def _add_placeholder_inputs(repo: Path) -> None:
    """The user's own files in the docs (so excluded from git status here): ``photo.jpg``, ``photos/{a,b}.jpg`` (q10),
    their originals ``originals/{a,b}.png``, and, where PyAV is installed, a Motion-JPEG clip ``camera.avi``."""
    shutil.copy(EXAMPLE, repo / "photo.jpg")
    (repo / "photos").mkdir()
    (repo / "originals").mkdir()
    crop = cv2.imread(str(EXAMPLE))[96:224, 96:224]
    for name in ("a", "b"):
        cv2.imwrite(str(repo / "photos" / f"{name}.jpg"), crop, [cv2.IMWRITE_JPEG_QUALITY, 10])
        cv2.imwrite(str(repo / "originals" / f"{name}.png"), crop)
    if importlib.util.find_spec("av") is not None:
        make_mjpeg(repo / "camera.avi", [10, 12, 15, 10] * 5)  # 0.8 s at 25 fps, with sound
    with open(repo / ".git" / "info" / "exclude", "a") as f:
        f.write("/photo.jpg\n/photos/\n/originals/\n/camera.avi\n")


def _run(cmd: list[str], repo: Path, env: dict[str, str], what: str) -> None:
    proc = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S)
    assert proc.returncode == 0, (
        f"{what}\nexit {proc.returncode}\nstdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}"
    )


@pytest.mark.parametrize(
    "block", [pytest.param(b, id=b.id, marks=[pytest.mark.slow] if SLOW.search(b.text) else []) for b in TO_RUN]
)
def test_documented_block_runs_and_writes_nothing_tracked(block, tmp_path):
    if reason := _missing_need(block):
        pytest.skip(reason)
    repo = _checkout_copy(tmp_path)
    _add_placeholder_inputs(repo)
    env = os.environ | {
        "PYTHONPATH": str(repo),  # this copy's code, not an installed checkout's
        "WCDGAN_SHARED": str(tmp_path / "shared"),
        "WCDGAN_CACHE_DIR": str(tmp_path / "cache"),
        "MPLBACKEND": "Agg",
    }
    bin_dir = str(Path(sys.executable).parent)  # `python` in the docs = this interpreter
    env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "")
    if block.lang == "python":
        _run([sys.executable, "-c", block.text], repo, env, f"{block.id}: python block")
    else:
        for command in shell_commands(block.text):
            _run(["bash", "-o", "pipefail", "-ec", command], repo, env, f"{block.id}: {command}")
    status = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all"], cwd=repo, capture_output=True, text=True, check=True
    ).stdout
    assert status == "", f"{block.id} wrote into the checkout (not git-ignored):\n{status}"
