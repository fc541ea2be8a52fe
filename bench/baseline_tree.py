"""A checkout of another commit to measure against in the same run: `--baseline PATH` (a tree
already there) or `--baseline-ref REF` (default: 74e8b01, main before the Delta tables), checked
out here as a temporary `git worktree` and removed at the end."""

from __future__ import annotations

import contextlib
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent
DEFAULT_REF = "74e8b01"


@contextlib.contextmanager
def baseline_tree(path: Path | None, ref: str = DEFAULT_REF) -> Iterator[Path]:
    if path is not None:
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="baseline-") as tmp:
        tree = Path(tmp) / "tree"
        git = ["git", "-C", str(HERE), "worktree"]
        subprocess.run([*git, "add", "--detach", str(tree), ref], check=True, capture_output=True)
        try:
            yield tree
        finally:
            subprocess.run([*git, "remove", "--force", str(tree)], check=False, capture_output=True)
