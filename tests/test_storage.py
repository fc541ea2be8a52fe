"""ml.storage's downloads and uploads stay inside their folders.

get_dir runs against a real S3 API (moto's server, tests/s3_server.py): object keys are any
strings, and `prefix/../evil` is a legal key an attacker with write access to the bucket can
put beside a model or a snapshot.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from s3_server import make_bucket, moto_server, s3_env

from ml import storage


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    with moto_server() as endpoint:
        yield endpoint


@pytest.fixture
def bucket(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    for key, value in s3_env(s3_endpoint).items():
        monkeypatch.setenv(key, value)
    return make_bucket()


def put_raw(bucket: str, key: str, body: bytes) -> None:
    """PUT one object under its exact key (boto3: no client-side path normalisation)."""
    import boto3

    boto3.client("s3").put_object(Bucket=bucket.removeprefix("s3://"), Key=key, Body=body)


def files_under(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


@pytest.mark.parametrize(
    "evil",
    [
        "model/../evil.txt",  # beside the download folder
        "model/../../../evil.txt",  # further up
        "model/sub/../../evil.txt",
        "model//evil.txt",  # an absolute path once joined
        "model/./evil.txt",
    ],
)
def test_get_dir_refuses_a_key_that_leaves_the_folder_and_writes_nothing(
    bucket: str, tmp_path: Path, evil: str
) -> None:
    put_raw(bucket, "model/weights.bin", b"weights")
    put_raw(bucket, evil, b"evil")
    work = tmp_path / "a" / "b" / "cache"
    # UnsafePathError is a ValueError: before the fix, the key was written outside instead.
    with pytest.raises(ValueError, match="evil.txt"):
        storage.get_dir(f"{bucket}/model", work / "model")
    assert files_under(tmp_path) == []  # nothing written, neither the evil file nor the others


def test_fetch_artifact_refuses_a_path_escape_before_any_hash(bucket: str, tmp_path: Path) -> None:
    """An artifact on object storage with a `../` key: refused before anything is written."""
    from ml.artifact.store import fetch_artifact

    put_raw(bucket, "runs/r1/model/model.safetensors", b"weights")
    put_raw(bucket, "runs/r1/model/../../../../evil.txt", b"evil")
    with pytest.raises(ValueError, match=r"\.\./evil\.txt"):
        fetch_artifact(f"{bucket}/runs/r1/model", "0" * 64, tmp_path / "cache")
    assert files_under(tmp_path) == []


def test_get_dir_downloads_a_plain_folder(bucket: str, tmp_path: Path) -> None:
    put_raw(bucket, "snap/train.parquet", b"t")
    put_raw(bucket, "snap/sub/deeper/x.json", b"{}")
    got = storage.get_dir(f"{bucket}/snap", tmp_path / "snap")
    assert files_under(got) == ["sub/deeper/x.json", "train.parquet"]


@pytest.mark.parametrize(
    "key", ["root/../x", "root/a/../../x", "root//etc/passwd", "root/./x", "root/a\0b", "root"]
)
def test_relative_key_refuses_what_is_not_a_plain_relative_path(key: str) -> None:
    with pytest.raises(storage.UnsafePathError, match="not a plain relative path"):
        storage.relative_key(key, "root")
    assert storage.relative_key("root/a/b..c/.d", "root/") == "a/b..c/.d"


def test_put_dir_refuses_a_symbolic_link_before_uploading(tmp_path: Path) -> None:
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "a.parquet").write_bytes(b"a")
    (folder / "link").symlink_to("/etc/passwd")
    url = "memory://put-dir-links/out"
    with pytest.raises(ValueError, match="'link' is a symbolic link"):
        storage.put_dir(folder, url)
    fs, root = storage.filesystem(url)
    assert not fs.exists(root)


@pytest.mark.parametrize("last", ["..", "."])
def test_a_snapshot_url_whose_folder_is_dot_or_dot_dot_is_refused(
    tmp_path: Path, last: str
) -> None:
    """The snapshot's folder name (its hash) names its cache entry: `..` would be the cache."""
    from ml.snapshots.writer import local_snapshot

    storage.filesystem("memory://")[0].pipe_file("/local-snapshot/a/train.parquet", b"t")
    with pytest.raises(ValueError, match="not a plain relative path"):
        local_snapshot(f"memory://local-snapshot/a/{last}", tmp_path / "cache")
    assert files_under(tmp_path) == []
