"""Drift monitoring of the served champions: each day's predictions (the lake's `predictions`
table) against the champion's training snapshot, as figures (registry table
`monitoring_days`), checks with configured thresholds, and an HTML report (docs/monitoring.md).
No Airflow here: dags/model_monitoring.py and `intentflow monitor` call ml.monitoring.run."""
