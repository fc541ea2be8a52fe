"""What the Airflow Assets of Intentflow name: the lake's transcripts and each model's versions
and champion. Strings only (the DAGs build the Asset objects; ml/ knows nothing of Airflow).

`transcripts` is the lake's URL (file:// for a local folder); each publish's event carries
the day, its rows and its content hash. `model://NAME/versions` gets an event per registered
version, `model://NAME/champion` one per promotion: serving and monitoring DAGs schedule on
them. `predictions` is the prediction log's table (ml.serving.prediction_log): an event whose
extra names a `day` asks the monitoring DAG to monitor that day; `model://NAME/drift` gets an
event when monitoring found the model's traffic drifted (INTENTFLOW_DRIFT_TRIGGERS_RETRAIN).
"""

from __future__ import annotations

from pathlib import Path

from ml.config import Settings, settings
from ml.storage import is_remote

TRANSCRIPTS = "transcripts"
PREDICTIONS = "predictions"


def transcripts_uri(cfg: Settings | None = None) -> str:
    """The lake's location as a URI."""
    lake = (cfg or settings()).lake
    return str(lake) if is_remote(lake) else Path(lake).absolute().as_uri()


def predictions_uri(cfg: Settings | None = None) -> str:
    """The prediction log's table as a URI."""
    table = (cfg or settings()).predictions
    return str(table) if is_remote(table) else Path(table).absolute().as_uri()


def model_asset(model: str, what: str) -> tuple[str, str]:
    """(name, uri) of a model's Asset: `what` is "versions" (register), "champion" (promote) or
    "drift" (monitoring)."""
    return f"{model}_{what}", f"model://{model}/{what}"
