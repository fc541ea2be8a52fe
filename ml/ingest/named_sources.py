"""The sources ingest may read, by name: an administrator configures them, a run picks one.

A DAG trigger (or `intentflow ingest --source NAME`) names a source; what that reads, and with
which credentials, is configuration only a deployment's administrator writes:

- `default`: INTENTFLOW_SOURCE, a folder or fsspec URL of daily JSONL drops (default
  `$INTENTFLOW_HOME/raw`), unless INTENTFLOW_SOURCES_FILE has its own `default`;
- INTENTFLOW_SOURCES_FILE: name -> source spec (ml.ingest.sources.parse_source); a SQL source
  names an Airflow connection (`conn_id`) for its credentials, never a URL.

Every file a named source reads (its `url`, its `labels`) must lie under an allowed root:
the folders and URL prefixes of INTENTFLOW_SOURCE_ROOTS plus the default source's own folder.
A root's scheme is thereby allowed (`s3://crm-exports/chats` allows s3, in that bucket's
prefix); anything else is a ConfigError naming the source.

A SourceSpec given in code (tests, `intentflow ingest --path` on an operator's shell) is read
as it is: only names come from a form.
"""

from __future__ import annotations

import os
import re

from ml import storage
from ml.config import (
    DEFAULT_SOURCE_NAME,
    SOURCE_NAME,
    ConfigError,
    Settings,
    settings,
    source_entries,
    source_names,
    source_roots,
)
from ml.ingest.sources import SourceSpec, parse_source


def resolve(source: str | SourceSpec | None, cfg: Settings | None = None) -> SourceSpec:
    """The spec to read: a configured source by name (None: `default`), or a spec as given."""
    if isinstance(source, SourceSpec):
        return source
    if source is not None and not isinstance(source, str):
        raise ConfigError("a source is chosen by its configured name")
    return named_source(source or DEFAULT_SOURCE_NAME, cfg)


def named_source(name: str, cfg: Settings | None = None) -> SourceSpec:
    """The configured source `name`, checked against the allowed roots; ConfigError naming the
    source (never its credentials) when it is unknown or reads outside them."""
    cfg = cfg or settings()
    entries = source_entries()
    if name not in entries and name != DEFAULT_SOURCE_NAME:
        configured = (
            f"the configured sources: {', '.join(source_names())} (INTENTFLOW_SOURCES_FILE)"
        )
        if SOURCE_NAME.fullmatch(name):
            raise ConfigError(f"source {name!r} is not configured; {configured}")
        # A path, URL or spec typed where a name belongs is not echoed: it may hold a password.
        raise ConfigError(f"a source is chosen by name, not by path, URL or spec; {configured}")
    if name not in entries:
        if cfg.source.lstrip().startswith("{"):
            raise ConfigError(
                "INTENTFLOW_SOURCE is a folder or URL of daily JSONL drops; configure other "
                "sources (a `default` among them) in INTENTFLOW_SOURCES_FILE"
            )
        return SourceSpec(url=cfg.source)
    try:
        spec = parse_source({"name": name, **entries[name]})
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"source {name!r} in INTENTFLOW_SOURCES_FILE: {exc}") from None
    roots = allowed_roots(cfg)
    for key in ("url", "labels"):
        value = getattr(spec, key)
        if value and not any(under_root(value, root) for root in roots):
            raise ConfigError(
                f"source {name!r}: its {key} {_without_userinfo(value)} is not under an "
                f"allowed root ({', '.join(map(str, roots))}; INTENTFLOW_SOURCE_ROOTS)"
            )
    return spec


def allowed_roots(cfg: Settings) -> tuple[storage.Location, ...]:
    """INTENTFLOW_SOURCE_ROOTS, and the default source's folder: local folders (resolved) and
    URL prefixes a named source's files must lie under."""
    roots = []
    for root in (*source_roots(), cfg.source):
        if root.lstrip().startswith("{"):
            continue  # a spec in INTENTFLOW_SOURCE: refused when `default` is read
        if "::" in root or not _path_of(storage.location(root)):
            raise ConfigError(f"INTENTFLOW_SOURCE_ROOTS: {root!r} is not a folder or URL prefix")
        roots.append(storage.location(root))
    return tuple(roots)


def under_root(value: str, root: storage.Location) -> bool:
    """Whether the file or URL `value` lies in `root` (the same scheme, a prefix at a `/`).

    Local paths are compared resolved (links followed: ml.ingest.sources.checked_path keeps
    reading inside too); URLs with `..`, chained URLs (`a::b`) and user info are refused.
    """
    if "::" in value or "@" in value.partition("://")[2].split("/", 1)[0]:
        return False
    where = storage.location(value)
    if storage.is_remote(where) != storage.is_remote(root):
        return False
    if not storage.is_remote(where):
        real, top = os.path.realpath(where), os.path.realpath(root)
        return os.path.commonpath([real, top]) == top
    scheme, _, path = str(where).partition("://")
    root_scheme, _, root_path = str(root).partition("://")
    parts = [p for p in path.split("/") if p]
    top = [p for p in root_path.split("/") if p]
    return (
        scheme.lower() == root_scheme.lower()
        and ".." not in parts
        and "." not in parts
        and parts[: len(top)] == top
    )


def _path_of(loc: storage.Location) -> str:
    """The path part of a location: a local folder, or what follows `scheme://`."""
    return str(loc).partition("://")[2].strip("/") if storage.is_remote(loc) else str(loc)


def _without_userinfo(url: str) -> str:
    return re.sub(r"^([a-zA-Z][\w+.-]*://)[^/@]*@", r"\1", url)
