"""Airflow's SQLite metadata connection for the real-scheduler tests (backfill).

The scheduler and `airflow backfill create` write the same SQLite file; sqlite3's default
5 s busy timeout made the CLI fail with "database is locked" under load. Airflow reads this
through AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS=sqlite_connect_args.CONNECT_ARGS.
"""

CONNECT_ARGS = {"timeout": 60}
