"""Assignment in the ingress replica (serving/inprocess.py): same answers as the model deployment's code,
merged calls only under load, LRU of loaded versions -- no Ray running."""

from __future__ import annotations

import asyncio
import json
import threading
import time

import pandas as pd
import pytest

from _serving_helpers import FEATURE_COLUMNS, json_records, record as _record, train_run
from cluster_core.registry import ModelRegistry
from conftest import make_mixed_frame
from serving.assign import ServedModel
from serving.inprocess import Coalescer, InProcessAssigner
from serving.records import write_arrow


@pytest.fixture(scope="module")
def registry(tmp_path_factory) -> ModelRegistry:
    root = tmp_path_factory.mktemp("serving-inprocess")
    _, run = train_run(root, algorithms=("kmeans", "gmm"))
    registry = ModelRegistry(root / "registry")
    registry.publish(run / "models" / "kmeans-k3", "customers")
    registry.publish(run / "models" / "gmm-k3", "mixture")
    registry.publish(run / "models" / "kmeans-k3", "spare")
    return registry


@pytest.fixture(scope="module")
def rows() -> pd.DataFrame:
    return make_mixed_frame(30, seed=5)[FEATURE_COLUMNS]


def test_lone_calls_run_at_once_and_calls_under_load_are_merged():
    calls: list[list[int]] = []
    release = threading.Event()

    def double(items: list[int]) -> list[int]:
        calls.append(list(items))
        if len(calls) == 1:
            release.wait(5)  # the first call is slow: the next requests queue behind it
        return [2 * item for item in items]

    async def scenario() -> list[int]:
        coalescer = Coalescer(double, max_batch_size=3)
        first = asyncio.create_task(coalescer.submit(0))
        await asyncio.sleep(0.05)
        rest = [asyncio.create_task(coalescer.submit(i)) for i in range(1, 6)]
        await asyncio.sleep(0.05)
        release.set()
        return await asyncio.gather(first, *rest)

    started = time.perf_counter()
    assert asyncio.run(scenario()) == [0, 2, 4, 6, 8, 10]
    assert time.perf_counter() - started < 4
    assert calls == [[0], [1, 2, 3], [4, 5]]  # no wait for a lone call; at most max_batch_size merged


def test_a_failing_call_fails_its_requests_only():
    def picky(items: list[int]) -> list[int]:
        if 13 in items:
            raise RuntimeError("13 is unlucky")
        return items

    async def scenario():
        coalescer = Coalescer(picky, max_batch_size=1)
        return await asyncio.gather(coalescer.submit(1), coalescer.submit(13), coalescer.submit(2), return_exceptions=True)

    one, bad, two = asyncio.run(scenario())
    assert (one, two) == (1, 2) and isinstance(bad, RuntimeError) and "unlucky" in str(bad)


def test_answers_are_the_model_deployments(registry, rows):
    assigner = InProcessAssigner(registry, max_models=4)
    records = json_records(rows)

    async def scenario():
        ref_k, ref_g = registry.resolve("customers"), registry.resolve("mixture")
        singles = await asyncio.gather(*(assigner.assign_records(ref_k, [r]) for r in records))
        mixture = await assigner.assign_records(ref_g, records)
        arrow = await assigner.assign_arrow(ref_k, write_arrow(rows))
        explained = await assigner.explain_records(ref_k, records[:3])
        return singles, mixture, arrow, explained

    singles, mixture, arrow, explained = asyncio.run(scenario())
    kmeans = ServedModel(registry.load("customers"), registry.resolve("customers"))
    gmm = ServedModel(registry.load("mixture"), registry.resolve("mixture"))
    expected = json.loads(kmeans.assign_records(records))
    assert [json.loads(body)[0] for _, body, _ in singles] == expected
    assert {(status, n) for status, _, n in singles} == {(200, 1)}
    assert mixture == (200, gmm.assign_records(records), len(records))
    assert arrow == (200, kmeans.assign_arrow(write_arrow(rows)), len(rows))
    assert explained[0] == 200 and "runner_up" in json.loads(explained[1])[0]


