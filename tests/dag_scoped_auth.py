"""A test auth manager: Airflow's SimpleAuthManager, plus users allowed on some DAGs only.

The simple auth manager grants by role alone (every viewer reads every DAG); production auth
managers (FAB, Keycloak...) grant per DAG. To test that the registry page asks about the right
DAG, tests/ui_server.py runs the api-server with this subclass: users named in
INTENTFLOW_TEST_DAG_SCOPES (JSON: user -> DAG ids) get what their role allows on those DAGs
and nothing on any other (nor on "all DAGs"); every other user is the simple auth manager's.
"""

from __future__ import annotations

import json
import os
from typing import Any

from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager

SCOPES_ENV = "INTENTFLOW_TEST_DAG_SCOPES"


class DagScopedAuthManager(SimpleAuthManager):
    def is_authorized_dag(
        self, *, method: Any, user: Any, access_entity: Any = None, details: Any = None
    ) -> bool:
        scopes = json.loads(os.environ.get(SCOPES_ENV, "{}"))
        allowed = scopes.get(user.get_name())
        if allowed is not None and (details is None or details.id not in allowed):
            return False
        return super().is_authorized_dag(
            method=method, user=user, access_entity=access_entity, details=details
        )
