"""The registry page's FastAPI app, mounted by the plugin at /intentflow in the api-server.

Airflow does not guard a plugin's endpoints, so every route here depends on Airflow's own
`get_user` (JWT bearer header or the `_token` cookie the UI sets). Moving the champion also
needs the auth manager's permission to trigger the retrain DAG, a same-origin POST and a
CSRF token derived from the session cookie (a cross-site page can send the cookie but not
read it, so it cannot compute the token).
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
from fastapi.responses import (
    FileResponse,
    HTMLResponse,
    JSONResponse,
    RedirectResponse,
    Response,
)
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup

from intentflow_ui.chart import metric_chart
from intentflow_ui.data import Page, build_page, confusion_png, validation_report
from ml.config import settings
from ml.registry.errors import RegistryError
from ml.registry.names import NAME_RE  # model names: one safe path segment
from ml.registry.store import CHAMPION, Registry

# Who may move the champion: whoever may trigger the DAG that publishes models.
PERMISSION_DAG = "intent_retrain"
METRIC_RE = re.compile(r"^[A-Za-z0-9_:.\-]{1,100}$")
REASON_MIN, REASON_MAX = 3, 500

templates = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
)

app = FastAPI(title="Intentflow registry", docs_url=None, redoc_url=None, openapi_url=None)
User = Annotated[BaseUser, Depends(get_user)]


@app.exception_handler(HTTPException)
async def _refusal(request: Request, exc: HTTPException) -> Response:
    """JSON for API clients; a short page for a browser (e.g. the UI frame after logout)."""
    if "text/html" not in request.headers.get("accept", ""):
        return JSONResponse({"detail": exc.detail}, exc.status_code, headers=exc.headers)
    login = '<a href="/auth/login" target="_top">Log in to Airflow</a>'
    body = templates.from_string(
        "<!doctype html><title>{{ code }}</title><p>{{ detail }}.</p>"
        "{% if code == 401 %}<p>{{ login }}</p>{% endif %}"
    ).render(code=exc.status_code, detail=exc.detail, login=Markup(login))
    return HTMLResponse(body, exc.status_code, headers=exc.headers)


def _registry() -> Registry:
    return Registry(settings().registry_url)


def can_promote(user: BaseUser) -> bool:
    return get_auth_manager().is_authorized_dag(
        method="POST",
        access_entity=DagAccessEntity.RUN,
        details=DagDetails(id=PERMISSION_DAG),
        user=user,
    )


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
    data: Page, user: str, may_promote: bool, csrf: str, done: str | None, root: str
) -> str:
    points = [(r.info.version, r.test.get(data.metric)) for r in data.versions]
    return templates.get_template("page.html").render(
        p=data,
        user=user,
        can_promote=may_promote,
        csrf=csrf,
        chart=Markup(metric_chart(points, data.metric)) if data.versions else "",
        root=root,
        done=done,
        champion=CHAMPION,
    )


@app.get("/", response_class=HTMLResponse)
def page(
    request: Request,
    user: User,
    model: Annotated[str | None, Query(max_length=200)] = None,
    version: Annotated[int | None, Query(gt=0, lt=10**9)] = None,
    metric: Annotated[str | None, Query(max_length=100)] = None,
    done: Annotated[str | None, Query(max_length=300)] = None,
) -> HTMLResponse:
    if model is not None and not NAME_RE.match(model):
        raise HTTPException(400, "invalid model name")
    if metric is not None and not METRIC_RE.match(metric):
        raise HTTPException(400, "invalid metric name")
    with _registry() as registry:
        data = build_page(registry, settings(), model, version, metric)
    html = render_page(
        data,
        user.get_name(),
        can_promote(user),
        csrf_token(request),
        done,
        request.scope.get("root_path", ""),
    )
    return HTMLResponse(html)


@app.get("/api/models")
def models(user: User) -> dict[str, Any]:
    """Models and versions with their task type, aliases and test metrics, as JSON."""
    with _registry() as registry:
        versions = registry.list_versions()
    return {
        "models": sorted({v.model for v in versions}),
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
    try:
        with _registry() as registry:
            entries = registry.audit(_name(model, "model name"))
    except RegistryError as exc:
        raise HTTPException(404, str(exc)) from exc
    return [{**e, "at": e["at"].isoformat()} for e in entries]


@app.get("/confusion/{version}.png")
def confusion(
    user: User, version: int, model: Annotated[str, Query(max_length=200)]
) -> FileResponse:
    # The path comes from the registry's lineage, never from the request.
    try:
        with _registry() as registry:
            info = registry.get(_name(model, "model name"), version=version)
    except RegistryError as exc:
        raise HTTPException(404, str(exc)) from exc
    path = confusion_png(info)
    if path is None:
        raise HTTPException(404, f"{model}:{version} has no confusion-matrix picture")
    return FileResponse(path, media_type="image/png")


@app.get("/validation/{day}", response_class=HTMLResponse)
def validation(user: User, day: str) -> FileResponse:
    try:
        parsed = date.fromisoformat(day)
    except ValueError as exc:
        raise HTTPException(400, "day must be YYYY-MM-DD") from exc
    path = validation_report(settings(), parsed)
    if path is None:
        raise HTTPException(404, f"no validation report for {day}")
    return FileResponse(path, media_type="text/html")


async def _form(request: Request) -> dict[str, str]:
    body = (await request.body())[:10_000].decode("utf-8", "replace")
    return {k: v[0] for k, v in parse_qs(body, keep_blank_values=True).items()}


@app.post("/champion")
async def move_champion(request: Request, user: User) -> RedirectResponse:
    """Promote (a newer version) or roll back (an older one) `champion`, with a reason."""
    form = await _form(request)
    _check_csrf(request, form.get("csrf_token", ""))
    if not can_promote(user):
        raise HTTPException(403, f"{user.get_name()} may not trigger {PERMISSION_DAG}")
    model = _name(form.get("model"), "model name")
    version = _version(form.get("version"))
    reason = " ".join(form.get("reason", "").split())
    if not REASON_MIN <= len(reason) <= REASON_MAX:
        raise HTTPException(400, f"a reason of {REASON_MIN}-{REASON_MAX} characters is required")
    try:
        with _registry() as registry:
            try:
                current = registry.get(model, alias=CHAMPION).version
            except RegistryError:
                current = None
            action = "rollback" if current is not None and version < current else "promote"
            registry.set_alias(
                model,
                CHAMPION,
                version,
                actor=user.get_name(),
                reason=reason,
                action=action,
                details={"via": "airflow-ui"},
            )
    except RegistryError as exc:
        raise HTTPException(400, str(exc)) from exc
    query = urlencode({"model": model, "version": version, "done": f"{action}: v{version}"})
    return RedirectResponse(f"{request.scope.get('root_path', '')}/?{query}", status_code=303)
