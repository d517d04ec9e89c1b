"""The web UI of `clustra api` (/ui/): its pages over HTTP, its token handling, and a person's walk
through it in headless Chromium (submit -> progress -> leaderboard -> model -> rename -> apply)."""

from __future__ import annotations

import html
import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pandas as pd
import pytest

from _browser import chromium, screenshot, watched_page  # noqa: F401 - fixtures
from _report_fixtures import insights_document
from conftest import make_mixed_frame, write_hive
from jobs.api import create_app
from jobs.settings import ServiceSettings
from jobs_support import free_port, wait_for, wait_job

TOKEN = "s3cret-ui-token"


@dataclass
class Server:
    url: str
    root: Path
    data: Path
    http: httpx.Client  # carries the bearer header
    app: object


@pytest.fixture(scope="module")
def server(tmp_path_factory, dask_client):
    """The jobs service with its UI on 127.0.0.1 (uvicorn in a thread, jobs on the suite's Dask cluster)."""
    import uvicorn

    root = tmp_path_factory.mktemp("ui")
    data = root / "data"
    write_hive(make_mixed_frame(300, seed=3), data / "customers", "region")
    make_mixed_frame(80, seed=4).to_parquet(data / "new_customers.parquet", index=False)
    settings = ServiceSettings(store=str(root / "state" / "jobs.db"), data_roots=[str(data)],
                               output_root=str(root / "outputs"), scheduler=dask_client.scheduler.address,
                               max_concurrent_jobs=1, auth_token=TOKEN)
    app = create_app(settings)
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    uv = uvicorn.Server(config)
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    http = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60)
    wait_for(lambda: _answers(http), 60, "the UI server")
    try:
        yield Server(url, root, data, http, app)
    finally:
        http.close()
        uv.should_exit = True
        thread.join(timeout=60)


def _answers(http: httpx.Client) -> bool:
    try:
        return http.get("/healthz").status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture(scope="module")
def trained(server):
    """A finished train job (kmeans k=2,3) through the API."""
    response = server.http.post("/v1/jobs", json={"kind": "train", "data": "customers", "algorithms": ["kmeans"], "k": [2, 3]})
    assert response.status_code == 201, response.text
    job = wait_job(server.http, response.json()["id"], timeout=240)
    assert job["state"] == "succeeded", job
    return job


# -- over HTTP -------------------------------------------------------------------------------

def test_pages_need_the_token(server):
    anonymous = httpx.Client(base_url=server.url, timeout=30, follow_redirects=False)
    page = anonymous.get("/ui/jobs/abc?x=1")
    assert page.status_code == 303 and page.headers["location"] == "/ui/login?next=%2Fui%2Fjobs%2Fabc%3Fx%3D1&reason=required"
    login = anonymous.get(page.headers["location"])
    assert 'action="/ui/login"' in login.text and "This service requires its token." in login.text
    assert 'name="next" value="/ui/jobs/abc?x=1"' in login.text
    assert anonymous.get("/ui/jobs.json").json() == {"error": "unauthorized", "message": "this service requires its token"}
    wrong = anonymous.get("/ui/?token=wrong")
    assert wrong.status_code == 303 and wrong.headers["location"].endswith("reason=invalid") and "wrong" not in wrong.headers["location"]
    # ?token= once: the cookie is set (HttpOnly, SameSite=Strict) and the token leaves the address
    once = anonymous.get("/ui/?token=" + TOKEN)
    assert once.status_code == 303 and once.headers["location"] == "/ui/"
    cookie = once.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/ui" in cookie
    assert anonymous.get("/ui/").status_code == 200  # the client kept the cookie
    # the login form; a bad token is refused, a good one sets the cookie; next stays on this site
    fresh = httpx.Client(base_url=server.url, timeout=30, follow_redirects=False)
    bad = fresh.post("/ui/login", data={"token": "nope", "next": "/ui/"})
    assert bad.status_code == 401 and "That token is not valid; enter it again." in bad.text
    good = fresh.post("/ui/login", data={"token": TOKEN, "next": "https://evil.example/"})
    assert good.status_code == 303 and good.headers["location"] == "/ui/" and fresh.get("/ui/").status_code == 200
    # a form post from another origin is refused even with the cookie
    foreign = fresh.post("/ui/jobs", data={"data": "customers"}, headers={"Origin": "https://evil.example"})
    assert foreign.status_code == 403 and "is refused" in foreign.text
    assert server.http.get("/v1/jobs").status_code == 200  # the API itself is unchanged: bearer header
    assert httpx.get(server.url + "/v1/jobs", cookies={"clustra_ui_token": TOKEN}).status_code == 401


