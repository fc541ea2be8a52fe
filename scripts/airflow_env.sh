# Sourced by the demo and the standalone script when run outside make: the same settings.
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export INTENTFLOW_HOME=${INTENTFLOW_HOME:-$here/.intentflow}
export AIRFLOW_HOME=${AIRFLOW_HOME:-$INTENTFLOW_HOME/airflow}
export AIRFLOW__CORE__DAGS_FOLDER=${AIRFLOW__CORE__DAGS_FOLDER:-$here/dags}
export AIRFLOW__CORE__PLUGINS_FOLDER=${AIRFLOW__CORE__PLUGINS_FOLDER:-$here/plugins}
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__CORE__PARALLELISM=${AIRFLOW__CORE__PARALLELISM:-4}
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 GX_ANALYTICS_ENABLED=false HF_HUB_DISABLE_PROGRESS_BARS=1
export PATH=$here/.venv/bin:$PATH
