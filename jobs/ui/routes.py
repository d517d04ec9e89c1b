"""The web UI's routes (``/ui/``): server-rendered pages (jinja2) and a few JSON answers for its scripts.

Pages: the jobs list (live progress) with the train form, a job (progress, leaderboard,
selection curves, rerun all, apply result), a model (every section of the HTML report,
cluster names editable, rerun with another k, apply, publish), the login form. The pages
load plotly.js, the report's stylesheet and scripts from ``/ui/static/`` (served from the
installed packages), so the UI works with no internet access.
"""

from __future__ import annotations

import os
import urllib.parse
from pathlib import Path
from typing import Annotated, Any, Callable

from fastapi import APIRouter, Depends, Path as PathParam, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response

from cluster_core.errors import ClustraError, InvalidInputError, NotFoundError

from ..specs import parse_spec
from .auth import COOKIE, COOKIE_PATH, ForeignOrigin, LoginRequired, authorized, check_same_origin, require_ui_token, safe_next, set_token_cookie
from .pages import STATIC_DIR, render, render_error

JobId = Annotated[str, PathParam(min_length=1, max_length=64)]
ModelId = Annotated[str, PathParam(min_length=1, max_length=200)]
MAX_FORM_BYTES = 64 * 1024
TERMINAL = ("succeeded", "failed", "cancelled", "interrupted")

JobService = Any  # jobs.api.service.JobService (not imported: jobs.api mounts this package)

pages = APIRouter(prefix="/ui", dependencies=[Depends(require_ui_token)], include_in_schema=False)
public = APIRouter(prefix="/ui", include_in_schema=False)


def _service(request: Request) -> JobService:
    return request.app.state.service


async def _form(request: Request) -> dict[str, list[str]]:
    """An urlencoded form body as ``{name: [values]}``."""
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise InvalidInputError(f"the form is larger than {MAX_FORM_BYTES} bytes")
    try:
        return urllib.parse.parse_qs(body.decode("utf-8"), keep_blank_values=True)
    except UnicodeDecodeError:
        raise InvalidInputError("the form is not UTF-8 text") from None


def _one(form: dict[str, list[str]], name: str, default: str = "") -> str:
    return (form.get(name) or [default])[0].strip()


def _ints(value: str, field: str) -> list[int]:
    """``"3, 5,7"`` as ``[3, 5, 7]``; a field-named error otherwise."""
    parts = [p for p in value.replace(" ", ",").split(",") if p]
    try:
        return [int(p) for p in parts]
    except ValueError:
        raise InvalidInputError(f"{field} must be whole numbers separated by commas, e.g. 3,5,7; got {value!r}", field=field) from None


def _see(url: str, notice: str | None = None) -> RedirectResponse:
    if notice:
        url += ("&" if "?" in url else "?") + urllib.parse.urlencode({"notice": notice})
    return RedirectResponse(url, status_code=303)


# -- login and static files ----------------------------------------------------------------

LOGIN_REASONS = {"required": "This service requires its token.", "invalid": "That token is not valid; enter it again."}


@public.get("/login", response_class=HTMLResponse)
def login_form(request: Request, next: str = "/ui/", reason: str | None = None) -> Response:  # noqa: A002 - query names
    return render(request, "login.html.j2", {"next": safe_next(next), "message": LOGIN_REASONS.get(reason or "")})


@public.post("/login")
async def login(request: Request) -> Response:
    try:
        check_same_origin(request)
        form = await _form(request)
    except (ForeignOrigin, InvalidInputError) as exc:
        return render_error(request, 403 if isinstance(exc, ForeignOrigin) else 400, str(exc))
    token, target = _one(form, "token"), safe_next(_one(form, "next"))
    if not authorized(request, token) or (request.app.state.settings.auth_token and not token):
        return render(request, "login.html.j2", {"next": target, "message": LOGIN_REASONS["invalid"]}, status=401)
    response = RedirectResponse(target, status_code=303)
    if request.app.state.settings.auth_token:
        set_token_cookie(response, token, secure=request.url.scheme == "https")
    return response


@public.post("/logout")
def logout(request: Request) -> Response:
    response = RedirectResponse("/ui/login", status_code=303)
    response.delete_cookie(COOKIE, path=COOKIE_PATH)
    return response


_STATIC_TYPES = {".js": "text/javascript", ".css": "text/css", ".json": "application/json"}


