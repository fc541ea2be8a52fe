"""`intentflow erase`: one person's rows out of the lake, quarantine and snapshots (ml.erasure).

Prints what was removed where and which model versions saw the data; never the identifiers.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ml.cli.output import emit, fail
from ml.cli.registry import _default_actor
from ml.config import settings

if TYPE_CHECKING:
    from ml.erasure import ErasureResult


def erase_command(
    email: Annotated[
        list[str] | None, typer.Option("--email", help="An e-mail address of the person.")
    ] = None,
    phone: Annotated[
        list[str] | None,
        typer.Option("--phone", help="A phone number (every spelling: with and without +44...)."),
    ] = None,
    customer_id: Annotated[
        list[str] | None, typer.Option("--customer-id", help="A customer id of the person.")
    ] = None,
    identifiers_file: Annotated[
        str | None,
        typer.Option(
            "--identifiers-file",
            help="A file of KIND=VALUE lines (email, phone, customer_id), '-' for stdin: keeps "
            "the identifiers out of the process list and the shell history.",
        ),
    ] = None,
    reason: Annotated[
        str | None,
        typer.Option(help="Why: a ticket or case number (kept in the audit; no identifiers)."),
    ] = None,
    actor: Annotated[
        str | None, typer.Option(help="Who erases (kept in the audit); default: $USER.")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Find and list only: change and record nothing.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Erase a person's rows from the lake, quarantine and training snapshots (each option may
    be repeated); list the model versions that saw them. See docs/operations.md."""
    from ml.config import ConfigError
    from ml.erasure import ErasureError, erase
    from ml.registry.errors import RegistryError

    identifiers = {"email": email or [], "phone": phone or [], "customer_id": customer_id or []}
    try:
        if identifiers_file is not None:
            for kind, value in _read_identifiers(identifiers_file):
                identifiers.setdefault(kind, []).append(value)
        result = erase(settings(), identifiers, actor or _default_actor(), reason, dry_run=dry_run)
    except (ErasureError, ConfigError, RegistryError, OSError) as exc:
        fail(str(exc))
    emit(result.as_dict(), as_json, _text(result))


def _read_identifiers(source: str) -> list[tuple[str, str]]:
    """KIND=VALUE lines; blank lines and `#` comments skipped. Errors give line numbers only."""
    text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    pairs = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        kind, sep, value = line.partition("=")
        if not sep:
            from ml.erasure import ErasureError

            raise ErasureError(f"{source}, line {number}: expected KIND=VALUE")
        pairs.append((kind.strip().replace("-", "_"), value.strip()))
    return pairs


def _text(result: ErasureResult) -> str:
    done = (
        "dry run: nothing changed, nothing recorded"
        if result.dry_run
        else f"erasure {result.erasure_id} done"
    )
    given = ", ".join(f"{n} {kind}" for kind, n in result.identifiers.items())
    lines = [done, f"  identifiers  {given}"]
    for store, rows in result.removed.items():
        where = ", ".join(result.days.get(store, []))
        if store == "snapshots":
            where = ", ".join(h[:16] for h in result.snapshots)
        lines.append(f"  {store:<12} {rows} row(s)" + (f" in {where}" if where else ""))
    models = ", ".join(result.models) or "none"
    lines.append(f"  models that saw the data: {models}")
    if result.models:
        lines.append("    (not retrained automatically: docs/operations.md, Erase a person's data)")
    lines += [f"  note: {note}" for note in result.notes]
    return "\n".join(lines)
