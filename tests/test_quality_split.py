"""The quality benchmark's split and flip injection (benchmarks/quality_split.py), on real DuckDB."""

from __future__ import annotations

import sys
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from synpref.lake.duck import lit
from conftest import run_stages, write_jsonl, write_sources
from synpref.lake import Lake
from synpref.silver.pool import build_silver
from synpref.raw.sources import load_sources

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks import quality_split as qs  # noqa: E402
from benchmarks.quality_metrics import flip_metrics  # noqa: E402

SIZES = qs.SplitSizes(gold=30, test=50, pool=100)


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> tuple[Lake, Path]:
    tmp_path = tmp_path_factory.mktemp("quality_split")
    lake = Lake.at(tmp_path / "base")
    write_jsonl(tmp_path / "a.jsonl", [{"prompt": f"Question {i}?", "chosen": f"Good answer {i}.",
                                        "rejected": f"Bad answer {i}."} for i in range(200)])
    sources = write_sources(tmp_path / "s.yaml", [{"name": "a", "path": "a.jsonl", "shape": "prompt_chosen_rejected"}])
    run_stages(lake, sources)
    return lake, sources


def _split(lake: Lake, seed: int) -> tuple[duckdb.DuckDBPyConnection, dict[str, set[str]]]:
    con = duckdb.connect()
    qs.split_pairs(con, lake.table_glob("silver_pairs"), SIZES, seed)
    found: dict[str, set[str]] = {}
    for pid, split in con.execute("select pair_id, split from split").fetchall():
        found.setdefault(split, set()).add(pid)
    return con, found


def test_split_is_seeded_disjoint_and_sized(base):
    lake, _ = base
    _, first = _split(lake, seed=0)
    _, again = _split(lake, seed=0)
    _, other = _split(lake, seed=1)
    assert first == again and first != other
    assert {k: len(v) for k, v in first.items()} == {"gold": 30, "test": 50, "pool": 100}
    assert not (first["gold"] & first["test"] or first["gold"] & first["pool"] or first["test"] & first["pool"])
    with pytest.raises(ValueError, match="cannot split"):
        qs.split_pairs(duckdb.connect(), lake.table_glob("silver_pairs"), qs.SplitSizes(100, 100, 100), 0)


@pytest.mark.parametrize("rate,flips", [(0.0, 0), (0.1, 10), (0.25, 25), (0.4, 40), (0.125, 13)])
def test_flip_count_is_exact(rate, flips):
    assert qs.flip_count(100, rate) == flips


def test_noisy_lake_has_exact_flips_gold_untouched_and_no_test_pair(base, tmp_path):
    lake, sources = base
    con, split = _split(lake, seed=0)
    flipped_by_rate = {}
    for rate in (0.1, 0.25):
        noisy = Lake.at(tmp_path / f"noisy-{rate}")
        assert qs.write_noisy_raw(con, lake.table_glob("raw_pairs"), noisy, rate) == round(100 * rate)
        build_silver(noisy, load_sources(sources).decontamination)
        truth = con.execute(f"select split, injected_flip, count(*) from ({qs.truth_sql(noisy, lake.table_glob('silver_pairs'))}) "
                            f"group by all").fetchall()
        counts = {(s, f): n for s, f, n in truth}
        assert counts == {("gold", False): 30, ("pool", False): 100 - round(100 * rate), ("pool", True): round(100 * rate)}
        noisy_silver = lit(noisy.table_glob('silver_pairs'))
        (silver,) = con.execute(f"select count(*) from read_parquet({noisy_silver})").fetchone()
        assert silver == 130  # gold + pool, every raw row in silver: the counts reconcile
        ids = {pid for (pid,) in con.execute(f"select pair_id from read_parquet({noisy_silver})").fetchall()}
        assert not ids & split["test"]
        flipped_by_rate[rate] = {b for (b,) in con.execute(
            f"select base_pair_id from ({qs.truth_sql(noisy, lake.table_glob('silver_pairs'))}) where injected_flip").fetchall()}
        assert flipped_by_rate[rate] <= split["pool"]
    assert flipped_by_rate[0.1] < flipped_by_rate[0.25]  # a lower level's flips are among a higher one's
    out = tmp_path / "test.parquet"
    assert qs.write_test_set(con, lake.table_glob("silver_pairs"), out) == 50


def test_flip_metrics(tmp_path):
    # 4 flips in 10 pairs; the filter keeps 5 (1 flip among them), drops 3, recycles 2 (1 a real flip)
    rows = [(True, "kept"), (True, "dropped"), (True, "dropped"), (True, "flipped"), (False, "flipped"),
            (False, "dropped"), (False, "kept"), (False, "kept"), (False, "kept"), (False, "kept")]
    path = tmp_path / "pool.parquet"
    pq.write_table(pa.table({"pair_id": [str(i) for i in range(10)], "injected_flip": [r[0] for r in rows],
                             "p_best": [0.6] * 10, "p_gold": [0.6] * 10, "status": [r[1] for r in rows],
                             "reason": ["x"] * 10}), path)
    m = flip_metrics(str(path))
    assert (m["injected"], m["kept"], m["detected"], m["recycled"]) == (4, 5, 5, 2)
    assert m["kept_flip_rate"] == pytest.approx(0.2) and m["retention"] == pytest.approx(0.5)
    assert m["precision"] == pytest.approx(3 / 5) and m["recall"] == pytest.approx(3 / 4)
    assert m["recycle_precision"] == pytest.approx(0.5)
    assert m["recycled_set_flip_rate"] == pytest.approx(2 / 7)
