-- Intentflow model registry schema (sqlite) at revision 0004.
-- Generated from the migrations in ml/registry/migrations: python -m ml.registry.migrate sqlite
-- Apply to an empty database, or let `intentflow registry upgrade` do it.
-- metrics.class_label is NULL for scalar metrics; uniqueness uses COALESCE(.., '').
CREATE TABLE alembic_version (
    version_num VARCHAR(32) NOT NULL,
    CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num)
);

-- Running upgrade  -> 0001

CREATE TABLE registered_models (
    id INTEGER NOT NULL,
    name VARCHAR(200) NOT NULL,
    task_type VARCHAR(50) DEFAULT 'intent' NOT NULL,
    description TEXT,
    created_at DATETIME NOT NULL,
    CONSTRAINT pk_registered_models PRIMARY KEY (id),
    CONSTRAINT uq_registered_models_name UNIQUE (name)
);

CREATE TABLE model_versions (
    id INTEGER NOT NULL,
    model_id INTEGER NOT NULL,
    version INTEGER NOT NULL,
    artifact_uri TEXT NOT NULL,
    artifact_sha256 VARCHAR(64) NOT NULL,
    base_model TEXT NOT NULL,
    data_snapshot_hash VARCHAR(128) NOT NULL,
    params JSON NOT NULL,
    lineage JSON NOT NULL,
    created_at DATETIME NOT NULL,
    created_by VARCHAR(200) NOT NULL,
    base_model_sha256 VARCHAR(64),
    dag_id VARCHAR(250),
    run_id VARCHAR(250),
    logical_date DATETIME,
    code_version VARCHAR(100),
    CONSTRAINT pk_model_versions PRIMARY KEY (id),
    CONSTRAINT fk_model_versions_model_id_registered_models FOREIGN KEY(model_id) REFERENCES registered_models (id),
    CONSTRAINT uq_model_versions_model_id_version UNIQUE (model_id, version)
);

CREATE INDEX ix_model_versions_data_snapshot_hash ON model_versions (data_snapshot_hash);

CREATE TABLE aliases (
    id INTEGER NOT NULL,
    model_id INTEGER NOT NULL,
    alias VARCHAR(100) NOT NULL,
    version_id INTEGER NOT NULL,
    updated_at DATETIME NOT NULL,
    CONSTRAINT pk_aliases PRIMARY KEY (id),
    CONSTRAINT fk_aliases_model_id_registered_models FOREIGN KEY(model_id) REFERENCES registered_models (id),
    CONSTRAINT fk_aliases_version_id_model_versions FOREIGN KEY(version_id) REFERENCES model_versions (id),
    CONSTRAINT uq_aliases_model_id_alias UNIQUE (model_id, alias)
);

CREATE TABLE audit_log (
    id INTEGER NOT NULL,
    model_id INTEGER NOT NULL,
    version_id INTEGER,
    action VARCHAR(50) NOT NULL,
    alias VARCHAR(100),
    actor VARCHAR(200) NOT NULL,
    reason TEXT,
    details JSON NOT NULL,
    at DATETIME NOT NULL,
    CONSTRAINT pk_audit_log PRIMARY KEY (id),
    CONSTRAINT fk_audit_log_model_id_registered_models FOREIGN KEY(model_id) REFERENCES registered_models (id),
    CONSTRAINT fk_audit_log_version_id_model_versions FOREIGN KEY(version_id) REFERENCES model_versions (id)
);

CREATE INDEX ix_audit_log_model_id ON audit_log (model_id);

CREATE TABLE metrics (
    id INTEGER NOT NULL,
    version_id INTEGER NOT NULL,
    split VARCHAR(100) NOT NULL,
    name VARCHAR(100) NOT NULL,
    class_label VARCHAR(200),
    value DOUBLE NOT NULL,
    CONSTRAINT pk_metrics PRIMARY KEY (id),
    CONSTRAINT fk_metrics_version_id_model_versions FOREIGN KEY(version_id) REFERENCES model_versions (id)
);

CREATE UNIQUE INDEX uq_metrics_version_id_split_name_class_label ON metrics (version_id, split, name, coalesce(class_label, ''));

