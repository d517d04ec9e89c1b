"""The HTML report (cluster_core.report, `clustra report`): sections from the run's files, "not computed"
for the absent ones, one self-contained page that a headless Chromium opens offline."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from _browser import screenshot, watched_page, chromium  # noqa: F401 - fixtures
from _report_fixtures import NAMES, insights_document, write_fixture_run
from cluster_core.errors import ArtifactError, InvalidInputError
from cluster_core.report import load_run_report, model_context, render_report, run_context, write_report
from cluster_core.report import _sections as sections

SECTIONS = ("embedding", "observations", "profiles", "heatmap", "feature-impact", "associations", "gallery", "map")
TINY_PLOTLY = "window.Plotly = {newPlot: function () {}};"  # unit tests check the HTML, not the drawing


def _section(html: str, model_id: str, name: str) -> str:
    """The HTML of one model's section."""
    model = html.split(f'data-model="{model_id}"', 2)[-1]
    match = re.search(rf'data-section="{name}">(.*?)</section>', model, re.S)
    assert match, f"no {name} section for {model_id}"
    return match.group(1)


@pytest.fixture
def full_run(tmp_path) -> Path:
    return write_fixture_run(tmp_path)


def test_every_section_of_a_fully_described_model_is_rendered(full_run):
    html = render_report(load_run_report(full_run), plotly_js=TINY_PLOTLY)
    for name in SECTIONS:
        assert "not computed" not in _section(html, "kmeans-k3", name), name
    assert "100% of the cluster has plan=pro (31% overall)" in _section(html, "kmeans-k3", "observations")
    assert "spend ≈ spend_eur (0.98)" in _section(html, "kmeans-k3", "associations")
    assert "spend is on average 64% greater" in _section(html, "kmeans-k3", "clusters")
    assert "fast, reliable, premium" in _section(html, "kmeans-k3", "profiles")
    assert "typical month: Nov" in _section(html, "kmeans-k3", "profiles")
    gallery = _section(html, "kmeans-k3", "gallery")
    assert gallery.count("data:image/png;base64,") == 6 and "border-color: #1f77b4" in gallery
    profiles = _section(html, "kmeans-k3", "profiles")  # representative / borderline images, from image_root
    assert profiles.count('class="framed representative"') == 3 and profiles.count('class="framed borderline"') == 3
    for name in NAMES.values():  # the insights' names replace the generated ones
        assert name in _section(html, "kmeans-k3", "clusters")
    assert "★ recommended" in html and "the elbow of the silhouette curve" in html


def test_absent_sections_say_not_computed(tmp_path):
    run = write_fixture_run(tmp_path, insights=False, selection=False)
    html = render_report(load_run_report(run), plotly_js=TINY_PLOTLY)
    for name in ("observations", "profiles", "heatmap", "feature-impact", "associations", "map"):
        assert "not computed" in _section(html, "kmeans-k3", name), name
    assert "not computed" not in _section(html, "kmeans-k3", "embedding")  # embedding_view.json exists today
    assert "Recommended model: not computed" in html
    assert "From the leaderboard (the run has no selection file)" in html
    assert "This model did not train: k=9 exceeds the 8 rows" in html


def test_figures_carry_the_data(full_run):
    report = load_run_report(full_run)
    context = model_context(report.model("kmeans-k3"))
    embedding = json.loads(context["embedding"]["json"])
    traces = {t["name"]: t for t in embedding["data"]}
    assert set(traces) == {f"{c} · {n}" for c, n in NAMES.items()}
    assert sum(len(t["x"]) for t in traces.values()) == 90
    hover = traces["0 · high spend, plan=pro"]["text"][0]
    assert all(f"P({c} · {n})" in hover for c, n in NAMES.items())  # probability per cluster
    impact = json.loads(context["impact"]["json"])["data"][0]
    assert impact["y"] == ["spend", "latitude:longitude", "plan", "review", "signup"] and impact["x"][0] == 1.0
    heat = json.loads(context["heatmap"]["json"])["data"][0]
    assert heat["zmid"] == 0 and heat["y"][2] == "2 · Berlin reviewers" and heat["z"][2][4] == 1.8
    assoc = json.loads(context["associations"]["json"])["data"][0]  # in the related-columns order
    assert assoc["x"][:2] == ["spend", "spend_eur"] and assoc["z"][0][1] == 0.98 and assoc["z"][3][3] == 1.0
    numeric = json.loads(context["profiles"][0]["figure"]["json"])  # clusters on the overall's shared bin edges
    assert [t["name"] for t in numeric["data"]][0] == "overall" and numeric["data"][1]["x"][0] == 25.0
    geo = json.loads(context["geo"][0]["figure"]["json"])
    assert [t["type"] for t in geo["data"]] == ["scattergeo"] * 6 and len(geo["data"][2]["lat"]) == 25
    # a model without per-cluster probabilities shows the assigned cluster's
    other = json.loads(model_context(report.model("kmeans-k2"))["embedding"]["json"])
    assert "membership probability" in other["data"][0]["text"][0]