def test_static_files_are_served_locally(server):
    plotly_js = server.http.get("/ui/static/plotly.min.js")
    assert plotly_js.status_code == 200 and plotly_js.text.startswith("/**\n* plotly.js v")
    world = server.http.get("/ui/static/world-map.js")
    assert world.text.startswith("window.PlotlyGeoAssets = {topojson: {world_110m: {")
    assert server.http.get("/ui/static/report.css").headers["content-type"].startswith("text/css")
    assert server.http.get("/ui/static/..%2Fpages.py").status_code == 404
    assert server.http.get("/ui/static/nothing.js").json()["message"] == "no static file 'nothing.js'"


@pytest.mark.parametrize("form, status, message", [
    ({"data": "nowhere"}, 422, "data: "),
    ({"data": "../etc"}, 403, "data: "),
    ({"data": "customers", "k": "3,x"}, 422, "k: k must be whole numbers separated by commas, e.g. 3,5,7; got '3,x'"),
    ({"data": "customers", "k": "1"}, 422, "k"),
    ({"data": "customers", "algorithms": "nope"}, 422, "nope"),
], ids=["missing-data", "outside-roots", "k-not-numbers", "k-too-small", "unknown-algorithm"])
def test_bad_train_forms_show_the_form_again_with_the_error(server, form, status, message):
    page = server.http.post("/ui/jobs", data=form)
    assert page.status_code == status, page.text
    assert 'class="flash-error"' in page.text and message in html.unescape(page.text)
    assert f'value="{form["data"]}"' in page.text  # what the user typed is kept


def test_unknown_job_and_model_pages_are_friendly_404s(server, trained):
    page = server.http.get("/ui/jobs/nope")
    assert page.status_code == 404 and "<h2>Not found</h2>" in page.text and "nope" in page.text
    page = server.http.get(f"/ui/jobs/{trained['id']}/models/kmeans-k99")
    assert page.status_code == 404 and "has no trained model 'kmeans-k99'; its models: ['kmeans-k" in html.unescape(page.text)
    bad = server.http.post(f"/ui/jobs/{trained['id']}/models/kmeans-k2/rerun", data={"k": "2,3"})
    assert bad.status_code == 422 and "k must be one cluster count, got '2,3'" in html.unescape(bad.text)
    publish = server.http.post(f"/ui/jobs/{trained['id']}/models/kmeans-k2/publish", data={"name": ""})
    assert publish.status_code == 422 and "name is required" in publish.text


def test_publish_writes_a_registry_version(server, trained, tmp_path, monkeypatch):
    monkeypatch.setenv("CLUSTRA_REGISTRY", str(tmp_path / "registry"))
    answer = server.http.post(f"/ui/jobs/{trained['id']}/models/kmeans-k3/publish", data={"name": "customers", "alias": "prod"},
                              follow_redirects=True)
    assert answer.status_code == 200 and "published as customers version 1 (alias prod)" in answer.text
    version = json.loads((tmp_path / "registry" / "customers" / "versions" / "1" / "version.json").read_text())
    assert version["model_id"] == "kmeans-k3"


# -- in a browser ----------------------------------------------------------------------------

def _login(page, server):
    page.goto(server.url + "/ui/")
    assert page.locator("h2").first.inner_text() == "Sign in"
    page.fill("#token", TOKEN)
    page.click("#login-form button[type=submit]")
    page.wait_for_selector("#train-form")


