"""A lake moved or copied to another folder works there: every path the lake records about its
own files is relative to its root (the DuckDB views, source_file, manifests, model specs, the
demo's sources.yaml), so `synpref tables`, `synpref sql`, plain DuckDB from the lake root and
a rerun that reuses the finished work all work with the original folder gone."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from dagster_project.cli import main
from synpref.demo import generate_demo
from synpref.lake.duck import refresh_views
from synpref.raw.ingest import ingest_sources
from synpref.lake import Lake
from synpref.silver.pool import build_silver
from synpref.raw.sources import load_sources, relocate

VIEWS = ("raw_pairs", "ingest_quarantine", "silver_decisions", "silver_pairs", "silver_quarantine", "quarantine")


def _build(lake: Lake, pairs: int = 120) -> None:
    """What `synpref demo` does first, without Dagster: demo files landed in the lake, its
    sources.yaml beside them in the lake, ingest, silver, the lake database's views."""
    landing = lake.root / "landing" / "demo"
    relocate(generate_demo(landing, pairs=pairs, seed=3, workers=0).sources_file, lake.default_sources_file)
    _ingest_and_silver(lake)
    refresh_views(lake)


def _ingest_and_silver(lake: Lake):
    config = load_sources(lake.default_sources_file)
    return ingest_sources(lake, config), build_silver(lake, config.decontamination)


def _tables(root: Path) -> dict[str, list[str]]:
    """`synpref tables`: table -> [layer, rows, files]."""
    result = CliRunner().invoke(main, ["tables", "--lake", str(root)])
    assert result.exit_code == 0, result.output
    return {line.split()[0]: line.split()[1:] for line in result.output.splitlines()
            if line.split() and line.split()[0] in VIEWS}


def _view_counts(database: str) -> dict[str, int]:
    con = duckdb.connect(database, read_only=True)
    try:
        return {v: con.execute(f"select count(*) from {v}").fetchone()[0] for v in VIEWS}
    finally:
        con.close()


def _view_sql(database: Path) -> list[str]:
    con = duckdb.connect(str(database), read_only=True)
    try:
        return [sql for (sql,) in con.execute("select sql from duckdb_views() where not internal").fetchall()]
    finally:
        con.close()


def naming(root: Path, old: str) -> list[str]:
    """The lake's files that hold the text `old`: Parquet by value (its strings are compressed),
    the DuckDB file by its views' definitions, anything else byte for byte; not logs/, the
    commands' logs, which are history as it was written (paths included) and read by nothing."""
    found = []
    for path in sorted(p for p in root.rglob("*") if p.is_file() and p.relative_to(root).parts[0] != "logs"):
        if path.suffix == ".parquet":
            text = json.dumps(pq.read_table(path).to_pylist(), default=str, ensure_ascii=False)
            hit = old in text
        elif path.suffix == ".duckdb":
            hit = any(old in sql for sql in _view_sql(path))
        else:
            hit = old.encode() in path.read_bytes()
        if hit:
            found.append(str(path.relative_to(root)))
    return found


@pytest.fixture
def moved(tmp_path, monkeypatch):
    """A lake built in one folder, then copied to another and the original deleted; with what
    was seen at the original: `synpref tables`, the views' counts (from the lake root), its root."""
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    lake = Lake.at(tmp_path / "first place" / "lake")
    _build(lake)
    before = _tables(lake.root)
    monkeypatch.chdir(lake.root)
    counts = _view_counts("synpref.duckdb")
    monkeypatch.chdir(tmp_path)
    new = Lake.at(tmp_path / "second place" / "lake")
    shutil.copytree(lake.root, new.root, symlinks=True)  # keeps modification times, as cp -a and mv do
    shutil.rmtree(tmp_path / "first place")
    return new, before, counts, str(lake.root)


def test_a_moved_lake_answers_plain_duckdb_from_its_root(moved, monkeypatch):
    new, _, counts, old = moved
    assert counts["raw_pairs"] == counts["silver_decisions"] > counts["silver_pairs"] > 0 < counts["quarantine"]
    monkeypatch.chdir(new.root)  # `cd <lake> && duckdb synpref.duckdb`, views as the first place left them
    assert _view_counts("synpref.duckdb") == counts
    assert all("read_parquet('raw/" in sql or "read_parquet('silver/" in sql or " quarantine " in sql
               for sql in _view_sql(new.db_path)), _view_sql(new.db_path)


def test_the_cli_works_on_a_moved_lake_from_any_folder(moved, tmp_path, monkeypatch):
    new, before, counts, old = moved
    monkeypatch.chdir(tmp_path)  # not the lake root
    assert _tables(new.root) == before
    result = CliRunner().invoke(main, ["sql", "select count(*) as n from silver_pairs", "--format", "csv",
                                       "--lake", str(new.root)])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == ["n", str(counts["silver_pairs"])]
    result = CliRunner().invoke(main, ["sql", "select stage, count(*) as n from quarantine group by all order by 1",
                                       "--format", "json", "--lake", str(new.root)])
    assert result.exit_code == 0, result.output
    by_stage = {r["stage"]: r["n"] for r in json.loads(result.output)}
    assert sum(by_stage.values()) == counts["quarantine"]
    assert not Path(old).exists()


