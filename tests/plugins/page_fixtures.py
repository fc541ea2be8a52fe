"""Fixtures of the registry page's tests: the plugin's package importable, and its app in
process as a signed-in admin (no api-server)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from fastapi.testclient import TestClient
    from pipeline_state import PipelineState
    from production_state import Production


@pytest.fixture
def plugins_path(monkeypatch: pytest.MonkeyPatch) -> None:
    from conftest import REPO

    monkeypatch.syspath_prepend(str(REPO / "plugins"))


class AllowEveryDag:
    """A stub of Airflow's auth manager interface: only `is_authorized_dag`, the one method
    the app calls, allowing everything (tests/plugins/test_registry_ui.py checks real permissions on a server)."""

    def is_authorized_dag(self, **_: object) -> bool:
        return True


@pytest.fixture
def client(plugins_path: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    """The app in process as a signed-in admin: Airflow's `get_user` overridden, its auth
    manager stubbed (AllowEveryDag)."""
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from airflow.api_fastapi.core_api.security import get_user
    from fastapi.testclient import TestClient
    from intentflow_ui import app as ui

    ui.app.dependency_overrides[get_user] = lambda: SimpleAuthManagerUser(
        username="tester", role="admin"
    )
    monkeypatch.setattr(ui, "get_auth_manager", AllowEveryDag)
    try:
        yield TestClient(ui.app)
    finally:
        ui.app.dependency_overrides.pop(get_user)


@pytest.fixture(scope="session")
def production(pipeline_state: PipelineState) -> Production:
    """A week of the intent champion in production (tests/production_state.py), added to the
    pipeline state's home once per session."""
    from production_state import build

    return build(pipeline_state)