def test_a_person_trains_looks_renames_and_applies(server, watched_page, tmp_path):
    page, watched = watched_page
    _login(page, server)
    # submit a train job from the form
    page.fill("#data", "customers")
    for box in page.locator("input[name=algorithms]").all():
        box.set_checked(box.get_attribute("value") in ("kmeans", "gmm"))
    page.fill("#k", "2,3,4")
    page.fill("#name", "browser sweep")
    page.click("#train-form button[type=submit]")
    page.wait_for_url("**/ui/jobs/*")
    job_id = page.url.rstrip("/").split("/")[-1]
    # progress: the page shows the state and reloads itself when the job is done
    assert page.locator("#job-state").inner_text() in ("queued", "running", "succeeded")
    page.wait_for_selector('[data-section="leaderboard"] table', timeout=240_000)
    assert page.locator("#job-state").inner_text() == "succeeded"
    rows = page.locator('[data-section="leaderboard"] tbody tr')
    assert rows.count() == 6
    screenshot(page, tmp_path / "ui-leaderboard.png")
    # the jobs list shows it, finished
    page.goto(server.url + "/ui/")
    row = page.locator(f'#jobs tr[data-job="{job_id}"]')
    assert "browser sweep" in row.inner_text() and "succeeded" in row.inner_text() and "100%" in row.inner_text()
    # the model page: the best model, with its sections
    page.goto(f"{server.url}/ui/jobs/{job_id}")
    best = page.locator('[data-section="leaderboard"] tbody tr').first.get_attribute("data-model")
    page.click(f'[data-section="leaderboard"] a:text-is("{best}")')
    page.wait_for_selector(f"#fig-{best}-embedding .main-svg")
    for name in ("clusters", "embedding", "observations", "profiles", "heatmap", "feature-impact", "associations", "gallery", "map"):
        assert page.locator(f'[data-section="{name}"]').count() == 1, name
    n_clusters = page.locator('[data-section="clusters"] tbody tr').count()
    assert n_clusters >= 2
    screenshot(page, tmp_path / "ui-model.png")
    # rename a cluster in place (when this service has the rename route)
    first = page.locator('form.rename[data-cluster="0"]')
    if first.count():
        first.locator("input").fill("Big spenders")
        first.locator("button").click()
        page.wait_for_function("document.querySelector('form.rename[data-cluster=\"0\"] .rename-status').textContent === 'saved'")
        page.reload()
        assert page.locator('form.rename[data-cluster="0"] input').input_value() == "Big spenders"
    else:
        assert "Renaming clusters needs a service with the rename route" in page.inner_text("body")
    # apply the model to new data: an apply job, its progress, its result
    page.fill("#apply-form input[name=data]", "new_customers.parquet")
    page.click("#apply-form button[type=submit]")
    page.wait_for_url("**/ui/jobs/*")
    assert "applying " + best in page.inner_text(".flash-ok")
    page.wait_for_selector("#job-state.state-succeeded, #job-state.state-failed", timeout=240_000)
    assert page.locator("#job-state").inner_text() == "succeeded", page.inner_text('[data-section="job"]')
    result = page.locator('[data-section="apply-result"]').inner_text()
    assert "Scored 80 rows with model " + best in result
    counts = [int(c.inner_text()) for c in page.locator('[data-section="apply-result"] td.num').all()]
    assert sum(counts) == 80
    # rerun one model with another k: a new job linked to the first
    page.goto(f"{server.url}/ui/jobs/{job_id}/models/kmeans-k2")
    page.fill("#rerun-form input[name=k]", "5")
    page.click("#rerun-form button[type=submit]")
    page.wait_for_url("**/ui/jobs/*")
    assert "rerun of kmeans-k2 with k=5" in page.inner_text(".flash-ok")
    assert job_id in page.locator('[data-section="job"]').inner_text()
    watched.check()


