"""Keyed pseudonyms of personal identifiers: how a redacted lake still finds one person's rows.

The lake holds no e-mail, phone number or customer id, so erasure cannot search for them.
Ingest stores instead, per row, keyed hashes of the identifiers it removed (`subject_keys`),
and `intentflow erase --email x` computes the same key. Keyed (HMAC-SHA256), not a plain hash:
a phone number's plain hash is reversed by trying every number. The same key turns a
conversation id that is itself personal (an e-mail used as id) into a stable pseudonym, so
reruns and deduplication still agree.

The key is INTENTFLOW_PII_KEY (a secret shared by every worker); with a local data root and
no key set, one is generated once under `$INTENTFLOW_HOME/secrets/` (mode 0600).
"""

from __future__ import annotations

import hmac
import os
import re
import secrets
import unicodedata
from hashlib import sha256
from pathlib import Path

from ml.config import ConfigError, Settings, pii_key_env
from ml.storage import is_remote

# The identifier kinds a subject key is made of; `erase` takes one option per kind.
KINDS = ("email", "phone", "customer_id")
KEY_FILE = Path("secrets") / "pii.key"
_NOT_DIGIT = re.compile(r"\D")


def normal(kind: str, value: str) -> str:
    """The form two spellings of one identifier share: case-folded e-mails, a phone's digits."""
    value = unicodedata.normalize("NFKC", value).strip()
    if kind == "email":
        return value.casefold()
    if kind == "phone":
        # Digits only: "+44 20 7946 0958" and "+44-20-7946-0958" are one number. A national
        # spelling without the country code is another key: erase with every spelling known.
        return _NOT_DIGIT.sub("", value)
    if kind in KINDS:
        return value
    raise ValueError(f"unknown identifier kind {kind!r}; expected one of {', '.join(KINDS)}")


def subject_key(kind: str, value: str, key: bytes) -> str:
    """The keyed hash stored in a row's `subject_keys` for one identifier of one person."""
    message = f"{kind}:{normal(kind, value)}".encode()
    return hmac.digest(key, message, "sha256").hex()[:32]  # hmac.new's digest, faster


# Hex digits spelt as letters: a pseudonym holds no digit, so no PII detector (a phone is
# 9+ digits) ever finds one in it and the ingest gate never flags a pseudonymised id.
_LETTERS = str.maketrans("0123456789abcdef", "ghjkmnpqrstvwxyz")


def pseudonym(value: str, key: bytes) -> str:
    """A stable stand-in for a personal value kept as an id (e.g. a conversation id)."""
    digest = hmac.new(key, b"id:" + value.encode("utf-8"), sha256).hexdigest()[:24]
    return "anon-" + digest.translate(_LETTERS)


def pii_key(config: Settings) -> bytes:
    """INTENTFLOW_PII_KEY, else the key generated once under the local home.

    A remote data root means several workers write the lake: each would generate its own key
    and one person's rows would carry different keys, so the key must then be configured.
    """
    configured = pii_key_env()
    if configured:
        return configured.encode("utf-8")
    if is_remote(config.data_root):
        raise ConfigError(
            "INTENTFLOW_PII_KEY must be set when the data root is on object storage: every "
            "worker must pseudonymise identifiers with the same secret"
        )
    return _local_key(config.home / KEY_FILE)


def _local_key(path: Path) -> bytes:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.parent.chmod(0o700)
        try:  # O_EXCL: two first runs at once keep one key, not the last writer's
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_hex(32))
    return path.read_text().strip().encode("utf-8")
