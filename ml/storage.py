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


def private_folder(path: Path) -> Path:
    """Create `path` (and missing parents) readable by this user only (0700), for folders that
    hold customer records. An existing folder is restricted too."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.chmod(0o700)
    return path


def read_bytes(loc: Location) -> bytes:
    if not is_remote(loc):
        return Path(loc).read_bytes()
    fs, path = filesystem(str(loc))
    return fs.cat_file(path)


def write_parquet(table: Any, loc: Location, *, private: bool = False) -> Location:
    """Write `table` (pyarrow) as one Parquet file at `loc`, replacing it atomically: a temp
    file renamed in place locally; on object storage one PUT is atomic in itself.

    `private`: customer records; locally the file is 0600 before it gets its name, so it is
    never readable by others (on object storage the bucket's policy decides)."""
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
    if private:
        tmp.chmod(0o600)
    os.replace(tmp, path)
    return path


class UnsafePathError(ValueError):
    """A path that would leave its folder: an object key with `..` or an absolute part, or a
    symbolic link in a folder to upload (its target, anywhere on the machine, would go up)."""


def local_files(folder: Path) -> list[Path]:
    """Every regular file under `folder`, sorted; UnsafePathError at the first symbolic link (a
    file or folder link would bring in, hash or upload what it points at, outside `folder`)."""
    files = []
    for top, dirs, names in os.walk(folder):
        for name in sorted(dirs + names):
            path = Path(top) / name
            if path.is_symlink():
                raise UnsafePathError(
                    f"{folder}: {path.relative_to(folder).as_posix()!r} is a symbolic link; "
                    "refused (its target would be read in its place)"
                )
        files += [p for p in (Path(top) / name for name in names) if p.is_file()]
    return sorted(files)


def relative_key(key: str, root: str) -> str:
    """`key` (an object under `root`) as a relative path that stays under a download folder.

    Object keys are any strings: `root/../x`, `root//etc/x` or `root/a/../../x` are legal keys,
    and joined to a local folder they would land outside it. Such a key raises UnsafePathError
    naming it.
    """
    root = root.rstrip("/")
    rest = key[len(root) + 1 :] if key.startswith(f"{root}/") else None
    parts = rest.split("/") if rest else []
    if not parts or any(p in ("", ".", "..") or "\0" in p for p in parts):
        raise UnsafePathError(
            f"object key {key!r} under {root!r} is not a plain relative path "
            "(empty, '.' or '..' parts, or an absolute path): refused, nothing downloaded"
        )
    return "/".join(parts)


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
    upload is unfinished (a killed upload leaves no marker, and is redone or ignored). A
    symbolic link under `local` is refused before anything is uploaded.
    """
    fs, root = filesystem(url)
    files = local_files(local)
    files.sort(key=lambda p: p.relative_to(local).as_posix() == last)  # stable: `last` at the end
    for file in files:
        fs.put_file(str(file), f"{root}/{file.relative_to(local).as_posix()}")
    fs.invalidate_cache(root)


def get_dir(url: str, local: Path) -> Path:
    """Download the directory at `url` to `local`, atomically (a temp folder renamed in place).

    A concurrent download of the same directory is harmless: the first rename wins, the other
    copy is dropped. Every key is checked before anything is written: one that would land
    outside `local` (`..`, an absolute part) raises UnsafePathError, and nothing is downloaded.
    """
    fs, root = filesystem(url)
    fs.invalidate_cache(root)
    names = [p for p in fs.find(root) if not p.endswith("/")]
    if not names:
        raise FileNotFoundError(f"{url} is missing or empty")
    keys = {name: relative_key(name, root) for name in names}
    local.parent.mkdir(parents=True, exist_ok=True)
    tmp = local.parent / f".{local.name}.tmp-{uuid.uuid4().hex}"
    inside = tmp.resolve()
    for name, relative in keys.items():
        target = tmp / relative
        # Belt and braces: the checked key resolves under the download folder.
        if not target.resolve().is_relative_to(inside):
            shutil.rmtree(tmp, ignore_errors=True)
            raise UnsafePathError(f"object key {name!r} resolves outside {local}: refused")
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