def test_model_page_with_every_insight_section(server, trained, watched_page, tmp_path):
    """The model page at 1280 px with a full insights.json (docs/insights.md: a customer table with
    numeric, categorical, datetime, text, image and geo columns) in place of the run's own."""
    page, watched = watched_page
    run_dir = Path(trained["result"]["run_dir"])
    model_dir = run_dir / "models" / "kmeans-k3"
    insights = model_dir / "insights.json"
    original = insights.read_bytes() if insights.exists() else None  # the run's own, when training wrote one
    insights.write_text(json.dumps(insights_document()))
    try:
        page.goto(f"{server.url}/ui/?token={TOKEN}")
        page.goto(f"{server.url}/ui/jobs/{trained['id']}/models/kmeans-k3")
        page.wait_for_selector("#fig-kmeans-k3-heatmap .main-svg")
        assert page.locator('[data-section="map"] .geo path').count() > 10  # world map from /ui/static/world-map.js
        for name in ("heatmap", "feature-impact", "associations", "map", "embedding"):
            assert page.locator(f'[data-section="{name}"] .js-plotly-plot').count() >= 1, name
        assert "100% of the cluster has plan=pro (31% overall)" in page.inner_text('[data-section="observations"]')
        screenshot(page, tmp_path / "ui-model-insights.png")
        watched.check()
    finally:
        if original is None:
            insights.unlink()
        else:
            insights.write_bytes(original)


def test_job_page_marks_the_recommended_model(server, trained):
    """The leaderboard's ``recommended`` (docs/selection.md) is marked; without it, "not computed"."""
    board_file = Path(trained["result"]["run_dir"]) / "leaderboard.json"
    original = board_file.read_text()
    board = json.loads(original)
    try:
        board.pop("recommended", None)
        board.pop("recommended_reason", None)
        board_file.write_text(json.dumps(board))
        page = server.http.get(f"/ui/jobs/{trained['id']}").text
        assert "★ recommended</span>" not in page and "Recommended model: not computed for this run" in page
        board.update(recommended="kmeans-k2", recommended_reason="the most stable count")
        board_file.write_text(json.dumps(board))
        page = server.http.get(f"/ui/jobs/{trained['id']}").text
        row = page.split('data-model="kmeans-k2"', 1)[1].split("</tr>", 1)[0]
        assert 'class="recommended' in page.split('data-model="kmeans-k2"', 1)[0].rsplit("<tr", 1)[1]
        assert "★ recommended" in row and f'href="/ui/jobs/{trained["id"]}/models/kmeans-k2"' in row
        assert "Recommended model: <strong>kmeans-k2</strong> — the most stable count" in page
    finally:
        board_file.write_text(original)


def test_rerun_all_and_apply_forms(server, trained):
    job_id = trained["id"]
    bad = server.http.post(f"/ui/jobs/{job_id}/rerun", data={"k": "three"})
    assert bad.status_code == 422 and "k must be whole numbers separated by commas" in html.unescape(bad.text)
    assert f'href="/ui/jobs/{job_id}"' in bad.text  # the error page leads back to the job
    rerun = server.http.post(f"/ui/jobs/{job_id}/rerun", data={"k": "2"})
    assert rerun.status_code == 303 and "notice=rerun+of+job" in rerun.headers["location"]
    assert wait_job(server.http, rerun.headers["location"].split("/")[3].split("?")[0])["rerun"] == {"of": job_id, "k": [2]}
    missing = server.http.post(f"/ui/jobs/{job_id}/models/kmeans-k2/apply", data={"data": "nowhere.parquet"})
    assert missing.status_code in (403, 422) and "nowhere.parquet" in html.unescape(missing.text)
    assert f'href="/ui/jobs/{job_id}/models/kmeans-k2"' in missing.text
    applied = server.http.post(f"/ui/jobs/{job_id}/models/kmeans-k2/apply", data={"data": "new_customers.parquet", "explain": "true"})
    assert applied.status_code == 303 and "notice=applying+kmeans-k2" in applied.headers["location"]
    job = wait_job(server.http, applied.headers["location"].split("/")[3].split("?")[0])
    assert job["state"] == "succeeded" and job["spec"]["explain"] is True
    assert {"runner_up", "margin", "explanation"} <= set(pd.read_parquet(job["result"]["out"]).columns)
