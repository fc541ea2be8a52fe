"""`intentflow serve`: the champion of every configured model behind an HTTP API.

One concern a module:

- models: a registered version loaded through the registry, the sha256-checked artifact and its
  task's `load` (ml.tasks.contract), on the chosen runtime (runtime);
- runtime: torch threads, and the optimised CPU form an artifact carries (ONNX Runtime, int8);
- champions: one slot per served model, polled in the registry and swapped when the champion
  alias moves (hot swap), with the registry's health;
- batching: concurrent requests' texts run together, off the event loop;
- responses: a task's prediction as the API answers it, and as the prediction log keeps it;
- prediction_log: every prediction, redacted, buffered and appended to the lake;
- metrics: Prometheus counters and histograms;
- requests: auth (bearer tokens), body parsing and limits;
- app: the FastAPI application (routes, startup, shutdown); server: uvicorn.

Nothing here imports Airflow; torch, FastAPI and uvicorn load only when the service starts.
"""
