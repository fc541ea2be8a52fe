"""Moving model artifacts between a store (local folder or fsspec URL) and this machine's cache.

Downloads are verified against their registered hash before they are kept, and kept under that
hash, so every later load of the same version reads the local copy.
"""

from __future__ import annotations

from pathlib import Path

from ml.artifact.integrity import ArtifactIntegrityError, directory_sha256, local_path


def cache_path(cache: Path, sha256: str) -> Path:
    """Where a downloaded artifact with this hash is kept on this machine."""
    return cache / "artifacts" / sha256.strip().lower()


def fetch_artifact(uri: str, expected_sha256: str | None, cache: Path) -> Path:
    """A local directory holding the artifact at `uri`, verified against `expected_sha256`.

    A local path is returned as it is (loading verifies it). A remote URL is downloaded once
    into `cache/artifacts/<sha256>`, verified before it is moved there, and reused by every
    later load with the same hash; a download that does not match is deleted and refused.
    Without an expected hash (a retried task rereading its own upload) it always downloads.
    """
    path = local_path(uri)
    if path is not None:
        return path
    if expected_sha256:
        cached = cache_path(cache, expected_sha256)
        if cached.is_dir():
            return cached
    import shutil
    import uuid

    from ml.storage import get_dir

    download = get_dir(uri, cache / "artifacts" / f".download-{uuid.uuid4().hex}")
    actual = directory_sha256(download)
    if expected_sha256 and actual != expected_sha256.strip().lower():
        shutil.rmtree(download, ignore_errors=True)
        raise ArtifactIntegrityError(
            f"artifact {uri} does not match its recorded hash: "
            f"expected sha256 {expected_sha256}, downloaded {actual}"
        )
    return _keep(download, cache_path(cache, actual))


def fetch_registered(uri: str, sha256: str, cache: Path) -> tuple[Path, str]:
    """A registered version's artifact as a local folder (:func:`fetch_artifact`) and the task
    type it was trained for (its task.json); the task's `load` verifies the hash again."""
    from ml.tasks.contract import artifact_task

    artifact = fetch_artifact(uri, sha256, cache)
    return artifact, artifact_task(artifact)


def _keep(folder: Path, final: Path) -> Path:
    """Move `folder` to `final`; if another process got there first, keep theirs (same hash)."""
    import os
    import shutil

    final.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.rename(folder, final)
    except OSError:
        shutil.rmtree(folder, ignore_errors=True)
    return final


def publish_artifact(local: Path, url: str, sha256: str, cache: Path, last: str) -> None:
    """Upload a finished local artifact to `url` (the file `last` last, as its completion
    marker), then keep the local copy as the cache entry for its hash."""
    from ml.storage import put_dir

    put_dir(local, url, last)
    _keep(local, cache_path(cache, sha256))
