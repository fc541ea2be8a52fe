"""Intentflow's library: ingestion, datasets, training, evaluation, registry (no Airflow)."""

from ml.threads import apply_wait_policy

# Before any ml module imports torch: OpenMP reads its wait policy once, at load (ml.threads).
apply_wait_policy()