@public.get("/static/{name}")
def static(name: str) -> Response:
    """plotly.js from the installed plotly package, the report's stylesheet and scripts, the world map."""
    from cluster_core.report import STATIC_DIR as REPORT_STATIC
    from cluster_core.report import WORLD_MAP_FILE, plotly_js_path

    headers = {"Cache-Control": "public, max-age=3600"}
    if name == "plotly.min.js":
        return FileResponse(plotly_js_path(), media_type="text/javascript", headers=headers)
    if name == "world-map.js":  # plotly.js reads its base map from window.PlotlyGeoAssets, never from its CDN
        body = f"window.PlotlyGeoAssets = {{topojson: {{world_110m: {WORLD_MAP_FILE.read_text()}}}}};"
        return Response(body, media_type="text/javascript", headers=headers)
    for folder in (STATIC_DIR, REPORT_STATIC):
        path = folder / name
        if "/" not in name and path.suffix in _STATIC_TYPES and path.is_file():
            return FileResponse(path, media_type=_STATIC_TYPES[path.suffix], headers=headers)
    return JSONResponse({"error": "not_found", "message": f"no static file {name!r}"}, status_code=404)


# -- jobs ------------------------------------------------------------------------------------

def _job_json(service: JobService, record) -> dict[str, Any]:
    return service.view(record).model_dump(mode="json")


def _data_choices(service: JobService, limit: int = 200) -> list[str]:
    """Datasets a train form may name: Parquet files and folders holding Parquet, two levels under each data root."""
    out: list[str] = []
    for root in service.policy.data_roots:
        if "://" in root or not os.path.isdir(root):
            continue
        for top, dirs, files in os.walk(root):
            depth = Path(top).relative_to(root).parts
            if len(depth) >= 2:
                dirs[:] = []
            rel = Path(top).relative_to(root)
            if depth and any(f.endswith(".parquet") for f in files) and str(rel) not in out:
                out.append(str(rel))
                dirs[:] = []  # a dataset folder (hive partitions below)
                continue
            out.extend(str(rel / f) for f in sorted(files) if f.endswith(".parquet"))
            dirs.sort()
            if len(out) >= limit:
                return out[:limit]
    return out


def _index_context(request: Request, service: JobService, form: dict[str, Any] | None = None,
                   error: str | None = None) -> dict[str, Any]:
    from cluster_core.algorithms import algorithm_names
    from cluster_core.config import DEFAULT_ALGORITHMS

    records = service.store.list(limit=100, offset=0)
    return {
        "jobs": [_job_json(service, r) for r in records], "algorithms": algorithm_names(),
        "form": form or {"data": "", "algorithms": list(DEFAULT_ALGORITHMS), "k": "", "name": ""},
        "data_choices": _data_choices(service), "data_roots": service.policy.data_roots, "error": error,
        "notice": request.query_params.get("notice"),
    }


@pages.get("/", response_class=HTMLResponse)
def index(request: Request) -> Response:
    """Jobs (live progress) and the train form."""
    return render(request, "index.html.j2", _index_context(request, _service(request)))


@pages.get("/jobs.json")
def jobs_json(request: Request) -> dict[str, Any]:
    """The jobs list the index page polls."""
    service = _service(request)
    return {"jobs": [_job_json(service, r) for r in service.store.list(limit=100, offset=0)]}


@pages.post("/jobs")
async def submit_train(request: Request) -> Response:
    """The train form: data under a data root, algorithms, counts k."""
    service = _service(request)
    form = await _form(request)
    values = {"data": _one(form, "data"), "algorithms": [a for a in form.get("algorithms", []) if a],
              "k": _one(form, "k"), "name": _one(form, "name")}
    try:
        spec: dict[str, Any] = {"kind": "train", "data": values["data"]}
        if values["algorithms"]:
            spec["algorithms"] = values["algorithms"]
        if values["k"]:
            spec["k"] = _ints(values["k"], "k")
        if values["name"]:
            spec["name"] = values["name"]
        record, _ = service.submit(parse_spec(spec))
    except ClustraError as exc:
        message = f"{exc.field}: {exc.message}" if getattr(exc, "field", None) else str(exc)
        return render(request, "index.html.j2", _index_context(request, service, values, message),
                      status=getattr(exc, "http_status", 422))
    return _see(f"/ui/jobs/{record.id}")


