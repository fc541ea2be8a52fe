"""The registry page's FastAPI app, mounted by the plugin at /intentflow in the api-server.

Airflow does not guard a plugin's endpoints, so every route here depends on Airflow's own
`get_user` (JWT bearer header or the `_token` cookie the UI sets), and asks the auth manager
about the DAG that owns what it shows: a model's data needs read access to the model's retrain
DAG (ml.retrain.specs.retrain_dag_id), ingest health and validation reports read access to
the ingest DAG. Moving a model's champion needs permission to trigger that model's DAG, a
same-origin POST and a CSRF token derived from the session cookie (a cross-site page can send
the cookie but not read it, so it cannot compute the token); it goes through the CLI's own
functions (ml.registry.promotion), so the same checks apply.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from datetime import date
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qs, urlencode, urlparse

from airflow.api_fastapi.app import get_auth_manager
from airflow.api_fastapi.auth.managers.base_auth_manager import COOKIE_NAME_JWT_TOKEN
from airflow.api_fastapi.auth.managers.models.base_user import BaseUser
from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity, DagDetails
from airflow.api_fastapi.core_api.security import get_user
from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import (
    FileResponse,
    HTMLResponse,
    JSONResponse,
    RedirectResponse,
    Response,
)
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markdown_it import MarkdownIt
from markupsafe import Markup

from intentflow_ui import fmt
from intentflow_ui.compare import HEATMAP_SIZES, compare
from intentflow_ui.data import Page, build_page, confusion_png, model_card, validation_report
from intentflow_ui.production import Production, read_production, read_report
from ml.config import ConfigError, settings
from ml.registry.errors import RegistryError
from ml.registry.names import NAME_RE  # model names: one safe path segment
from ml.registry.promotion import promote_manually, rollback
from ml.registry.store import CHAMPION, Registry, VersionInfo
from ml.retrain.specs import metric_view, retrain_dag_id

# Whose permissions guard ingest health and the validation reports (dags/transcripts_ingest.py).
INGEST_DAG = "transcripts_ingest"
# Sent with every response; the validation report (HTML a pipeline wrote from customer data)
# also gets REPORT_HEADERS: a sandbox (no script, no same-origin access) and no caching.
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "SAMEORIGIN",  # the Airflow UI frames the page; no one else
    "Referrer-Policy": "same-origin",
    # The pages: scripts and styles from this app's own static files only (no inline script
    # or style, nothing from another origin: the UI works offline), forms post here only.
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
    "img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'self'; "
    "base-uri 'none'",
}
STATIC = Path(__file__).parent / "static"
STATIC_TYPES = {".js": "text/javascript", ".css": "text/css", ".md": "text/plain"}
REPORT_HEADERS = {
    "Content-Security-Policy": "sandbox; default-src 'none'; style-src 'unsafe-inline'; "
    "img-src data:; frame-ancestors 'self'",
    "Cache-Control": "no-store",
}
# A monitoring report (ml.monitoring.report, one HTML file per model and day) needs what a
# validation report does and no more: its own <style> block and style attributes (the bars'
# widths), no script, no image, no font, no link out. So the same sandbox; the browser test
# opens one and checks that nothing is blocked and its styles apply.
MONITORING_REPORT_HEADERS = REPORT_HEADERS
METRIC_RE = re.compile(r"^[A-Za-z0-9_:.\-]{1,100}$")
REASON_MIN, REASON_MAX = 3, 500

templates = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
)
templates.globals.update(value=fmt.value, delta=fmt.delta, champion=CHAMPION)
# Model cards: CommonMark with raw HTML off (a card is text a training run wrote), tables on.
markdown = MarkdownIt("commonmark", {"html": False}).enable("table")

app = FastAPI(title="Intentflow registry", docs_url=None, redoc_url=None, openapi_url=None)
User = Annotated[BaseUser, Depends(get_user)]


@app.middleware("http")
async def _security_headers(request: Request, call_next: Any) -> Response:
    response = await call_next(request)
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


@app.exception_handler(HTTPException)
async def _refusal(request: Request, exc: HTTPException) -> Response:
    """JSON for API clients; a short page for a browser (e.g. the UI frame after logout)."""
    if "text/html" not in request.headers.get("accept", ""):
        return JSONResponse({"detail": exc.detail}, exc.status_code, headers=exc.headers)
    login = '<a href="/auth/login" target="_top">Log in to Airflow</a>'
    body = templates.from_string(
        "<!doctype html><title>{{ code }}</title><p>{{ detail }}.</p>"
        "{% if code == 401 %}<p>{{ login }}</p>{% endif %}"
    ).render(code=exc.status_code, detail=exc.detail, login=Markup(login))  # noqa: S704 (a constant)
    return HTMLResponse(body, exc.status_code, headers=exc.headers)


def _registry() -> Registry:
    return Registry(settings().registry_url)


def model_dag(model: str) -> str:
    """The DAG whose permissions guard `model` (its retrain DAG)."""
    try:
        return retrain_dag_id(model, settings())
    except ConfigError as exc:  # no guess at whose model it is: refuse
        raise HTTPException(503, "the model configuration does not load") from exc


def can_read(user: BaseUser, dag_id: str) -> bool:
    return get_auth_manager().is_authorized_dag(
        method="GET", details=DagDetails(id=dag_id), user=user
    )


def can_promote(user: BaseUser, model: str) -> bool:
    """May trigger the model's retrain DAG: may move its champion."""
    return get_auth_manager().is_authorized_dag(
        method="POST",
        access_entity=DagAccessEntity.RUN,
        details=DagDetails(id=model_dag(model)),
        user=user,
    )


