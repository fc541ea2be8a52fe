# The Airflow image with Intentflow installed. TORCH_INDEX picks the torch build: the CPU
# wheels by default, a CUDA index for the gpu worker (see docker-compose.yaml).
FROM apache/airflow:3.3.2-python3.11
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
USER root
# psql and curl: airflow-init creates the registry database; health checks call curl.
RUN apt-get update && apt-get install -y --no-install-recommends postgresql-client curl \
    && rm -rf /var/lib/apt/lists/*
USER airflow
COPY --chown=airflow:root pyproject.toml README.md /opt/intentflow/
COPY --chown=airflow:root ml /opt/intentflow/ml
# torch first, from TORCH_INDEX; the project's torch pin (a version, no local tag) accepts the
# CUDA build, so the second install keeps it. apache-airflow pinned to the image's version, as
# Airflow's docs ask, so pip never up- or downgrades Airflow itself. The [s3] extra (s3fs) lets
# INTENTFLOW_DATA_URL / INTENTFLOW_ARTIFACTS_URL / INTENTFLOW_SOURCE name s3:// buckets.
RUN pip install --no-cache-dir torch==2.13.0 --index-url "${TORCH_INDEX}" \
    && pip install --no-cache-dir "apache-airflow==${AIRFLOW_VERSION}" "/opt/intentflow[s3]"
COPY --chown=airflow:root dags /opt/intentflow/dags
COPY --chown=airflow:root plugins /opt/intentflow/plugins
