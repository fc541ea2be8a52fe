"""Where data lives: a local folder or an fsspec URL (s3://, gs://, memory://...).

A *location* is a `Path` for local storage and a `str` URL for object storage, so local code
keeps its `Path` operations and only the few places that publish or fetch go through here.
Object stores have no directories and no atomic rename: directories are uploaded file by
file with a marker file last, and read by downloading into a local cache first.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

Location = Path | str


def location(value: str | Path) -> Location:
    """A setting's value as a location: an absolute Path, or a URL string for a remote store.

    `file://` URLs and plain paths are local; any other `scheme://` is an fsspec URL.
    """
    text = str(value).strip()
    if text.startswith("file://"):
        text = text.removeprefix("file://")
    elif "://" in text:
        return text.rstrip("/")
    return Path(text).expanduser().absolute()


def is_remote(loc: Location) -> bool:
    return isinstance(loc, str) and "://" in loc


def join(loc: Location, *parts: str) -> Location:
    """`loc / part / ...` for a Path, `loc/part/...` for a URL."""
    if is_remote(loc):
        return "/".join([str(loc).rstrip("/"), *parts])
    return Path(loc).joinpath(*parts)


def parent(loc: Location) -> Location:
    if is_remote(loc):
        return str(loc).rstrip("/").rsplit("/", 1)[0]
    return Path(loc).parent


def filesystem(url: str) -> tuple[Any, str]:
    """The fsspec file system and in-store path of `url`.

    fsspec caches file system instances, so this is cheap after the first call. Credentials and
    endpoints come from the environment (AWS_* for s3fs, GOOGLE_* for gcsfs).
    """
    import fsspec

    try:
        return fsspec.core.url_to_fs(url)
    except ImportError as exc:  # s3fs/gcsfs not installed: say which extra to add
        raise ImportError(
            f"{url}: {exc}. Install the file system for this URL, e.g. "
            "pip install 'intentflow[s3]' (s3fs) or gcsfs"
        ) from exc


def exists(loc: Location) -> bool:
    if not is_remote(loc):
        return Path(loc).exists()
    fs, path = filesystem(str(loc))
    fs.invalidate_cache(path)  # another worker may have written it since we last looked
    return fs.exists(path)


def read_bytes(loc: Location) -> bytes:
    if not is_remote(loc):
        return Path(loc).read_bytes()
    fs, path = filesystem(str(loc))
    return fs.cat_file(path)


def write_parquet(table: Any, loc: Location) -> Location:
    """Write `table` (pyarrow) as one Parquet file at `loc`, replacing it atomically: a temp
    file renamed in place locally; on object storage one PUT is atomic in itself."""
    import uuid

    import pyarrow as pa
    import pyarrow.parquet as pq

    if is_remote(loc):
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink)
        fs, path = filesystem(str(loc))
        fs.pipe_file(path, sink.getvalue().to_pybytes())
        return loc
    path = Path(loc)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex}")
    pq.write_table(table, tmp)
    os.replace(tmp, path)
    return path


def write_bytes(data: bytes, loc: Location) -> Location:
    """Write `data` at `loc`, replacing it atomically (as :func:`write_parquet`)."""
    if is_remote(loc):
        fs, path = filesystem(str(loc))
        fs.pipe_file(path, data)
        return loc
    path = Path(loc)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex}")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return path


def read_parquet(loc: Location, columns: list[str] | None = None) -> Any:
    """The Parquet file at `loc` as a pyarrow Table: every column, or those of `columns` it has
    (a file written before a column existed lacks it; check `column_names`)."""
    import pyarrow.parquet as pq

    if not is_remote(loc):
        return _read_columns(pq.ParquetFile(Path(loc)), columns)
    fs, path = filesystem(str(loc))
    with fs.open(path, "rb") as fh:
        return _read_columns(pq.ParquetFile(fh), columns)


def _read_columns(file: Any, columns: list[str] | None) -> Any:
    names = file.schema_arrow.names
    return file.read(columns=None if columns is None else [c for c in columns if c in names])


def put_dir(local: Path, url: str, last: str | None = None) -> None:
    """Upload every file under `local` to `url`; the file named `last` goes up last.

    Readers treat `last` as the marker that the directory is complete: until it exists the
    upload is unfinished (a killed upload leaves no marker, and is redone or ignored).
    """
    fs, root = filesystem(url)
    files = sorted(p for p in local.rglob("*") if p.is_file())
    files.sort(key=lambda p: p.relative_to(local).as_posix() == last)  # stable: `last` at the end
    for file in files:
        fs.put_file(str(file), f"{root}/{file.relative_to(local).as_posix()}")
    fs.invalidate_cache(root)


def get_dir(url: str, local: Path) -> Path:
    """Download the directory at `url` to `local`, atomically (a temp folder renamed in place).

    A concurrent download of the same directory is harmless: the first rename wins, the other
    copy is dropped.
    """
    fs, root = filesystem(url)
    fs.invalidate_cache(root)
    names = [p for p in fs.find(root) if not p.endswith("/")]
    if not names:
        raise FileNotFoundError(f"{url} is missing or empty")
    local.parent.mkdir(parents=True, exist_ok=True)
    tmp = local.parent / f".{local.name}.tmp-{uuid.uuid4().hex}"
    for name in names:
        target = tmp / name[len(root) :].lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        fs.get_file(name, str(target))
    try:
        os.rename(tmp, local)
    except OSError:  # someone else finished the same download first
        shutil.rmtree(tmp, ignore_errors=True)
    return local


def rebase_paths(obj: Any, local: Path, loc: Location, fields: tuple[str, ...]) -> Any:
    """`obj` (a dataclass) with the path fields under `local` renamed to where they were
    uploaded under `loc`; unchanged when `loc` is local (then `local` is `loc`)."""
    import dataclasses

    if not is_remote(loc):
        return obj
    prefix = str(local)
    return dataclasses.replace(
        obj,
        **{
            f: f"{loc}{getattr(obj, f)[len(prefix) :]}"
            for f in fields
            if str(getattr(obj, f)).startswith(prefix)
        },
    )


@contextlib.contextmanager
def local_output(loc: Location, last: str | None = None) -> Iterator[Path]:
    """A local folder to write `loc`'s files into: `loc` itself when local, else a temp folder
    uploaded to `loc` (with `last` last) when the block succeeds."""
    if not is_remote(loc):
        Path(loc).mkdir(parents=True, exist_ok=True)
        yield Path(loc)
        return
    tmp = Path(tempfile.mkdtemp(prefix="intentflow-out-"))
    try:
        yield tmp
        put_dir(tmp, str(loc), last)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def file_sha256(path: Path | str) -> str:
    """sha256 of one file: a local path or an fsspec URL (a snapshot's source files)."""
    import fsspec

    digest = hashlib.sha256()
    with fsspec.open(str(path), "rb") as fh:
        while block := fh.read(1 << 20):  # 1 MiB: weights can be hundreds of MB
            digest.update(block)
    return digest.hexdigest()