def _require_read(user: BaseUser, model: str) -> None:
    dag_id = model_dag(model)
    if not can_read(user, dag_id):
        raise HTTPException(403, f"{user.get_name()} may not read {dag_id}, which owns {model}")


def _readable_version(user: BaseUser, model: str, version: int) -> VersionInfo:
    """`model` v`version` from the registry, once `user` may read the model's DAG; 404 if none."""
    _require_read(user, _name(model, "model name"))
    try:
        with _registry() as registry:
            return registry.get(model, version=version)
    except RegistryError as exc:
        raise HTTPException(404, str(exc)) from exc


def csrf_token(request: Request) -> str:
    session = request.cookies.get(COOKIE_NAME_JWT_TOKEN, "")
    return hashlib.sha256(b"intentflow-csrf\0" + session.encode()).hexdigest()


def _check_csrf(request: Request, token: str) -> None:
    # A bearer header is never sent by a browser on its own: no CSRF risk there.
    if request.headers.get("authorization", "").lower().startswith("bearer "):
        return
    source = request.headers.get("origin") or request.headers.get("referer") or ""
    if urlparse(source).netloc != request.headers.get("host"):
        raise HTTPException(403, "cross-origin or origin-less POST refused")
    if not hmac.compare_digest(token, csrf_token(request)):
        raise HTTPException(403, "missing or wrong CSRF token: reload the page")


def _name(value: str | None, what: str) -> str:
    if value is None or not NAME_RE.match(value):
        raise HTTPException(400, f"invalid {what}")
    return value


def _version(value: str | None) -> int:
    if value is None or not value.isdigit() or not 0 < int(value) < 10**9:
        raise HTTPException(400, "version must be a positive integer")
    return int(value)


def render_page(
    data: Page,
    user: str,
    may_promote: bool,
    csrf: str,
    done: str | None,
    root: str,
    promote_dag: str | None = None,
    production: Production | None = None,
) -> str:
    return templates.get_template("page.html").render(
        p=data,
        prod=production,
        user=user,
        can_promote=may_promote,
        promote_dag=promote_dag,
        ingest_dag=INGEST_DAG,
        csrf=csrf,
        root=root,
        done=done,
        heatmap_sizes=HEATMAP_SIZES,
    )


