-- Intentflow model registry schema (sqlite), idempotent.
-- Generated from ml/registry.py: python -m ml.registry sqlite
-- Registry() creates the same tables and views itself; this file is for operators.
-- metrics.class_label is NULL for scalar metrics; uniqueness uses COALESCE(.., '').

CREATE TABLE IF NOT EXISTS registered_models (
    id INTEGER NOT NULL,
    name VARCHAR(200) NOT NULL,
    task_type VARCHAR(50) DEFAULT 'intent' NOT NULL,
    description TEXT,
    created_at DATETIME NOT NULL,
    CONSTRAINT pk_registered_models PRIMARY KEY (id),
    CONSTRAINT uq_registered_models_name UNIQUE (name)
);

CREATE TABLE IF NOT EXISTS model_versions (
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
    CONSTRAINT pk_model_versions PRIMARY KEY (id),
    CONSTRAINT uq_model_versions_model_id_version UNIQUE (model_id, version),
    CONSTRAINT fk_model_versions_model_id_registered_models FOREIGN KEY(model_id) REFERENCES registered_models (id)
);

CREATE TABLE IF NOT EXISTS aliases (
    id INTEGER NOT NULL,
    model_id INTEGER NOT NULL,
    alias VARCHAR(100) NOT NULL,
    version_id INTEGER NOT NULL,
    updated_at DATETIME NOT NULL,
    CONSTRAINT pk_aliases PRIMARY KEY (id),
    CONSTRAINT uq_aliases_model_id_alias UNIQUE (model_id, alias),
    CONSTRAINT fk_aliases_model_id_registered_models FOREIGN KEY(model_id) REFERENCES registered_models (id),
    CONSTRAINT fk_aliases_version_id_model_versions FOREIGN KEY(version_id) REFERENCES model_versions (id)
);

CREATE TABLE IF NOT EXISTS audit_log (
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

CREATE INDEX IF NOT EXISTS ix_audit_log_model_id ON audit_log (model_id);

CREATE TABLE IF NOT EXISTS metrics (
    id INTEGER NOT NULL,
    version_id INTEGER NOT NULL,
    split VARCHAR(100) NOT NULL,
    name VARCHAR(100) NOT NULL,
    class_label VARCHAR(200),
    value DOUBLE NOT NULL,
    CONSTRAINT pk_metrics PRIMARY KEY (id),
    CONSTRAINT fk_metrics_version_id_model_versions FOREIGN KEY(version_id) REFERENCES model_versions (id)
);

CREATE UNIQUE INDEX IF NOT EXISTS uq_metrics_version_id_split_name_class_label ON metrics (version_id, split, name, coalesce(class_label, ''));

CREATE VIEW IF NOT EXISTS current_champions AS
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

CREATE VIEW IF NOT EXISTS metric_history AS
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
