"""The jobs API under attack (issue 15): every failure found by fuzzing and drills, as a test.

* specs accepted that could not run: each field's type, range and meaning checked at submit
  (422 naming the field), with the rules the CLI and the Python API use;
* confinement: ``text_model`` / ``image_model`` under ``--model-root`` only, ``image_root``
  under a data root; the job store and the registry are never a job's output;
* resource exhaustion: YAML aliases and deep nesting refused fast, auth before any body work;
* 5xx: ``offset`` / ``after`` beyond SQLite's integers; a store that cannot be written (503).

The start-up checks of the store and the cancelled job's worker are drills with a real
``clustra api`` process (bounded in time, loopback only).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from cluster_core.errors import InvalidInputError
from cluster_core.usecases import train_config
from conftest import make_mixed_frame, write_hive
from jobs.api import create_app
from jobs.settings import ServiceSettings
from jobs.specs import TrainSpec
from jobs_support import ApiProcess, CheckedClient, OpenAPIChecker, wait_for, wait_job

MINIMAL = {"kind": "train", "data": "customers", "algorithms": ["kmeans"], "k": [3, 5]}


@dataclass
class Env:
    http: CheckedClient
    raw: TestClient
    home: Path
    data: Path
    models: Path
    outside: Path
    store: Path
    registry: Path


@pytest.fixture(scope="module")
def env(tmp_path_factory, dask_client):
    """A service started the way a user would from a home directory: the data root is the home,
    which holds the store (``.clustra/jobs.db``) and the registry (``.clustra/registry``)."""
    home = tmp_path_factory.mktemp("home")
    write_hive(make_mixed_frame(300, seed=2), home / "customers", "region")
    (home / "old-model").mkdir()
    (home / "pictures").mkdir()
    models = tmp_path_factory.mktemp("weights")
    (models / "encoder.onnx").write_bytes(b"not really onnx")
    outside = tmp_path_factory.mktemp("outside")
    (outside / "encoder.onnx").write_bytes(b"secret")
    registry = home / ".clustra" / "registry"
    registry.mkdir(parents=True)
    store = home / ".clustra" / "jobs.db"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CLUSTRA_REGISTRY", str(registry))
        settings = ServiceSettings(store=str(store), data_roots=[str(home)], model_roots=[str(models)],
                                   scheduler=dask_client.scheduler.address, max_request_bytes=1 << 20)
        app = create_app(settings)
        with TestClient(app) as raw:
            yield Env(CheckedClient(raw, OpenAPIChecker(app.openapi())), raw, home, home, models, outside, store,
                      registry)


def _total(env: Env) -> int:
    return env.raw.get("/v1/jobs").json()["total"]


# -- validate at the door: one definition for the CLI, the Python API and the specs ---------------

INVALID_VALUES = [
    ("kmeans_n_init", 1e20), ("kmeans_n_init", 1001), ("kmeans_n_init", 0), ("gmm_n_init", 10**9),
    ("device", "x"), ("device", "cuda:0;rm"), ("seed", 1e20), ("seed", -1), ("seed", 2**32),
    ("weights", {"spend": -1}), ("weights", {"spend": 1e308}), ("weights", {"spend": 0}),
    ("kind_weights", {"text": -2}), ("max_iter", 10**12), ("max_k", 10**9), ("k", [3, 10**12]),
    ("feature_sample_rows", 10**15), ("gmm_reg_covar", 1e300), ("text_model", "a\x00b"),
    ("image_root", "x" * 5000), ("include", ["spend\x00"]), ("exclude", ["x" * 2000]), ("text_batch_size", 10**9),
    ("reduce_components", 10**8), ("gallery_size", 10**7), ("view_sample_rows", 10**9),
]


@pytest.mark.parametrize("field, value", INVALID_VALUES, ids=[f"{f}={str(v)[:20]}" for f, v in INVALID_VALUES])
def test_a_value_that_cannot_run_is_refused_by_every_front_door(env, field, value):
    before = _total(env)
    response = env.http.post("/v1/jobs", json={**MINIMAL, field: value})
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"] == "invalid_spec" and body["field"].split(".")[0].split("[")[0] == field
    assert _total(env) == before
    with pytest.raises(InvalidInputError) as caught:  # the CLI and the Python API validate through train_config
        train_config(**{field: value})
    assert caught.value.field.split(".")[0] == field


@pytest.mark.parametrize("flags, message", [(["--seed", "-1"], "--seed: Input should be greater than or equal to 0, got -1"),
                                            (["--kmeans-n-init", "2000"], "--kmeans-n-init: Input should be less than or equal"),
                                            (["--weight", "spend=1e308"], "--weight (spend): Input should be less than or equal")])
def test_the_cli_refuses_the_same_values_in_one_line_before_any_work(tmp_path, flags, message):
    make_mixed_frame(40).to_parquet(tmp_path / "small.parquet")
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "clustra.cli", "train", str(tmp_path / "small.parquet"), "--out",
                             str(tmp_path / "run"), *flags], capture_output=True, text=True, timeout=120,
                            env=dict(os.environ, CLUSTRA_DEVICE="cpu"))
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "run").exists()
    assert time.perf_counter() - started < 60


@pytest.mark.parametrize("value, expected", [(1e20, "got 1e+20"), (-1, "got -1")])
def test_the_message_names_the_value_and_the_range(env, value, expected):
    body = env.http.post("/v1/jobs", json={**MINIMAL, "seed": value}).json()
    assert expected in body["message"] and ("4294967295" in body["message"] or "greater than or equal to 0" in
                                            body["message"] or "integer" in body["message"])


@pytest.mark.parametrize("field, value", [("output", "run\x00x"), ("output", "r" * 5000), ("data", "c\x00"),
                                          ("name", "n" * 300), ("timeout_s", 1e308), ("timeout_s", -1)])
def test_job_fields_are_bounded_too(env, field, value):
    response = env.http.post("/v1/jobs", json={**MINIMAL, field: value})
    assert response.status_code == 422 and response.json()["field"] == field, response.text


@pytest.mark.parametrize("field, value", [("include", ["spend", "nope"]), ("exclude", ["nope"]),
                                          ("kinds", {"nope": "numeric"}), ("weights", {"nope": 2.0}),
                                          ("geo_pairs", ["lat:lon"])])
def test_columns_the_spec_names_are_checked_against_the_footer_at_submit(env, field, value):
    before = _total(env)
    response = env.http.post("/v1/jobs", json={**MINIMAL, field: value})
    assert response.status_code == 422 and response.json()["field"] == field, response.text
    assert "not in the dataset" in response.json()["message"] and "'spend'" in response.json()["message"]
    assert _total(env) == before


@pytest.mark.parametrize("field, value", [("kinds", {"plan": "bogus"}), ("kind_weights", {"colour": 2.0})])
def test_kinds_a_spec_names_must_exist(env, field, value):
    response = env.http.post("/v1/jobs", json={**MINIMAL, field: value})
    assert response.status_code == 422 and response.json()["field"] == field, response.text
    assert "unknown column kind(s)" in response.json()["message"] and "'numeric'" in response.json()["message"]


def test_a_partition_column_is_a_column(env):
    response = env.http.post("/v1/jobs", json={**MINIMAL, "exclude": ["region", "customer_id"]})
    assert response.status_code == 201, response.text
    assert wait_job(env.http, response.json()["id"])["state"] == "succeeded"


# -- confinement of every path-valued field ---------------------------------------------------------

def test_every_path_field_declares_its_role():
    """A future field that names a path gets confined only if it declares a role: this catches one that does not."""
    from cluster_core.config import path_fields
    from jobs.specs import ApplySpec

    for spec in (TrainSpec, ApplySpec):
        roles = path_fields(spec)
        looks_like_path = {name for name in spec.model_fields
                           if name in ("data", "output", "model") or name.endswith(("_model", "_root", "_path", "_dir"))}
        assert looks_like_path <= set(roles), f"{spec.__name__}: {sorted(looks_like_path - set(roles))} lack a PathRole"
    assert path_fields(TrainSpec)["image_root"] == "data" and path_fields(TrainSpec)["text_model"] == "model"


@pytest.mark.parametrize(
    "field, value, status, message",
    [("image_model", "encoder.onnx", 201, None),
     ("image_model", "@outside/encoder.onnx", 403, "outside the allowed roots"),
     ("image_model", "../outside/encoder.onnx", 403, "contains '..'"),
     ("image_model", "missing.onnx", 422, "does not exist under the model roots"),
     ("text_model", "@outside", 403, "outside the allowed roots"),
     ("text_model", "all-MiniLM-L6-v2", 201, None),
     ("image_root", "@outside", 403, "outside the allowed roots"),
     ("image_root", "pictures", 201, None),
     ("image_root", "/etc", 403, "outside the allowed roots")],
)
def test_model_and_image_paths_are_confined_like_data(env, field, value, status, message):
    value = value.replace("@outside", str(env.outside))
    response = env.http.post("/v1/jobs", json={**MINIMAL, field: value, "text_method": "tfidf"})
    assert response.status_code == status, response.text
    if message:
        assert response.json()["field"] == field and message in response.json()["message"]
    else:
        job = response.json()
        env.http.post(f"/v1/jobs/{job['id']}/cancel")
        wait_job(env.http, job["id"])


def test_weights_are_refused_without_a_model_root(tmp_path, dask_client):
    write_hive(make_mixed_frame(50), tmp_path / "customers", "region")
    (tmp_path / "encoder.onnx").write_bytes(b"x")  # under the data root, still not a model root
    settings = ServiceSettings(store=str(tmp_path / "s" / "jobs.db"), data_roots=[str(tmp_path)],
                               scheduler=dask_client.scheduler.address)
    before = os.environ.get("CLUSTRA_IMAGE_ROOTS")
    with TestClient(create_app(settings)) as raw:
        assert os.environ["CLUSTRA_IMAGE_ROOTS"].split(os.pathsep)[0] == str(tmp_path)
        for field in ("image_model", "text_model"):
            response = raw.post("/v1/jobs", json={**MINIMAL, field: "encoder.onnx"})
            assert response.status_code == 422 and response.json()["field"] == field
            assert "--model-root" in response.json()["message"]
        assert raw.get("/v1/jobs").json()["total"] == 0
    assert os.environ.get("CLUSTRA_IMAGE_ROOTS") == before  # restored when the service stops


def test_the_run_uses_the_checked_weights_path(env):
    from jobs.tasks import job_train_config, read_paths

    spec = TrainSpec(kind="train", data="customers", image_model="encoder.onnx", image_root="pictures")
    paths = read_paths(spec, env.raw.app.state.service.policy)
    config = job_train_config(spec, paths)
    assert config.image_model == str(env.models / "encoder.onnx") and config.image_root == str(env.home / "pictures")


def test_image_files_named_in_the_data_are_read_only_under_the_roots(tmp_path, monkeypatch):
    """Regression: image paths in a column (absolute, ``..``, symlinks, file:// URLs) read any server file."""
    from cluster_core.features.image import IMAGE_ROOTS_ENV, decode_batch, read_image_bytes

    inside, outside = tmp_path / "data", tmp_path / "secret"
    (inside / "img").mkdir(parents=True)
    outside.mkdir()
    for folder in (inside / "img", outside):
        (folder / "a.png").write_bytes(b"\x89PNG fake")
    (inside / "img" / "link.png").symlink_to(outside / "a.png")
    monkeypatch.setenv(IMAGE_ROOTS_ENV, str(inside))
    assert read_image_bytes("img/a.png", root=str(inside)) == b"\x89PNG fake"
    for value, root in [(str(outside / "a.png"), None), ("../secret/a.png", str(inside)), ("img/link.png", str(inside)),
                        (f"file://{outside / 'a.png'}", None), ("s3://bucket/a.png", None)]:
        with pytest.raises(PermissionError, match="outside the allowed image roots"):
            read_image_bytes(value, root=root)
    _, _, unreadable, errors = decode_batch([str(outside / "a.png")], 8)
    assert unreadable.tolist() == [True] and "outside the allowed image roots" in errors[0]  # a row problem, not a crash
    monkeypatch.delenv(IMAGE_ROOTS_ENV)
    assert read_image_bytes(str(outside / "a.png")) == b"\x89PNG fake"  # the CLI and the Python API: unrestricted


def test_the_service_confines_image_reads_while_it_runs(env):
    from cluster_core.features.image import IMAGE_ROOTS_ENV

    roots = os.environ[IMAGE_ROOTS_ENV].split(os.pathsep)
    assert str(env.home) in roots and str(env.outside) not in roots


@pytest.mark.parametrize("target", ["store", "store-wal", "store-dir", "registry", "in-registry", "store-lock"])
def test_the_store_and_the_registry_are_never_an_output(env, target):
    """Regression: an apply spec with output=<the store>, overwrite: true replaced the job store with Parquet."""
    paths = {"store": env.store, "store-wal": Path(f"{env.store}-wal"), "store-dir": env.store.parent,
             "registry": env.registry, "in-registry": env.registry / "mine", "store-lock": Path(f"{env.store}.lock")}
    before = env.store.read_bytes()
    spec = {"kind": "apply", "model": "old-model", "data": "customers", "output": str(paths[target]), "overwrite": True}
    response = env.http.post("/v1/jobs", json=spec)
    assert response.status_code == 422, response.text
    assert response.json()["field"] == "output" and "job store or model registry" in response.json()["message"]
    outputs = env.store.parent / "outputs"  # relative outputs are taken from the output root
    relative = env.http.post("/v1/jobs", json={**spec, "output": os.path.relpath(paths[target], outputs)})
    assert relative.status_code == 403 and relative.json()["field"] == "output"
    train = env.http.post("/v1/jobs", json={**MINIMAL, "output": str(paths[target])})
    assert train.status_code == 422 and train.json()["field"] == "output"
    assert env.store.read_bytes()[:100] == before[:100] and env.raw.get("/healthz").status_code == 200


def test_a_symlink_to_the_store_is_no_way_around(env):
    link = env.home / "innocent"
    if not link.exists():
        link.symlink_to(env.store.parent)
    spec = {"kind": "apply", "model": "old-model", "data": "customers", "output": str(link / "jobs.db"),
            "overwrite": True}
    assert env.http.post("/v1/jobs", json=spec).status_code in (403, 422)


# -- resource exhaustion and malformed bodies --------------------------------------------------------

BILLION_LAUGHS = b"""kind: train
data: customers
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
"""


def test_a_yaml_alias_bomb_is_refused_fast(env):
    started = time.perf_counter()
    response = env.http.post("/v1/jobs", content=BILLION_LAUGHS, headers={"content-type": "application/yaml"})
    assert time.perf_counter() - started < 1.0
    assert response.status_code == 400 and response.json()["error"] == "invalid_yaml"
    assert "alias *a" in response.json()["message"] and "line 4" in response.json()["message"]


@pytest.mark.parametrize("depth", [33, 500, 50_000])
def test_deeply_nested_yaml_is_a_4xx(env, depth):
    body = ("kind: train\ndata: customers\nkinds: " + "[" * depth + "]" * depth + "\n").encode()
    response = env.http.post("/v1/jobs", content=body, headers={"content-type": "application/yaml"})
    assert response.status_code == 400 and "nested more than 32 levels" in response.json()["message"]


@pytest.mark.parametrize("depth", [100, 500, 200_000])
def test_deeply_nested_json_is_a_4xx(env, depth):
    body = b'{"kind": "train", "data": "customers", "kinds": ' + b"[" * depth + b"]" * depth + b"}"
    response = env.http.post("/v1/jobs", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 400 and "nested more than 64 levels" in response.json()["message"]


def test_a_yaml_spec_without_aliases_still_works(env):
    text = b"kind: train\ndata: customers\nalgorithms: [kmeans]\nk: [3]\nkinds: {plan: categorical}\n"
    response = env.http.post("/v1/jobs", content=text, headers={"content-type": "application/yaml"})
    assert response.status_code == 201, response.text
    wait_job(env.http, response.json()["id"])


def test_spec_files_of_the_cli_have_the_same_limits(tmp_path):
    from jobs.specs import load_spec_file

    bomb = tmp_path / "bomb.yaml"
    bomb.write_bytes(BILLION_LAUGHS)
    with pytest.raises(InvalidInputError, match="may not use YAML aliases"):
        load_spec_file(bomb)


@pytest.mark.parametrize("param", ["offset", "after"])
@pytest.mark.parametrize("value", [2**63, 10**30])
def test_cursors_beyond_sqlites_integers_are_422(env, param, value):
    path = "/v1/jobs" if param == "offset" else "/v1/jobs/nope/logs"
    response = env.http.get(path, params={param: value})
    assert response.status_code == 422 and response.json()["field"] == param, response.text
    assert env.http.get(path.replace("nope", "nope"), params={param: 2**63 - 1}).status_code in (200, 404)


# -- auth before any body work; the OpenAPI document behind the token ------------------------------

@pytest.fixture(scope="module")
def locked(tmp_path_factory, dask_client):
    root = tmp_path_factory.mktemp("locked")
    settings = ServiceSettings(store=str(root / "jobs.db"), data_roots=[str(root)], auth_token="s3cret",
                               scheduler=dask_client.scheduler.address)
    with TestClient(create_app(settings)) as raw:
        yield raw


@pytest.mark.parametrize("path", ["/openapi.json", "/docs", "/redoc", "/v1/jobs"])
def test_the_document_and_docs_need_the_token(locked, path):
    response = locked.get(path)
    assert response.status_code == 401 and response.headers["WWW-Authenticate"] == "Bearer"
    assert response.json()["error"] == "unauthorized"
    assert locked.get(path, headers={"Authorization": "Bearer s3cret"}).status_code == 200
    assert locked.get("/healthz").status_code == 200  # probes stay open


@pytest.mark.parametrize("body, media", [(BILLION_LAUGHS, "application/yaml"), (b"[" * 500_000, "application/json"),
                                         (b"x" * 50_000_000, "application/json")], ids=["yaml-bomb", "deep", "huge"])
def test_an_unauthenticated_request_gets_401_before_its_body_is_read(locked, body, media):
    started = time.perf_counter()
    response = locked.post("/v1/jobs", content=body, headers={"content-type": media})
    assert response.status_code == 401 and time.perf_counter() - started < 1.0


def test_the_gate_reads_no_body(locked):
    """The ASGI receive channel is never called for a request without the token."""
    import asyncio
    import threading

    stack = locked.app.build_middleware_stack()
    calls, sent = [], []

    async def receive():
        calls.append(1)
        return {"type": "http.request", "body": BILLION_LAUGHS, "more_body": False}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/v1/jobs", "raw_path": b"/v1/jobs", "query_string": b"",
             "headers": [(b"content-type", b"application/yaml")], "http_version": "1.1", "scheme": "http",
             "server": ("127.0.0.1", 80), "client": ("127.0.0.1", 1), "root_path": "", "app": locked.app}
    # in a thread of its own: a session's browser driver (tests/_browser.py) may keep an event
    # loop running on this one
    runner = threading.Thread(target=lambda: asyncio.run(stack(scope, receive, send)))
    runner.start()
    runner.join(timeout=30)
    assert sent[0]["status"] == 401 and calls == []


# -- the store: unwritable at run time is 503 ---------------------------------------------------------

def test_a_store_that_becomes_unwritable_answers_503_with_retry_after(env):
    store = env.raw.app.state.service.store
    with store._mutex:  # a job queued just before: the dispatcher meets the read-only store when it claims it
        waiting, _ = store.create({**MINIMAL, "name": "queued-before-read-only"})
        store._conn.execute("PRAGMA query_only = ON")  # SQLite now refuses every write: a read-only store
    try:
        time.sleep(1.5)  # the dispatcher polls every second
        response = env.http.post("/v1/jobs", json=MINIMAL)
        assert response.status_code == 503, response.text
        assert response.headers["Retry-After"].isdigit() and response.json()["error"] == "unavailable"
        assert "cannot be written now" in response.json()["message"]
        assert env.http.get("/v1/jobs").status_code == 200  # reads still work
    finally:
        with store._mutex:
            store._conn.execute("PRAGMA query_only = OFF")
    after = env.http.post("/v1/jobs", json={**MINIMAL, "name": "after-503"})
    assert after.status_code == 201
    assert wait_job(env.http, waiting.id, timeout=90)["state"] == "succeeded"  # the runner survived
    assert wait_job(env.http, after.json()["id"], timeout=90)["state"] == "succeeded"


# -- drills with a real `clustra api` process ------------------------------------------------------

def _api_exit(tmp_path: Path, store: Path, *, read_only_mount: Path | None = None) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "clustra.cli", "api", "--port", "0", "--store", str(store),
               "--data-root", str(tmp_path)]
    if read_only_mount is not None and os.geteuid() == 0:  # root writes through file modes: mount it read-only
        mount = f"mount --bind {read_only_mount} {read_only_mount} && mount -o remount,bind,ro {read_only_mount}"
        command = ["unshare", "-m", "sh", "-c", f"{mount} && exec \"$@\"", "sh", *command]
    env = dict(os.environ, CLUSTRA_DEVICE="cpu")
    env.pop("CLUSTRA_AUTH_TOKEN", None)
    return subprocess.run(command, capture_output=True, text=True, timeout=60, env=env, start_new_session=True)


