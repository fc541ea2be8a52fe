"""Content hashes for model artifact directories, so a registry can pin exactly what it serves.

The hash covers every file's relative path and bytes and nothing else (no mtimes, owners or
permissions), so copying an artifact to another machine or bucket keeps its hash, while editing,
adding, removing or renaming any file changes it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from ml import storage

# The only weights format we load: safetensors holds tensors, never executable pickle code.
WEIGHTS_FILE = "model.safetensors"
# Suffixes of pickle-based checkpoints (torch.save, joblib...). Loading one can run arbitrary
# code, so an artifact holding any of them is refused outright instead of ignored.
PICKLE_SUFFIXES = frozenset({".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt"})


class ArtifactIntegrityError(Exception):
    """An artifact's content does not match the hash it was registered with."""


def artifact_files(root: Path) -> list[Path]:
    """Every file of the artifact at `root`; ArtifactIntegrityError if it holds a symbolic link.

    A link's target could be any file on the machine (a key, /etc/shadow): it would be hashed,
    uploaded and served as part of the model. Artifacts are written by training, which makes
    no links, so a link is refused rather than followed or skipped.
    """
    try:
        return storage.local_files(root)
    except storage.UnsafePathError as exc:
        raise ArtifactIntegrityError(f"artifact {exc}") from None


def directory_sha256(path: Path, *, follow_symlinks: bool = False) -> str:
    """sha256 over the sorted relative paths and contents of every file under `path`.

    Each file contributes one `relative/posix/path NUL file-sha256 LF` record; the path is
    hashed next to the content so that a rename changes the result even if bytes do not.
    Empty directories carry no content and are ignored. A symbolic link raises
    ArtifactIntegrityError (:func:`artifact_files`), unless `follow_symlinks` (a base model
    in Hugging Face's cache, whose files are links into its blob store: hashed for lineage only).
    """
    root = Path(path)
    if not root.is_dir():
        raise FileNotFoundError(f"artifact directory not found: {root}")
    found = [p for p in root.rglob("*") if p.is_file()] if follow_symlinks else artifact_files(root)
    # Sort on the posix string itself so the order is the same on every platform.
    files = sorted((p.relative_to(root).as_posix(), p) for p in found)
    digest = hashlib.sha256()
    for relative, file in files:
        digest.update(relative.encode("utf-8") + b"\0" + storage.file_sha256(file).encode() + b"\n")
    return digest.hexdigest()


def verify_artifact(path: Path, expected_sha256: str) -> None:
    """Raise :class:`ArtifactIntegrityError` unless `path` hashes to `expected_sha256`."""
    actual = directory_sha256(path)
    if actual != expected_sha256.strip().lower():
        raise ArtifactIntegrityError(
            f"artifact {path} does not match its recorded hash: "
            f"expected sha256 {expected_sha256}, actual {actual}"
        )


def assert_safetensors_only(path: Path) -> None:
    """Raise :class:`ArtifactIntegrityError` unless `path` has safetensors weights and no pickle
    (and no symbolic link: :func:`artifact_files`)."""
    root = Path(path)
    pickles = sorted(
        p.relative_to(root).as_posix()
        for p in artifact_files(root)
        if p.suffix.lower() in PICKLE_SUFFIXES
    )
    if pickles:
        raise ArtifactIntegrityError(
            f"artifact {root} contains pickle-based files {pickles}; only safetensors weights "
            "are accepted because loading a pickle can execute arbitrary code"
        )
    if not (root / WEIGHTS_FILE).is_file():
        raise ArtifactIntegrityError(f"artifact {root} has no {WEIGHTS_FILE}")


def checked_dir(artifact_dir: Path | str, expected_sha256: str | None = None) -> Path:
    """An artifact folder a loader may read: its hash verified (when one is recorded) and
    safetensors weights only. Every task's loader calls this first."""
    path = Path(artifact_dir)
    if expected_sha256 is not None:
        verify_artifact(path, expected_sha256)
    assert_safetensors_only(path)
    return path


def local_path(uri: str) -> Path | None:
    """The local directory an artifact URI names (a path or file://), None for remote URLs."""
    if uri.startswith("file://"):
        return Path(uri.removeprefix("file://"))
    if "://" in uri:
        return None
    return Path(uri)


def check_artifact(uri: str, expected_sha256: str) -> None:
    """Raise :class:`ArtifactIntegrityError` unless the artifact exists and matches its hash.

    Remote URLs (s3://, gs://...) are checked for existence through fsspec only: hashing them
    would download the weights.
    """
    path = local_path(uri)
    if path is None:
        import fsspec

        fs, root = fsspec.core.url_to_fs(uri)
        if not fs.exists(root):
            raise ArtifactIntegrityError(f"artifact {uri} is missing")
        return
    if not path.is_dir():
        raise ArtifactIntegrityError(f"artifact {uri} is missing (no directory {path})")
    verify_artifact(path, expected_sha256)
