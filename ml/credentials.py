"""Passwords out of everything Intentflow prints: the one masking function.

A registry URL (postgresql://user:password@host/db), an Airflow connection URI or an fsspec
URL with credentials (ftp://user:password@host/...) must never reach a terminal, a log line,
a report, XCom or an exception message. Everything that shows a URL, a setting or a message
that may hold one passes it through :func:`hide_credentials` first: the CLI's output
(ml.cli.output), ``repr(Settings)`` (ml.config), snapshot records (ml.snapshots.writer), the
registry's error messages (ml.registry.store).

The password becomes ``***``, as SQLAlchemy's ``URL.render_as_string(hide_password=True)``
writes it, so a masked SQL URL reads the same whichever of the two masked it. Standard library
only: ml.config uses it at DAG parse time.
"""

from __future__ import annotations

import re
from typing import Any, TypeVar

T = TypeVar("T")

MASK = "***"

# scheme://user:PASSWORD@ : the password runs to the last '@' of the URL (a password may hold
# an unescaped '@' or '/'), so more may be masked than the password, never less. The user may
# be empty (redis://:password@host). Quotes and spaces end a URL inside a longer text.
_USERINFO = re.compile(
    r"(?P<head>\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s:/@\"'<>]*:)(?P<password>[^\s\"<>]*)@"
)
# ?password=... / &token=... in a query string (libpq's URLs, signed object-store URLs).
_QUERY_SECRET = re.compile(
    r"(?P<head>[?&;](?:password|passwd|pwd|sslpassword|secret|secret_key|token|access_token"
    r"|api_key|apikey|sig|signature|x-amz-signature|x-amz-credential|x-amz-security-token)=)"
    r"(?P<value>[^&#\s\"'<>]*)",
    re.IGNORECASE,
)


def hide_credentials(text: str) -> str:
    """`text` with the password of every URL in it masked (``user:***@host``), and secret
    query parameters (``password=``, ``token=``, ``X-Amz-Signature=``...) masked too.

    Works on a bare URL as on a message or a JSON document that holds some; a text without a
    password comes back unchanged.
    """
    masked = _USERINFO.sub(
        lambda m: f"{m['head']}{MASK}@" if m["password"] else m[0],
        text,
    )
    return _QUERY_SECRET.sub(lambda m: f"{m['head']}{MASK}" if m["value"] else m[0], masked)


def has_credentials(url: str) -> bool:
    """Whether `url` carries a password (in its user part or its query)."""
    return hide_credentials(url) != url


def hide_credentials_in(value: T) -> T:
    """A JSON-like value (dicts, lists, strings) with every string passed through
    :func:`hide_credentials`: a record that is written or handed on (snapshot.json, XCom)."""
    masked: Any = value
    if isinstance(value, str):
        masked = hide_credentials(value)
    elif isinstance(value, dict):
        masked = {k: hide_credentials_in(v) for k, v in value.items()}
    elif isinstance(value, list | tuple):
        masked = type(value)(hide_credentials_in(v) for v in value)
    return masked