@app.get("/", response_class=HTMLResponse)
def page(
    request: Request,
    user: User,
    model: Annotated[str | None, Query(max_length=200)] = None,
    version: Annotated[int | None, Query(gt=0, lt=10**9)] = None,
    metric: Annotated[str | None, Query(max_length=100)] = None,
    done: Annotated[str | None, Query(max_length=300)] = None,
    k: Annotated[int, Query(ge=0, le=1000)] = 15,
    day: Annotated[str | None, Query(max_length=10)] = None,
) -> HTMLResponse:
    if model is not None and not NAME_RE.match(model):
        raise HTTPException(400, "invalid model name")
    if metric is not None and not METRIC_RE.match(metric):
        raise HTTPException(400, "invalid metric name")
    if model is not None:
        _require_read(user, model)
    readable: dict[str, bool] = {}  # one question to the auth manager per model

    def may_read(name: str) -> bool:
        if name not in readable:
            readable[name] = can_read(user, model_dag(name))
        return readable[name]

    with _registry() as registry:
        data = build_page(
            registry,
            settings(),
            model,
            version,
            metric,
            readable=may_read,
            show_health=can_read(user, INGEST_DAG),
            heatmap_k=k,
        )
    # Only a model the viewer may read gets here (build_page keeps to `readable`).
    production = read_production(settings(), data.model, _day(day)) if data.model else None
    html = render_page(
        data,
        user.get_name(),
        data.model is not None and can_promote(user, data.model),
        csrf_token(request),
        done,
        request.scope.get("root_path", ""),
        model_dag(data.model) if data.model else None,
        production,
    )
    return HTMLResponse(html)


@app.get("/compare", response_class=HTMLResponse)
def compare_page(
    user: User,
    request: Request,
    model: Annotated[str, Query(max_length=200)],
    a: Annotated[int, Query(gt=0, lt=10**9)],
    b: Annotated[int, Query(gt=0, lt=10**9)],
    k: Annotated[int, Query(ge=0, le=1000)] = 15,
) -> HTMLResponse:
    """Version a (the baseline) and version b of one model side by side."""
    _require_read(user, _name(model, "model name"))
    try:
        with _registry() as registry:
            first, second = registry.get(model, version=a), registry.get(model, version=b)
            versions = [v.version for v in registry.list_versions(model)]
    except RegistryError as exc:
        raise HTTPException(404, str(exc)) from exc
    view = metric_view(model, second.task_type, settings())
    html = templates.get_template("compare.html").render(
        c=compare(first, second, view, k),
        model=model,
        versions=versions,
        user=user.get_name(),
        root=request.scope.get("root_path", ""),
        heatmap_sizes=HEATMAP_SIZES,
    )
    return HTMLResponse(html)


@app.get("/card/{version}", response_class=HTMLResponse)
def card(
    user: User, request: Request, version: int, model: Annotated[str, Query(max_length=200)]
) -> HTMLResponse:
    """The version's model card (its artifact's README.md) rendered; raw HTML in it is shown
    as text, never interpreted."""
    info = _readable_version(user, model, version)
    path = model_card(info)  # from the registry's artifact URI, never from the request
    if path is None:
        raise HTTPException(404, f"{model}:{version} has no model card on this machine")
    body = markdown.render(path.read_text(encoding="utf-8", errors="replace"))
    html = templates.get_template("card.html").render(
        info=info,
        card=Markup(body),  # noqa: S704 (markdown-it escapes text; raw HTML is off)
        user=user.get_name(),
        root=request.scope.get("root_path", ""),
    )
    return HTMLResponse(html)


@app.get("/static/{path:path}")
def static(user: User, path: str) -> FileResponse:
    """The page's own stylesheet and scripts (Chart.js vendored: static/vendor/README.md)."""
    found = STATIC / path
    try:
        real = found.resolve(strict=True)
    except (OSError, RuntimeError) as exc:
        raise HTTPException(404, "no such file") from exc
    kind = STATIC_TYPES.get(real.suffix)
    if not real.is_relative_to(STATIC.resolve()) or not real.is_file() or kind is None:
        raise HTTPException(404, "no such file")
    return FileResponse(real, media_type=kind, headers={"Cache-Control": "private, max-age=300"})


@app.get("/api/models")
def models(user: User) -> dict[str, Any]:
    """Models and versions with their task type, aliases and test metrics, as JSON: the
    models whose retrain DAG the user may read."""
    with _registry() as registry:
        everything = registry.list_versions()
    readable = {m for m in {v.model for v in everything} if can_read(user, model_dag(m))}
    versions = [v for v in everything if v.model in readable]
    return {
        "models": sorted(readable),
        "versions": [
            {
                "model": v.model,
                "version": v.version,
                "task": v.task_type,
                "aliases": list(v.aliases),
                "test": {k: x for k, x in v.metrics.get("test", {}).items() if k != "per_class"},
            }
            for v in versions
        ],
    }


