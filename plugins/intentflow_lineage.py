"""Lineage of Intentflow's tasks for Airflow's OpenLineage integration.

A task names what it read and wrote (URIs: the day's source folder, the lake, the snapshot,
the base model, the artifact) through Airflow's hook-level lineage collector; the OpenLineage
provider sends them as the task's inputs and outputs, so a lineage backend (Marquez, ...) draws
source → lake → snapshot → model. Nothing is collected or sent unless the provider is
installed and a transport is configured ([openlineage] transport); see docs/operations.md.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path


def as_uri(location: str | Path) -> str:
    """A local path as a file:// URI; a URL as it is."""
    text = str(location)
    return text if "://" in text else Path(text).absolute().as_uri()


def record_lineage(
    task: object, inputs: Iterable[str | Path], outputs: Iterable[str | Path]
) -> None:
    """`inputs` and `outputs` (paths or URLs) of the running `task`, for OpenLineage."""
    from airflow.sdk.lineage import get_hook_lineage_collector

    collector = get_hook_lineage_collector()
    for where in inputs:
        collector.add_input_asset(context=task, uri=as_uri(where))
    for where in outputs:
        collector.add_output_asset(context=task, uri=as_uri(where))
