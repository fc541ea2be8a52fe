#!/usr/bin/env bash
# The main job end to end on the embedded default: SQLite metadata, LocalExecutor, local
# folders, CPU. Generates DEMO_DAYS days of synthetic transcripts, runs the real
# transcripts_ingest DAG for each day and then intent_retrain, and prints a summary.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/airflow_env.sh"
days=${DEMO_DAYS:-7}
per_day=${DEMO_PER_DAY:-400}
logs=$INTENTFLOW_HOME/demo-logs
mkdir -p "$logs"
t0=$(date +%s)
step() { printf '\n== %s (%ss)\n' "$1" $(( $(date +%s) - t0 )); }

step "generate $days days x $per_day transcripts into $INTENTFLOW_HOME/raw"
first=$(date -u -d "$days days ago" +%F)
intentflow generate --days "$days" --per-day "$per_day" --start "$first" --out "$INTENTFLOW_HOME/raw"

step "airflow db migrate ($AIRFLOW_HOME)"
airflow db migrate >"$logs/db-migrate.log" 2>&1
# One training per GPU (or per CPU machine): fine_tune runs in this pool.
airflow pools set gpu 1 "fine-tuning slots: one per GPU" >/dev/null 2>&1

for i in $(seq 0 $((days - 1))); do
  day=$(date -u -d "$first + $i days" +%F)
  step "airflow dags test transcripts_ingest $day"
  if ! airflow dags test transcripts_ingest "$day" >"$logs/ingest-$day.log" 2>&1; then
    echo "ingest $day failed; log: $logs/ingest-$day.log" >&2
    tail -30 "$logs/ingest-$day.log" >&2
    exit 1
  fi
  grep -o "published [^[]*" "$logs/ingest-$day.log" | tail -1 || true
done

step "airflow dags test intent_retrain (window: $days days)"
end=$(date -u -d yesterday +%F)
if ! airflow dags test intent_retrain -c "{\"window_days\": $days, \"end_date\": \"$end\"}" \
    >"$logs/retrain.log" 2>&1; then
  echo "retrain failed; log: $logs/retrain.log" >&2
  tail -40 "$logs/retrain.log" >&2
  exit 1
fi
grep -oE "(snapshot [0-9a-f]+:|fine-tuning |epoch [0-9]+/[0-9]+:|[a-z_]+:[0-9]+ → ).*" "$logs/retrain.log" \
  | sed -E 's/ +\[ml\.[a-z_]+\].*$//; s/fine-tuning .*\/model on/fine-tuning on/' || true

step "summary"
intentflow report
echo
echo "Task logs: $logs. Open the Airflow UI on this state: make airflow"
printf 'demo wall time: %ss\n' $(( $(date +%s) - t0 ))
