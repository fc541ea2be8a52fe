"""The registry page in the Airflow UI: a FastAPI app the `registry_ui` plugin mounts.

Kept out of Airflow's plugin scan by plugins/.airflowignore (the scanner would import each
module here as a top-level module); the plugins folder is on sys.path, so it imports as a package.
"""