@app.get("/api/audit/{model:path}")
def audit(user: User, model: str) -> list[dict[str, Any]]:
    _require_read(user, _name(model, "model name"))
    try:
        with _registry() as registry:
            entries = registry.audit(model)
    except RegistryError as exc:
        raise HTTPException(404, str(exc)) from exc
    return [{**e, "at": e["at"].isoformat()} for e in entries]


@app.get("/confusion/{version}.png")
def confusion(
    user: User, version: int, model: Annotated[str, Query(max_length=200)]
) -> FileResponse:
    # The path comes from the registry's lineage, never from the request.
    info = _readable_version(user, model, version)
    path = confusion_png(info)
    if path is None:
        raise HTTPException(404, f"{model}:{version} has no confusion-matrix picture")
    return FileResponse(path, media_type="image/png")


@app.get("/validation/{day}", response_class=HTMLResponse)
def validation(user: User, day: str) -> FileResponse:
    """The day's validation report: only a file inside reports/dt=DAY (see
    validation_report), sandboxed, for users who may read the ingest DAG."""
    if not can_read(user, INGEST_DAG):
        raise HTTPException(403, f"{user.get_name()} may not read {INGEST_DAG}")
    try:
        parsed = date.fromisoformat(day)
    except ValueError as exc:
        raise HTTPException(400, "day must be YYYY-MM-DD") from exc
    path = validation_report(settings(), parsed)
    if path is None:
        raise HTTPException(404, f"no validation report for {day}")
    return FileResponse(path, media_type="text/html", headers=REPORT_HEADERS)


@app.get("/monitoring/{day}", response_class=HTMLResponse)
def monitoring(user: User, day: str, model: Annotated[str, Query(max_length=200)]) -> Response:
    """The model's monitoring report of `day` (ml.monitoring writes it to
    reports/monitoring/MODEL/DAY.html, local or on object storage), for users who may read the
    model's retrain DAG, as the page; locally only a file inside that folder (see
    monitoring_report), sandboxed."""
    _require_read(user, _name(model, "model name"))
    parsed = date.fromisoformat(_day(day) or "")
    body = read_report(settings(), model, parsed)
    if body is None:
        raise HTTPException(404, f"no monitoring report of {model} for {day}")
    return Response(body, media_type="text/html", headers=MONITORING_REPORT_HEADERS)


def _day(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value).isoformat()
    except ValueError as exc:
        raise HTTPException(400, "day must be YYYY-MM-DD") from exc


async def _form(request: Request) -> dict[str, str]:
    body = (await request.body())[:10_000].decode("utf-8", "replace")
    return {k: v[0] for k, v in parse_qs(body, keep_blank_values=True).items()}


@app.post("/champion")
async def move_champion(request: Request, user: User) -> RedirectResponse:
    """Promote (a newer version) or roll back (an older one) `champion`, with a reason."""
    form = await _form(request)
    _check_csrf(request, form.get("csrf_token", ""))
    model = _name(form.get("model"), "model name")
    if not await run_in_threadpool(can_promote, user, model):
        raise HTTPException(403, f"{user.get_name()} may not trigger {model_dag(model)}")
    version = _version(form.get("version"))
    reason = " ".join(form.get("reason", "").split())
    if not REASON_MIN <= len(reason) <= REASON_MAX:
        raise HTTPException(400, f"a reason of {REASON_MIN}-{REASON_MAX} characters is required")
    try:
        action = await run_in_threadpool(_move_champion, model, version, user.get_name(), reason)
    except RegistryError as exc:
        raise HTTPException(400, str(exc)) from exc
    query = urlencode({"model": model, "version": version, "done": f"{action}: v{version}"})
    return RedirectResponse(f"{request.scope.get('root_path', '')}/?{query}", status_code=303)


def _move_champion(model: str, version: int, actor: str, reason: str) -> str:
    """What `intentflow registry promote MODEL:VERSION` (a newer version) or `rollback MODEL
    --to VERSION` (an older one) does, with its checks (the artifact is there and whole);
    returns which it was."""
    details = {"via": "airflow-ui"}
    with _registry() as registry:
        try:
            current = registry.get(model, alias=CHAMPION).version
        except RegistryError:
            current = None
        if current is not None and version < current:
            rollback(registry, model, actor=actor, reason=reason, version=version, details=details)
            return "rollback"
        promote_manually(
            registry, f"{model}:{version}", actor=actor, reason=reason, details=details
        )
        return "promote"
