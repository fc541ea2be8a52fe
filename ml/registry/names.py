"""Model and alias names: each one safe path segment.

A model's name becomes a folder (`<artifacts>/<name>/...`, `<snapshots>/<name>/...`, the
cache's `runs/<name>/...`) and part of refs such as `intent@champion`, so a name is checked
here, once, wherever it enters: the registry's writes and refs, the models configuration and
INTENTFLOW_MODEL_NAME, the CLI's options and the registry page's query. `../x`, `a/b`, `..`,
'', and names holding NUL, backslashes, spaces or line breaks never reach a path.

Standard library only: ml.config checks INTENTFLOW_MODEL_NAME with it at DAG parse time.
"""

from __future__ import annotations

import re

from ml.registry.errors import RegistryError

# A letter or digit, then letters, digits, '_', '.', '-': never a separator, never '.'/'..'
# (a leading dot is refused), never empty. 200: the registry's name column.
NAME_RE = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9_.\-]{0,199}\Z")


class InvalidNameError(RegistryError, ValueError):
    """A model or alias name that is not one safe path segment."""


def check_name(kind: str, name: object) -> str:
    """`name` if it is a valid `kind` ("model", "alias") name; else InvalidNameError."""
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise InvalidNameError(
            f"invalid {kind} name {name!r}: use letters, digits, '_', '.' and '-' (at most 200), "
            "starting with a letter or digit"
        )
    return name
