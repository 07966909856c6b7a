"""Real Dagster: the definitions load, the assets materialise with metadata, failures name files,
and `dagster dev` serves the assets."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import dagster as dg

from conftest import dagster_resources, lake_stages, write_jsonl, write_sources
from dagster_project.definitions import defs
from synpref.lake.duck import connect as duck_connect
from synpref.lake import TABLE_LAYERS

BIN = Path(sys.executable).parent
RECORDS = [{"prompt": f"q{i}", "chosen": f"good {i}", "rejected": f"bad {i}"} for i in range(30)]


def _materialize(lake, sources_file, selection=lake_stages()):
    return dg.materialize(list(defs.assets), selection=selection, raise_on_error=False,
                          instance=dg.DagsterInstance.ephemeral(), resources=dagster_resources(lake, sources_file))


def _sources(tmp_path):
    write_jsonl(tmp_path / "a.jsonl", RECORDS + RECORDS[:5])
    with (tmp_path / "a.jsonl").open("a") as f:
        f.write("{broken\n")
    return write_sources(tmp_path / "s.yaml", [{"name": "a", "path": "a.jsonl", "shape": "prompt_chosen_rejected"}])


def test_definitions_validate():
    out = subprocess.run([str(BIN / "dagster"), "definitions", "validate", "-m", "dagster_project.definitions"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "passed validation" in out.stderr + out.stdout


def test_every_lake_table_is_one_asset_grouped_by_its_layer():
    specs = list(defs.resolve_all_asset_specs())
    keys = [spec.key.to_user_string() for spec in specs]
    groups = {spec.key.to_user_string(): spec.group_name for spec in specs}
    for table, layer in TABLE_LAYERS.items():
        assert keys.count(table) == 1, f"{table}: {keys.count(table)} assets"
        assert groups[table] == layer, f"{table} is in group {groups[table]}, its layer is {layer}"
    # the other assets (models, the embeddings, the label journal) sit in a layer's group too
    assert set(groups.values()) == set(TABLE_LAYERS.values()) == {"raw", "silver", "gold", "models", "filtered"}
    # one writer per table: no asset but the table's own lists it among its outputs
    graph = defs.resolve_asset_graph()
    for table in TABLE_LAYERS:
        node = graph.get(dg.AssetKey(table))
        assert node.key == dg.AssetKey(table) and not node.is_external


def test_the_stages_are_named_jobs():
    from dagster_project.jobs import JOBS

    assert {"ingest_and_clean", "stage1_round", "stage1_round_finish", "stage2_models", "stage2", "export"} <= set(JOBS)
    for name in JOBS:
        job = defs.resolve_job_def(name)
        assert job.name == name and job.asset_layer.executable_asset_keys, name


def test_materialize_everything_with_metadata_and_views(lake, tmp_path):
    result = _materialize(lake, _sources(tmp_path))
    assert result.success
    meta = {m.asset_key.to_user_string(): m.metadata for m in result.asset_materializations_for_node("ingest")}
    meta |= {m.asset_key.to_user_string(): m.metadata for m in result.asset_materializations_for_node("silver")}
    assert meta["raw_pairs"]["dagster/row_count"].value == 35
    assert meta["ingest_quarantine"]["dagster/row_count"].value == 1
    assert "invalid_json" in meta["ingest_quarantine"]["by_reason"].value
    assert meta["silver_pairs"]["dagster/row_count"].value == 30
    assert "duplicate | 5" in meta["silver_quarantine"]["by_reason"].value
    assert "good 0" in meta["silver_pairs"]["preview"].value
    # the lake database has a view per table, and the quarantine union
    con = duck_connect(lake, str(lake.db_path), read_only=True)  # its views read paths relative to the root
    try:
        counts = dict(con.execute("select stage, count(*) from quarantine group by stage").fetchall())
        assert counts == {"ingest": 1, "silver": 5}
        assert con.execute("select count(*) from silver_pairs").fetchone()[0] == 30
    finally:
        con.close()


def test_unreadable_file_fails_the_ingest_asset_naming_the_file(lake, tmp_path):
    (tmp_path / "x.jsonl.gz").write_bytes(b"not gzip")
    src = write_sources(tmp_path / "s.yaml", [{"name": "x", "path": "x.jsonl.gz", "shape": "hh_transcript"}])
    result = _materialize(lake, src)
    assert not result.success
    failures = [e for e in result.all_events if e.is_step_failure]
    assert str(tmp_path / "x.jsonl.gz") in failures[0].step_failure_data.error.message


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_dagster_dev_serves_the_assets(lake, tmp_path):
    assert _materialize(lake, _sources(tmp_path)).success
    port = _free_port()
    env = {**os.environ, "SYNPREF_LAKE": str(lake.root), "DAGSTER_HOME": str(tmp_path / "home")}
    (tmp_path / "home").mkdir()
    proc = subprocess.Popen([str(BIN / "synpref"), "ui", "--port", str(port), "--lake", str(lake.root)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    query = json.dumps({"query": "{ assetNodes { assetKey { path } groupName } }"}).encode()
    try:
        deadline = time.time() + 120
        while True:
            try:
                req = urllib.request.Request(f"http://127.0.0.1:{port}/graphql", data=query,
                                             headers={"Content-Type": "application/json"})
                with urllib.request.urlopen(req, timeout=5) as resp:
                    nodes = json.load(resp)["data"]["assetNodes"]
                if nodes:
                    break
            except (OSError, KeyError, TypeError):
                pass
            assert proc.poll() is None, "dagster dev exited"
            assert time.time() < deadline, "dagster dev did not answer in time"
            time.sleep(1)
        served = {tuple(n["assetKey"]["path"]): n["groupName"] for n in nodes}
        assert served[("silver_pairs",)] == "silver" and served[("raw_pairs",)] == "raw"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