CREATE VIEW current_champions AS
SELECT m.name AS model,
       v.version AS version,
       acc.value AS accuracy,
       f1.value AS macro_f1,
       v.created_at AS created_at,
       a.updated_at AS promoted_at
  FROM aliases a
  JOIN registered_models m ON m.id = a.model_id
  JOIN model_versions v ON v.id = a.version_id
  LEFT JOIN metrics acc ON acc.version_id = v.id AND acc.split = 'test'
   AND acc.name = 'accuracy' AND acc.class_label IS NULL
  LEFT JOIN metrics f1 ON f1.version_id = v.id AND f1.split = 'test'
   AND f1.name = 'macro_f1' AND f1.class_label IS NULL
 WHERE a.alias = 'champion';

CREATE VIEW metric_history AS
SELECT m.name AS model,
       v.version AS version,
       x.split AS split,
       x.name AS name,
       x.value AS value,
       v.created_at AS created_at
  FROM metrics x
  JOIN model_versions v ON v.id = x.version_id
  JOIN registered_models m ON m.id = v.model_id
 WHERE x.class_label IS NULL;

CREATE VIEW alias_lineage AS
SELECT m.name AS model,
       a.alias AS alias,
       v.version AS version,
       v.data_snapshot_hash AS data_snapshot_hash,
       v.dag_id AS dag_id,
       v.run_id AS run_id,
       v.logical_date AS logical_date,
       v.base_model AS base_model,
       v.base_model_sha256 AS base_model_sha256,
       v.code_version AS code_version,
       v.artifact_uri AS artifact_uri,
       v.artifact_sha256 AS artifact_sha256,
       a.updated_at AS alias_since
  FROM aliases a
  JOIN registered_models m ON m.id = a.model_id
  JOIN model_versions v ON v.id = a.version_id;

INSERT INTO alembic_version (version_num) VALUES ('0001') RETURNING version_num;

-- Running upgrade 0001 -> 0002

UPDATE model_versions
   SET run_id = substr(run_id, 1, 200) || '#retry-v' || version
 WHERE run_id IS NOT NULL
   AND EXISTS (SELECT 1
                 FROM model_versions AS earlier
                WHERE earlier.model_id = model_versions.model_id
                  AND earlier.dag_id = model_versions.dag_id
                  AND earlier.run_id = model_versions.run_id
                  AND earlier.version < model_versions.version);

CREATE UNIQUE INDEX uq_model_versions_model_id_dag_id_run_id ON model_versions (model_id, dag_id, run_id) WHERE run_id IS NOT NULL;

UPDATE alembic_version SET version_num='0002' WHERE alembic_version.version_num = '0001';

-- Running upgrade 0002 -> 0003

CREATE TABLE erasures (
    id INTEGER NOT NULL,
    started_at DATETIME NOT NULL,
    finished_at DATETIME,
    status VARCHAR(20) NOT NULL,
    actor VARCHAR(200) NOT NULL,
    reason TEXT,
    identifiers JSON NOT NULL,
    removed JSON NOT NULL,
    days JSON NOT NULL,
    snapshots JSON NOT NULL,
    models JSON NOT NULL,
    notes JSON NOT NULL,
    CONSTRAINT pk_erasures PRIMARY KEY (id)
);

UPDATE alembic_version SET version_num='0003' WHERE alembic_version.version_num = '0002';

-- Running upgrade 0003 -> 0004

CREATE TABLE monitoring_days (
    id INTEGER NOT NULL,
    model VARCHAR(200) NOT NULL,
    day DATE NOT NULL,
    version INTEGER NOT NULL,
    reference_version INTEGER NOT NULL,
    predictions INTEGER NOT NULL,
    status VARCHAR(20) NOT NULL,
    figures JSON NOT NULL,
    report_url TEXT,
    computed_at DATETIME NOT NULL,
    CONSTRAINT pk_monitoring_days PRIMARY KEY (id),
    CONSTRAINT fk_monitoring_days_model_registered_models FOREIGN KEY(model) REFERENCES registered_models (name),
    CONSTRAINT uq_monitoring_days_model_day UNIQUE (model, day)
);

UPDATE alembic_version SET version_num='0004' WHERE alembic_version.version_num = '0003';
