#!/usr/bin/env bash
# The Airflow UI on the demo's state (standalone: api-server, scheduler, dag-processor,
# triggerer in one process tree). The admin password is printed at start and kept in
# $AIRFLOW_HOME/simple_auth_manager_passwords.json.generated.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/airflow_env.sh"
airflow db migrate >/dev/null
airflow pools set gpu 1 "fine-tuning slots: one per GPU" >/dev/null 2>&1
echo "Airflow UI: http://localhost:${AIRFLOW__API__PORT:-8080} (user admin; password in $AIRFLOW_HOME/simple_auth_manager_passwords.json.generated)"
exec airflow standalone