def test_nothing_in_a_moved_lake_names_its_old_folder(moved):
    new, _, _, old = moved
    assert naming(new.root, old) == []
    sources = new.default_sources_file.read_text()
    assert "landing/demo/chat.jsonl.gz" in sources and str(new.root) not in sources
    con = duckdb.connect()
    files = {f for (f,) in con.execute("select distinct source_file from read_parquet(?)",
                                       [new.table_glob("raw_pairs")]).fetchall()}
    con.close()
    assert files == {f"landing/demo/{name}" for name in ("chat.jsonl.gz", "hh.jsonl", "labelled.json",
                                                         "prompts.parquet")}


def test_a_rerun_on_a_moved_lake_reuses_its_work(moved):
    new, before, _, old = moved
    stamps = {p: p.stat().st_mtime_ns for p in new.root.rglob("*.parquet")}
    ingest, silver = _ingest_and_silver(new)
    assert ingest.files and all(f.reused for f in ingest.files) and not ingest.removed_parts
    assert silver.reused
    assert {p: p.stat().st_mtime_ns for p in new.root.rglob("*.parquet")} == stamps  # nothing rewritten
    refresh_views(new)
    assert _tables(new.root) == before
    assert naming(new.root, old) == [] and not Path(old).exists()


@pytest.mark.slow
def test_models_and_embeddings_of_a_moved_lake_are_reused(tmp_path, tiny_rm_config_file):
    """A reward model trained from another model of the lake (as the gold RM starts from the best
    round RM) records that backbone as <lake>/...: the moved lake finds both models trained, and
    every pair embedded."""
    from models.embedder import Embedder, EmbedderConfig
    from models.launch import LaunchConfig
    from models.train_config import load_config, make_config
    from synpref.rm import rm_models
    from synpref.silver import vectors
    from synpref.silver.embeddings import embed_pending
    from synpref.rm.rm_training import train_reward_model

    pairs, cpu = "select pair_id, conversation, chosen, rejected, source from silver_pairs", LaunchConfig()
    base_config = load_config(tiny_rm_config_file)
    embedder = Embedder(EmbedderConfig(batch_size=16))

    def train(lake: Lake):
        base = train_reward_model(lake, "base", pairs, base_config, launch=cpu, log=lambda msg: None)
        start = make_config(base_config, backbone=str(rm_models.resolve(lake, "base").path))
        return base, train_reward_model(lake, "from-base", pairs, start, launch=cpu, log=lambda msg: None)

    lake = Lake.at(tmp_path / "first" / "lake")
    _build(lake)
    assert embed_pending(lake, lambda: embedder, vectors.IndexConfig()).embedded > 0
    base, derived = train(lake)
    assert (base.status, derived.status) == ("trained", "trained")
    spec = json.loads((derived.version_dir / "spec.json").read_text())
    assert spec["backbone"] == spec["config"]["backbone"] == "<lake>/models/rm/base/v001/best"
    metrics = json.loads((derived.version_dir / "metrics.json").read_text())
    assert metrics["backbone"] == "<lake>/models/rm/base/v001/best"

    new = Lake.at(tmp_path / "second" / "lake")
    shutil.copytree(lake.root, new.root, symlinks=True)
    shutil.rmtree(tmp_path / "first")
    assert naming(new.root, str(lake.root)) == []
    base, derived = train(new)
    assert (base.status, derived.status) == ("unchanged", "unchanged")
    assert derived.version_dir == new.root / "models" / "rm" / "from-base" / "v001"
    again = embed_pending(new, lambda: embedder, vectors.IndexConfig())
    assert again.embedded == 0 and again.total == vectors.open_table(new).count_rows() > 0
    assert not (tmp_path / "first").exists()


@pytest.mark.slow
def test_a_copy_of_the_demo_lake_names_nothing_of_the_original(demo, tmp_path, monkeypatch):
    """The session's demo lake (both stages: models, manifests, LanceDB, the export), copied: no
    file of the copy names the original's folder, the copy's views and `synpref sql` read the
    copy, and its manifests and model specs find the copy's own files."""
    from synpref.rm import crossfit, rm_models
    from synpref.lake.duck import table_counts
    from synpref.rm.rm_training import _fingerprint

    original, _, _ = demo  # shared: read only
    copy = Lake.at(tmp_path / "copy")
    shutil.copytree(original.root, copy.root, symlinks=True)
    assert list((copy.root / "logs").glob("demo-*.log"))  # there, and left out of the search
    assert naming(copy.root, str(original.root)) == []
    rows = {table: n for table, _, n, _ in table_counts(copy)}
    monkeypatch.chdir(copy.root)
    con = duckdb.connect("synpref.duckdb", read_only=True)
    try:
        assert {t: con.execute(f"select count(*) from {t}").fetchone()[0] for t in rows} == rows
    finally:
        con.close()
    result = CliRunner().invoke(main, ["sql", "select count(*) as n from filtered_pairs", "--format", "csv",
                                       "--lake", str(copy.root)])
    assert result.exit_code == 0 and result.output.splitlines() == ["n", str(rows["filtered_pairs"])], result.output
    for name, version, complete in rm_models.list_models(copy):
        spec = json.loads((rm_models.model_home(copy, name) / version / "spec.json").read_text())
        assert _fingerprint(spec, copy) == spec["fingerprint"]  # a rerun would find it
        if complete:
            assert rm_models.resolve(copy, name, version).path.is_relative_to(copy.root)
    _, members = crossfit.member_refs(copy)
    assert members and all(ref.path.is_relative_to(copy.root) for _, _, ref in members)
    ingest, silver = _ingest_and_silver(copy)
    assert all(f.reused for f in ingest.files) and silver.reused