def test_bad_requests_get_the_error_bodies_and_spare_their_neighbours(registry):
    assigner = InProcessAssigner(registry, max_models=4)
    ref = registry.resolve("customers")

    async def scenario():
        return await asyncio.gather(assigner.assign_records(ref, [_record()]),
                                    assigner.assign_records(ref, [_record(spend="lots")]),
                                    assigner.assign_arrow(ref, b"\x00\x01"))

    good, bad, not_arrow = asyncio.run(scenario())
    assert good[0] == 200
    assert bad[0] == 422 and json.loads(bad[1])["error"] == "invalid_input" and "'lots'" in json.loads(bad[1])["message"]
    assert not_arrow[0] == 400 and json.loads(not_arrow[1])["error"] == "bad_request"


def test_an_unreadable_version_is_409_and_not_kept(registry, tmp_path):
    import shutil

    from cluster_core.registry import ModelRef

    copy = ModelRegistry(tmp_path / "registry")
    shutil.copytree(registry.local_dir("spare", 1), tmp_path / "spare")
    copy.publish(tmp_path / "spare", "broken")
    estimator = copy.local_dir("broken", 1) / "estimator.json"
    saved = estimator.read_bytes()
    estimator.unlink()
    assigner = InProcessAssigner(copy, max_models=2)
    status, body, n = asyncio.run(assigner.assign_records(ModelRef("broken", 1), [_record()]))
    assert (status, n) == (409, 0) and json.loads(body)["error"] == "artifact_unavailable" and "estimator.json" in body.decode()
    estimator.write_bytes(saved)  # a failed load is not cached: the repaired version is served
    assert asyncio.run(assigner.assign_records(ModelRef("broken", 1), [_record()]))[0] == 200


def test_least_recently_used_versions_are_unloaded(registry):
    assigner = InProcessAssigner(registry, max_models=2)

    async def use(*names: str) -> None:
        for name in names:
            assert (await assigner.assign_records(registry.resolve(name), [_record()]))[0] == 200

    asyncio.run(use("customers", "mixture", "customers", "spare"))
    assert list(assigner._models) == ["customers/1", "spare/1"]
    assigner.set_batch_sizes(5, 2)
    assert {(m.records.max_batch_size, m.arrow.max_batch_size) for m in assigner._models.values()} == {(5, 2)}


# -- remembered feature rows (serving/memo.py) ----------------------------------------------
def test_remembered_rows_give_the_featurizers_answers(registry):
    from serving.memo import MemoizedFeaturizer

    fresh = registry.load("customers")  # not wrapped: the reference
    served = ServedModel(registry.load("customers"), registry.resolve("customers"))
    wrapped = [f for f in served.model.pipeline.featurizers_ if isinstance(f, MemoizedFeaturizer)]
    assert {f.kind for f in wrapped} == {"categorical", "boolean"}
    frame = make_mixed_frame(80, seed=21)[FEATURE_COLUMNS]
    frame["is_member"] = frame["is_member"].astype(object)
    frame.loc[[3, 7], "plan"] = None
    frame.loc[5, "is_member"] = None
    frame.loc[9, "plan"] = "never-seen-plan"
    for start in range(0, 80, 7):  # small frames, mostly values seen before
        part = frame.iloc[start:start + 7].reset_index(drop=True)
        assert served.featurize(part).tobytes() == fresh.featurize(part).tobytes()
    assert all(0 < len(f._rows) <= 8 for f in wrapped)
    mixed = pd.DataFrame({"plan": ["pro", 1, 1.0, True, None, float("nan")]})
    plan = next(f for f in wrapped if f.column == "plan")
    reference = next(f for f in fresh.pipeline.featurizers_ if f.column == "plan")
    for i in range(len(mixed)):  # True, 1 and 1.0 are different labels; each answered as the featurizer does
        assert plan.transform(mixed.iloc[[i]]).tobytes() == reference.transform(mixed.iloc[[i]]).tobytes()
    big = make_mixed_frame(200, seed=3)[FEATURE_COLUMNS]  # bulk frames: one featurizer call, nothing remembered
    before = {f.column: len(f._rows) for f in wrapped}
    assert served.featurize(big).tobytes() == fresh.featurize(big).tobytes()
    assert {f.column: len(f._rows) for f in wrapped} == before