def _good_store(path: Path) -> bytes:
    from jobs.store import JobStore

    store = JobStore(path)
    for i in range(200):
        store.create({**MINIMAL, "name": f"job-{i}" * 20})
    store.close()
    for side in (f"{path}-wal", f"{path}-shm"):
        if os.path.exists(side):
            os.remove(side)
    return path.read_bytes()


def _foreign(path: Path) -> None:
    import sqlite3

    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL)")
        conn.execute("INSERT INTO invoices VALUES (1, 9.5)")


@pytest.mark.parametrize("case", ["garbage", "truncated", "header-only", "foreign", "directory", "read-only"])
def test_a_bad_store_stops_clustra_api_with_one_line(tmp_path, case):
    store = tmp_path / "state" / "jobs.db"
    store.parent.mkdir()
    mount = None
    if case == "garbage":
        store.write_bytes(b"this is not a database at all" * 100)
    elif case == "truncated":
        store.write_bytes(_good_store(store)[:6000])
    elif case == "header-only":
        store.write_bytes(_good_store(store)[:100])
    elif case == "foreign":
        _foreign(store)
    elif case == "directory":
        store.mkdir()
    else:
        _good_store(store)
        os.chmod(store, 0o444)
        os.chmod(store.parent, 0o555)
        mount = store.parent
    before = store.read_bytes() if store.is_file() else None
    try:
        result = _api_exit(tmp_path, store, read_only_mount=mount)
    finally:
        os.chmod(store.parent, 0o755)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1 and lines[0].startswith("clustra: error: the job store") and "Traceback" not in result.stderr
    assert str(store) in lines[0] and "choose another --store" in lines[0]
    if before is not None:
        assert store.read_bytes() == before  # never "repaired" or overwritten
    if case == "foreign":
        assert "other tables than a Clustra job store" in lines[0]
    if case == "read-only":
        assert "read-only" in lines[0]


