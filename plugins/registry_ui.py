"""Airflow plugin: the Intentflow model registry as a page in the Airflow UI.

Mounts the FastAPI app from `intentflow_ui` at /intentflow and adds it to the navigation
(shown inside the UI at /plugin/model-registry). The app enforces authentication itself.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin
from intentflow_ui.app import app

URL_PREFIX = "/intentflow"


class IntentflowRegistryPlugin(AirflowPlugin):
    name = "intentflow_registry"
    fastapi_apps = [{"app": app, "url_prefix": URL_PREFIX, "name": "Intentflow registry"}]
    external_views = [
        {
            "name": "Model registry",
            "href": f"{URL_PREFIX}/",
            "destination": "nav",
            "url_route": "model-registry",
        }
    ]