def _leaderboard_context(service: JobService, job: dict[str, Any]) -> dict[str, Any] | None:
    from cluster_core.report import Figures, load_run_report, run_context

    if job["kind"] != "train" or job["state"] != "succeeded" or not job.get("result"):
        return None
    if (job["result"].get("series") or {}).get("method", "features") != "features":
        return None  # a shape-method series run: no leaderboard, its result is shown
    report = load_run_report(job["result"]["run_dir"], model_ids=[])
    return run_context(report, Figures())


@pages.get("/jobs/{job_id}", response_class=HTMLResponse)
def job_page(request: Request, job_id: JobId) -> Response:
    """A job: progress while it runs; leaderboard and selection curves (train) or the result (apply) after."""
    service = _service(request)
    try:
        job = _job_json(service, service.store.get(job_id))
        run = _leaderboard_context(service, job)
    except ClustraError as exc:
        return render_error(request, getattr(exc, "http_status", 400), str(exc))
    logs = service.store.logs(job_id, after=0, limit=10_000)[-30:]
    def model_href(model_id: str) -> str:
        return f"/ui/jobs/{job_id}/models/{urllib.parse.quote(model_id, safe='')}"

    return render(request, "job.html.j2", {"job": job, "run": run, "logs": logs, "terminal": job["state"] in TERMINAL,
                                           "notice": request.query_params.get("notice"), "model_href": model_href})


@pages.get("/jobs/{job_id}/state.json")
def job_json(request: Request, job_id: JobId) -> dict[str, Any]:
    """One job, for the job page's progress."""
    service = _service(request)
    return _job_json(service, service.store.get(job_id))


async def _form_action(request: Request, back: str, act: Callable[[dict[str, list[str]]], tuple[str, str]]) -> Response:
    """A form's action: ``act(form)`` gives the page to go to and a notice; its error shows an error page linking ``back``."""
    form = await _form(request)
    try:
        url, notice = act(form)
    except ClustraError as exc:
        return render_error(request, getattr(exc, "http_status", 422), str(exc), back=back)
    return _see(url, notice)


@pages.post("/jobs/{job_id}/rerun")
async def rerun_all(request: Request, job_id: JobId) -> Response:
    """Rerun the whole sweep (optionally with other counts k) as a new job."""
    def rerun(form: dict[str, list[str]]) -> tuple[str, str]:
        k = _ints(_one(form, "k"), "k") if _one(form, "k") else None
        record = _service(request).rerun_sweep(job_id, k)
        return f"/ui/jobs/{record.id}", f"rerun of job {job_id}"

    return await _form_action(request, f"/ui/jobs/{job_id}", rerun)


# -- models --------------------------------------------------------------------------------

def _model_report(service: JobService, job_id: str, model_id: str):
    from cluster_core.report import load_run_report

    board = service.leaderboard(job_id)  # 404 / 409 as the API answers
    known = [m["model_id"] for m in board["models"] if m.get("status", "ok") == "ok"]
    if model_id not in known:
        raise NotFoundError(f"job {job_id} has no trained model {model_id!r}; its models: {known}")
    return load_run_report(board["run_dir"], [model_id], image_roots=list(service.policy.data_roots))


@pages.get("/jobs/{job_id}/models/{model_id}", response_class=HTMLResponse)
def model_page(request: Request, job_id: JobId, model_id: ModelId) -> Response:
    """Every section of the report for one model; names editable; rerun, apply, publish."""
    from cluster_core.registry import ModelRegistry
    from cluster_core.report import Figures, model_context

    service = _service(request)
    try:
        report = _model_report(service, job_id, model_id)
    except ClustraError as exc:
        return render_error(request, getattr(exc, "http_status", 400), str(exc), back=f"/ui/jobs/{job_id}")
    figures = Figures()
    model = model_context(report.models[0], figures)
    context = {
        "job_id": job_id, "model": model, "geo": figures.geo, "recommended": report.recommended,
        "can_rename": hasattr(service, "rename_cluster"), "data_choices": _data_choices(service),
        "registry": ModelRegistry().url, "notice": request.query_params.get("notice"),
        "default_data": (service.store.get(job_id).spec or {}).get("data", ""),
    }
    return render(request, "model.html.j2", context)