@pytest.mark.dask_cluster
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_cancelling_a_long_job_frees_the_worker_for_the_next(tmp_path):
    """Regression: a cancelled job's task kept the only worker busy (858 s) and blocked the next job."""
    data = tmp_path / "data"
    write_hive(make_mixed_frame(300, seed=8), data / "customers", "region")
    make_mixed_frame(60_000, seed=9).to_parquet(data / "big.parquet", index=False)
    api = ApiProcess(tmp_path, "--store", str(tmp_path / "state" / "jobs.db"), "--data-root", str(data),
                     "--workers", "1", "--max-concurrent-jobs", "1")
    try:
        api.wait_ready()
        long_spec = {"kind": "train", "data": "big.parquet", "algorithms": ["kmeans"], "k": [8],
                     "kmeans_n_init": 1000, "max_iter": 100_000, "name": "huge-but-valid"}
        long_job = api.http.post("/v1/jobs", json=long_spec)
        assert long_job.status_code == 201, long_job.text
        long_id = long_job.json()["id"]
        wait_for(lambda: (api.http.get(f"/v1/jobs/{long_id}").json()["step"] or "").startswith("training"), 120,
                 "the long job to train")
        time.sleep(2.0)  # the model task is executing on the worker
        assert api.http.post(f"/v1/jobs/{long_id}/cancel").status_code == 200
        assert wait_job(api.http, long_id, timeout=30)["state"] == "cancelled"
        started = time.monotonic()
        small = api.http.post("/v1/jobs", json={**MINIMAL, "name": "next"}).json()
        done = wait_job(api.http, small["id"], timeout=90)
        assert done["state"] == "succeeded", done
        assert time.monotonic() - started < 90
        texts = [line["text"] for line in api.http.get(f"/v1/jobs/{long_id}/logs").json()["lines"]]
        assert any(t.startswith("restarted Dask worker(s)") for t in texts), texts
        assert api.http.get("/healthz").json()["dask"] == "ready"
    finally:
        api.stop()
    shutil.rmtree(tmp_path / "state", ignore_errors=True)