def test_a_lone_small_request_runs_on_the_event_loop_and_others_in_a_worker_thread():
    threads: list[list[int]] = []

    def record_thread(items: list[int]) -> list[int]:
        threads.append([threading.get_ident()] * len(items))
        return items

    async def scenario() -> tuple[int, list[int]]:
        loop_thread = threading.get_ident()
        coalescer = Coalescer(record_thread, max_batch_size=8)
        assert await coalescer.submit(1, inline=True) == 1
        assert await coalescer.submit(2) == 2
        assert await asyncio.gather(coalescer.submit(3), coalescer.submit(4, inline=True)) == [3, 4]
        return loop_thread

    loop_thread = asyncio.run(scenario())
    assert threads[0] == [loop_thread]  # inline and idle: no thread hop
    assert threads[1][0] != loop_thread  # not inline: a worker thread
    assert len(threads) == 3 and len(threads[2]) == 2 and threads[2][0] != loop_thread  # busy: merged, in a thread


def test_the_assigner_runs_lone_small_requests_inline(registry):
    from serving import inprocess

    assigner = InProcessAssigner(registry, max_models=4)
    ref = registry.resolve("customers")
    seen: list[bool] = []

    async def scenario() -> None:
        loaded = await assigner._get(ref)
        call = loaded.records.call
        loop_thread = threading.get_ident()
        loaded.records.call = lambda items: seen.append(threading.get_ident() == loop_thread) or call(items)
        few, many = [_record()] * inprocess.INLINE_MAX_RECORDS, [_record()] * (inprocess.INLINE_MAX_RECORDS + 1)
        assert loaded.served.cheap_records  # numeric, boolean, categorical and datetime columns
        assert (await assigner.assign_records(ref, few, alone=True))[0] == 200
        assert (await assigner.assign_records(ref, many, alone=True))[0] == 200
        assert (await assigner.assign_records(ref, few, alone=False))[0] == 200
        loaded.served.cheap_records = False  # as for text, image or series features
        assert (await assigner.assign_records(ref, few, alone=True))[0] == 200

    asyncio.run(scenario())
    assert seen == [True, False, False, False]


def test_remembered_rows_of_arrow_tables_give_the_featurizers_answers(registry):
    import pyarrow as pa

    from serving.memo import MemoizedFeaturizer

    fresh = registry.load("customers")  # not wrapped: the reference
    served = ServedModel(registry.load("customers"), registry.resolve("customers"))
    wrapped = [f for f in served.model.pipeline.featurizers_ if isinstance(f, MemoizedFeaturizer)]
    frame = make_mixed_frame(60, seed=22)[FEATURE_COLUMNS]
    frame.loc[[2, 8], "plan"] = None
    frame.loc[11, "plan"] = "never-seen-plan"
    table = pa.Table.from_pandas(frame, preserve_index=False)
    member = table.column_names.index("is_member")
    variants = [
        table,
        table.set_column(table.column_names.index("plan"), "plan", table.column("plan").dictionary_encode()),
        table.set_column(member, "is_member", pa.array([None if i % 9 == 0 else bool(v) for i, v in enumerate(frame["is_member"])])),
        table.set_column(member, "is_member", pa.array(frame["is_member"].astype(int).tolist(), pa.int8())),
    ]
    for variant in variants:
        for start in range(0, 60, 6):  # small tables, mostly values seen before (in another type too)
            part = variant.slice(start, 6)
            assert served.featurize(part).tobytes() == fresh.featurize(part).tobytes()
    assert all(any(key[0] == "arrow" for key in f._rows) for f in wrapped)
    before = {f.column: len(f._rows) for f in wrapped}
    assert served.featurize(variants[0]).tobytes() == fresh.featurize(variants[0]).tobytes()  # 60 rows: remembered too
    big = pa.Table.from_pandas(make_mixed_frame(200, seed=3)[FEATURE_COLUMNS], preserve_index=False)
    assert served.featurize(big).tobytes() == fresh.featurize(big).tobytes()  # bulk: one call, nothing remembered
    assert {f.column: len(f._rows) for f in wrapped} == before
