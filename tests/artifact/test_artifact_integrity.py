import os
import shutil
from pathlib import Path

import pytest

from ml.artifact.integrity import (
    ArtifactIntegrityError,
    assert_safetensors_only,
    directory_sha256,
    verify_artifact,
)


@pytest.fixture
def artifact(tmp_path: Path) -> Path:
    root = tmp_path / "artifact"
    (root / "sub").mkdir(parents=True)
    (root / "model.safetensors").write_bytes(b"\x00weights\x01" * 100)
    (root / "config.json").write_text('{"a": 1}')
    (root / "sub" / "vocab.txt").write_text("hello\nworld\n")
    return root


def test_hash_is_stable_and_independent_of_location_and_mtime(
    artifact: Path, tmp_path: Path
) -> None:
    first = directory_sha256(artifact)
    assert first == directory_sha256(artifact)
    assert len(first) == 64

    copy = tmp_path / "elsewhere" / "copy"
    shutil.copytree(artifact, copy)
    os.utime(copy / "config.json", (0, 0))
    (copy / "empty-dir").mkdir()  # carries no content
    assert directory_sha256(copy) == first


def test_hash_changes_when_one_byte_changes(artifact: Path) -> None:
    before = directory_sha256(artifact)
    data = bytearray((artifact / "model.safetensors").read_bytes())
    data[500] ^= 1
    (artifact / "model.safetensors").write_bytes(bytes(data))
    assert directory_sha256(artifact) != before


def test_hash_changes_when_a_file_is_renamed_or_added(artifact: Path) -> None:
    before = directory_sha256(artifact)
    (artifact / "sub" / "vocab.txt").rename(artifact / "sub" / "vocab2.txt")
    renamed = directory_sha256(artifact)
    assert renamed != before

    (artifact / "extra").write_bytes(b"")
    assert directory_sha256(artifact) != renamed


def test_verify_artifact_names_path_expected_and_actual(artifact: Path) -> None:
    actual = directory_sha256(artifact)
    verify_artifact(artifact, actual)
    verify_artifact(artifact, actual.upper())  # hex case is not significant

    with pytest.raises(ArtifactIntegrityError) as err:
        verify_artifact(artifact, "0" * 64)
    message = str(err.value)
    assert str(artifact) in message and "0" * 64 in message and actual in message


def test_missing_directory_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        directory_sha256(tmp_path / "nope")


def test_safetensors_only(artifact: Path) -> None:
    assert_safetensors_only(artifact)

    (artifact / "sub" / "optimizer.pt").write_bytes(b"pickle")
    with pytest.raises(ArtifactIntegrityError, match="optimizer.pt"):
        assert_safetensors_only(artifact)

    (artifact / "sub" / "optimizer.pt").unlink()
    (artifact / "model.safetensors").unlink()
    with pytest.raises(ArtifactIntegrityError, match="model.safetensors"):
        assert_safetensors_only(artifact)


@pytest.mark.parametrize("link", ["file", "folder"])
def test_a_symbolic_link_in_an_artifact_is_refused_at_hashing_loading_and_upload(
    artifact: Path, tmp_path: Path, link: str
) -> None:
    """A link's target (any file on the machine) is never hashed, loaded or uploaded as part
    of the model: hashing, checked_dir and publish_artifact refuse it, and nothing goes up."""
    from ml import storage
    from ml.artifact.integrity import checked_dir
    from ml.artifact.store import publish_artifact

    secret = tmp_path / "outside" / "id_rsa"
    secret.parent.mkdir()
    secret.write_text("PRIVATE KEY")
    if link == "file":
        (artifact / "sub" / "notes.txt").symlink_to(secret)
    else:
        (artifact / "sub" / "extra").symlink_to(secret.parent, target_is_directory=True)
    with pytest.raises(ArtifactIntegrityError, match="symbolic link"):
        directory_sha256(artifact)
    with pytest.raises(ArtifactIntegrityError, match="symbolic link"):
        checked_dir(artifact)
    url = f"memory://links-{link}/model"
    with pytest.raises(ValueError, match="symbolic link"):
        publish_artifact(artifact, url, "0" * 64, tmp_path / "cache", "config.json")
    fs, root = storage.filesystem(url)
    assert not fs.exists(root)  # refused before the first file went up
    # A base model in Hugging Face's cache is links into its blob store: hashed for lineage.
    assert len(directory_sha256(artifact, follow_symlinks=True)) == 64