def test_selection_curves_from_the_selection_file_or_the_leaderboard(full_run, tmp_path):
    report = load_run_report(full_run)
    curves, source = sections.selection_curves(report.selection, report.leaderboard)
    assert source == "selection" and curves["kmeans"]["k"] == [2, 3] and curves["kmeans"]["silhouette"] == [0.48, 0.61]
    assert curves["kmeans"]["stability_excess"] == [0.4, 0.4] and "bic" not in curves["kmeans"]  # all null: no panel
    figure = json.loads(run_context(report)["selection"]["json"])
    star = [t for t in figure["data"] if t["name"].startswith("recommended")]
    assert star and star[0]["x"] == [3] and star[0]["y"] == [0.61]
    panels = [figure["layout"][f"yaxis{s}"]["title"]["text"] for s in ("", "2", "3", "4", "5")]
    assert panels == ["silhouette ↑", "Davies-Bouldin ↓", "Calinski-Harabasz ↑", "stability ↑", "stability excess ↑"]
    assert "yaxis6" not in figure["layout"]  # bic and icl are null for KMeans: no panel
    curves, source = sections.selection_curves(None, report.leaderboard)
    assert source == "leaderboard" and curves["kmeans"]["k"] == [2, 3] and "gmm" not in curves  # failed model left out


def test_section_spellings_accepted():
    doc = insights_document()
    by_dict = {"observations": {"0": ["first", {"text": "second"}]}, "feature_impact": {"columns": doc["feature_impact"][::-1]},
               # an earlier draft's spelling: profiles as a list of columns with clusters keyed by id
               "profiles": {"overall": {"spend": {"kind": "numeric", "mean": 1}},
                            "clusters": [{"cluster_id": 0, "columns": {"spend": {"kind": "numeric", "mean": 2}}}]}}
    assert sections.observations(by_dict) == {0: ["first", "second"]}
    assert [r["column"] for r in sections.feature_impact(by_dict)][:2] == ["spend", "latitude:longitude"]
    assert sections.profile_columns(by_dict) == [{"column": "spend", "kind": "numeric", "overall": {"kind": "numeric", "mean": 1},
                                                  "clusters": {0: {"kind": "numeric", "mean": 2}}}]
    assert sections.heatmap({"heatmap": {"clusters": [0], "features": ["a", "b"], "values": [[1.0]]}}) is None  # ragged
    geo = {"profiles": {"columns": {"lat:lon": {"kind": "geo", "overall": {}, "clusters": {
        "0": {"centroid": {"lat": None, "lon": 2.0}, "points": [{"lat": 1.0, "lon": None}, {"lat": 1.5, "lon": 2.5}]},
        "1": {"centroid": {"lat": 3.0, "lon": 4.0}, "points": {"lat": [3.0, None], "lon": [4.0, 5.0]}}}}}}}
    assert sections.geo_points(geo) == [{"column": "lat:lon", "clusters": {0: {"lat": [1.5], "lon": [2.5]}, 1: {"lat": [3.0], "lon": [4.0]}},
                                         "centroids": {1: (3.0, 4.0)}}]  # null coordinates left out
    assert sections.associations({"associations": {"columns": ["a"], "matrix": []}}) is None


def test_report_file_is_self_contained(full_run, tmp_path):
    out = write_report(full_run, tmp_path / "report.html")
    html = out.read_text()
    assert html.count("plotly.js v") == 1  # the bundle inline, once
    assert "PlotlyGeoAssets" in html  # the world map for the geo points, inline
    assert not re.search(r'<(script|link|img)[^>]+(src|href)="(https?:)?//', html)
    with pytest.raises(InvalidInputError, match="already exists"):
        write_report(full_run, out)
    assert write_report(full_run, out, overwrite=True, model_ids=["kmeans-k2"]) == out
    assert 'data-model="kmeans-k3"' not in out.read_text().split("Models</h2>")[1]
    assert not list(tmp_path.glob(".*.partial"))


@pytest.mark.parametrize("case, message", [
    ("missing", "run directory .* does not exist"),
    ("not_a_run", "is not a run directory"),
    ("unknown_model", "has no model 'nope'; its models: \\['kmeans-k3', 'kmeans-k2', 'gmm-k9'\\]"),
    ("out_is_dir", "is a directory; give the report's file name"),
])
def test_bad_input_names_the_value(full_run, tmp_path, case, message):
    run, out, models = full_run, tmp_path / "r.html", None
    if case == "missing":
        run = tmp_path / "nowhere"
    elif case == "not_a_run":
        run = tmp_path / "empty"
        run.mkdir()
    elif case == "unknown_model":
        models = ["nope"]
    elif case == "out_is_dir":
        out = tmp_path
    with pytest.raises(InvalidInputError, match=message):
        write_report(run, out, model_ids=models, overwrite=case == "out_is_dir")


