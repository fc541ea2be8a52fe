"""Training checkpoints on the artifact store: a retried fine_tune on another worker resumes.

The Trainer writes its checkpoints (checkpoint-<step>/: weights, optimizer, schedule, every
rank's RNG state, trainer_state.json) to a local folder. When the artifacts live on object
storage, each one is mirrored to `<run>/checkpoints/` there after it is written, and a run
whose local folder has none starts by fetching the mirror: the worker that picks up a retry
need not be the one that was killed.

A checkpoint counts as complete once its trainer_state.json exists (the Trainer writes it
last); on the store, once MARKER names it (written after its files). An interrupted upload
leaves the previous marker, so a fetch never takes a half-uploaded checkpoint.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

from ml import storage

logger = logging.getLogger(__name__)

MARKER = "latest.json"
STATE = "trainer_state.json"
_NAME = re.compile(r"^checkpoint-(\d+)$")


def complete(root: Path) -> list[Path]:
    """The complete checkpoints under `root`, oldest first."""
    found = []
    for folder in root.glob("checkpoint-*"):
        match = _NAME.match(folder.name)
        if match and (folder / STATE).is_file():
            found.append((int(match.group(1)), folder))
    return [folder for _, folder in sorted(found)]


def mirror(root: Path, url: str) -> None:
    """Upload the checkpoints under `root` that the store lacks, with the config key, then
    point MARKER at the latest and drop the store's older ones (the best one is kept)."""
    fs, base = storage.filesystem(url)
    fs.invalidate_cache(base)
    local = complete(root)
    if not local:
        return
    present = {p.rstrip("/").rsplit("/", 1)[-1] for p in fs.ls(base)} if fs.exists(base) else set()
    for folder in local:
        if folder.name not in present:
            storage.put_dir(folder, f"{url.rstrip('/')}/{folder.name}", last=STATE)
    for extra in root.glob("*.json"):  # the config key the checkpoints were made with
        fs.put_file(str(extra), f"{base}/{extra.name}")
    fs.pipe_file(f"{base}/{MARKER}", json.dumps({"latest": local[-1].name}).encode())
    names = {folder.name for folder in local}
    for name in present - names - {MARKER}:
        if _NAME.match(name):
            fs.rm(f"{base}/{name}", recursive=True)
    logger.info("checkpoint %s mirrored to %s", local[-1].name, url)


def fetch(url: str, root: Path) -> None:
    """Download the store's checkpoints into `root` when `root` has none of its own."""
    if complete(root):
        return
    fs, base = storage.filesystem(url)
    fs.invalidate_cache(base)
    if not fs.exists(f"{base}/{MARKER}"):
        return
    latest = json.loads(fs.cat_file(f"{base}/{MARKER}"))["latest"]
    names = [p.rstrip("/").rsplit("/", 1)[-1] for p in fs.ls(base)]
    for name in names:
        match = _NAME.match(name)
        # The latest and any older one (the best epoch's weights); never one newer than the
        # marker (an upload that was cut off).
        if match and int(match.group(1)) <= int(_NAME.match(latest).group(1)):  # type: ignore[union-attr]
            storage.get_dir(f"{url.rstrip('/')}/{name}", root / name)
        elif name.endswith(".json") and name != MARKER:
            fs.get_file(f"{base}/{name}", str(root / name))
    logger.info("fetched checkpoints up to %s from %s", latest, url)