@pages.post("/jobs/{job_id}/models/{model_id}/clusters/{cluster_id}/name")
async def rename(request: Request, job_id: JobId, model_id: ModelId,
                 cluster_id: Annotated[int, PathParam(ge=0)]) -> Response:
    """Rename a cluster (JSON ``{"name": ...}``): the jobs API's rename, as the signed-in user."""
    import json

    service = _service(request)
    try:
        body = json.loads(await request.body() or b"{}")
    except ValueError:
        raise InvalidInputError("the request body is not valid JSON; send {\"name\": \"...\"}") from None
    name = body.get("name") if isinstance(body, dict) else None
    if not isinstance(name, str) or not name.strip() or len(name) > 100:
        raise InvalidInputError(f"name must be 1 to 100 characters, got {name!r}", field="name")
    renamer = getattr(service, "rename_cluster", None)
    if renamer is None:
        return JSONResponse({"error": "not_implemented", "message": "this service cannot rename clusters yet"}, status_code=501)
    return JSONResponse(renamer(job_id, model_id, cluster_id, name.strip()))


def _model_page(job_id: str, model_id: str) -> str:
    return f"/ui/jobs/{job_id}/models/{model_id}"


@pages.post("/jobs/{job_id}/models/{model_id}/rerun")
async def rerun_model(request: Request, job_id: JobId, model_id: ModelId) -> Response:
    """Rerun this model's algorithm with another k, as a new job."""
    def rerun(form: dict[str, list[str]]) -> tuple[str, str]:
        ks = _ints(_one(form, "k"), "k")
        if len(ks) != 1:
            raise InvalidInputError(f"k must be one cluster count, got {_one(form, 'k')!r}", field="k")
        record = _service(request).rerun_model(job_id, model_id, ks[0])
        return f"/ui/jobs/{record.id}", f"rerun of {model_id} with k={ks[0]}"

    return await _form_action(request, _model_page(job_id, model_id), rerun)


@pages.post("/jobs/{job_id}/models/{model_id}/apply")
async def apply_model(request: Request, job_id: JobId, model_id: ModelId) -> Response:
    """Score a dataset under a data root with this model (an apply job)."""
    def apply(form: dict[str, list[str]]) -> tuple[str, str]:
        spec = {"kind": "apply", "job": job_id, "model_id": model_id, "data": _one(form, "data"),
                "explain": _one(form, "explain") == "true"}
        record, _ = _service(request).submit(parse_spec(spec))
        return f"/ui/jobs/{record.id}", f"applying {model_id}"

    return await _form_action(request, _model_page(job_id, model_id), apply)


@pages.post("/jobs/{job_id}/models/{model_id}/publish")
async def publish_model(request: Request, job_id: JobId, model_id: ModelId) -> Response:
    """Publish this model to the registry (``CLUSTRA_REGISTRY``) as a new version of NAME."""
    from cluster_core.registry import ModelRegistry

    back = _model_page(job_id, model_id)

    def publish(form: dict[str, list[str]]) -> tuple[str, str]:
        name = _one(form, "name")
        if not name:
            raise InvalidInputError("name is required: the registry name to publish under, e.g. customers", field="name")
        model_dir = Path(_service(request).leaderboard(job_id)["run_dir"]) / "models" / model_id
        info = ModelRegistry().publish(model_dir, name, alias=_one(form, "alias") or None)
        alias = f" (alias {info['alias']})" if info.get("alias") else ""
        return back, f"published as {info['name']} version {info['version']}{alias} in {info['registry']}"

    return await _form_action(request, back, publish)


def install_ui(app) -> None:
    """Mount the UI on the jobs API application (``/ui/``; ``/`` redirects there)."""
    app.include_router(public)
    app.include_router(pages)

    @app.exception_handler(LoginRequired)
    async def _login(request: Request, exc: LoginRequired) -> Response:
        if request.method != "GET" or request.url.path.endswith(".json"):
            return JSONResponse({"error": "unauthorized", "message": exc.message}, status_code=401)
        token = request.query_params.get("token")
        query = urllib.parse.urlencode([(k, v) for k, v in request.query_params.multi_items() if k != "token"])
        here = request.url.path + (f"?{query}" if query else "")
        if token is not None and authorized(request, token):  # ?token= once: into the cookie, out of the address
            response = RedirectResponse(here, status_code=303)
            set_token_cookie(response, token, secure=request.url.scheme == "https")
            return response
        reason = "invalid" if token is not None or exc.message.startswith("the token") else "required"
        return RedirectResponse("/ui/login?" + urllib.parse.urlencode({"next": safe_next(here), "reason": reason}),
                                status_code=303)

    @app.exception_handler(ForeignOrigin)
    async def _foreign(request: Request, exc: ForeignOrigin) -> Response:
        return render_error(request, 403, str(exc))

    @app.get("/", include_in_schema=False)
    def _root() -> Response:
        return RedirectResponse("/ui/", status_code=307)