def test_a_corrupt_file_is_an_artifact_error_naming_it(full_run, tmp_path):
    (full_run / "models" / "kmeans-k3" / "insights.json").write_text("{not json")
    with pytest.raises(ArtifactError, match="insights file .*kmeans-k3/insights.json' is not valid JSON"):
        load_run_report(full_run)


def test_clustra_report_command(full_run, tmp_path, capsys):
    from clustra.cli import main

    out = tmp_path / "cli.html"
    assert main(["report", str(full_run), "--model", "kmeans-k3", "--out", str(out)]) == 0
    assert f"report written to {out}" in capsys.readouterr().out and out.stat().st_size > 1_000_000
    assert main(["report", str(full_run), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("clustra: error: --out: ") and "already exists" in err
    assert main(["report", str(full_run), "--model", "nope", "--out", str(tmp_path / "x.html")]) == 2
    assert "--model: run" in capsys.readouterr().err


# -- in a browser --------------------------------------------------------------------------

def test_report_in_chromium(full_run, tmp_path, watched_page):
    page, watched = watched_page
    out = write_report(full_run, tmp_path / "report.html")
    page.goto(out.as_uri())
    page.wait_for_selector("#fig-kmeans-k3-embedding .main-svg")
    model = page.locator('details[data-model="kmeans-k3"]')
    for name in ("embedding", "heatmap", "feature-impact", "associations", "map"):
        assert model.locator(f'[data-section="{name}"] .js-plotly-plot').count() >= 1, name
    assert model.locator('[data-section="profiles"] .js-plotly-plot').count() == 2  # spend and plan
    assert model.locator('[data-section="map"] .geo path').count() > 10  # the base map was drawn, from the inline topojson
    assert page.locator("tr.recommended td").first.inner_text() == "1"
    assert "Berlin reviewers" in model.locator('[data-section="clusters"]').inner_text()
    screenshot(page, tmp_path / "report-model.png")
    # the second model is drawn when opened, with its sections of today only
    other = page.locator('details[data-model="kmeans-k2"]')
    assert other.locator(".js-plotly-plot").count() == 0
    other.locator("summary").click()
    page.wait_for_selector("#fig-kmeans-k2-embedding .main-svg")
    assert "Heatmap: not computed" in other.inner_text()
    # hover on a point shows its cluster and membership probabilities
    page.locator("#fig-kmeans-k3-embedding").scroll_into_view_if_needed()
    box = page.locator("#fig-kmeans-k3-embedding .nsewdrag").first.bounding_box()
    hovered = False
    for fx in (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8):
        for fy in (0.2, 0.35, 0.5, 0.65, 0.8):
            page.mouse.move(box["x"] + box["width"] * fx, box["y"] + box["height"] * fy)
            page.wait_for_timeout(30)
            if page.locator("#fig-kmeans-k3-embedding .hoverlayer .hovertext").count():
                hovered = True
                break
        if hovered:
            break
    assert hovered and "P(" in page.locator("#fig-kmeans-k3-embedding .hoverlayer").text_content()
    watched.check()


# -- a real run ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def penguins_run(tmp_path_factory):
    """The demo's table (Palmer penguins) trained in process: a KMeans and a Gaussian mixture."""
    from cluster_core.datasets import DEMO_EXCLUDE, write_penguins
    from cluster_core.usecases import open_dataset, train_config, train_run

    root = tmp_path_factory.mktemp("penguins")
    config = train_config(exclude=DEMO_EXCLUDE, algorithms=["kmeans", "gmm"], k=[3], seed=0, device="cpu")
    outcome = train_run(open_dataset(write_penguins(root)), config, out=root / "run", cluster="inprocess")
    return outcome.run_dir


def test_penguins_report_shows_membership_probabilities_per_cluster(penguins_run, tmp_path):
    view = json.loads((Path(penguins_run) / "models" / "gmm-k3" / "embedding_view.json").read_text())
    rows = view["probabilities"]
    assert view["probability_clusters"] == [0, 1, 2] and len(rows) == view["n_points"] == len(view["x"])
    assert all(abs(sum(r) - 1) < 0.01 for r in rows)
    assert all(r[c] == max(r) for r, c in zip(rows, view["cluster"]))  # the assigned cluster is the most probable
    assert "probabilities" not in json.loads((Path(penguins_run) / "models" / "kmeans-k3" / "embedding_view.json").read_text())
    report = load_run_report(penguins_run)
    hover = json.loads(model_context(report.model("gmm-k3"))["embedding"]["json"])["data"][0]["text"][0]
    assert hover.count("P(") == 3
    html = render_report(report, plotly_js=TINY_PLOTLY)
    assert "not computed" not in _section(html, "gmm-k3", "embedding")
    assert "its membership probability per cluster" in _section(html, "gmm-k3", "embedding")
