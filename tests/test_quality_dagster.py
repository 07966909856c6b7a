"""In a real Dagster run, a failed blocking check stops the assets downstream; a warning does not."""

from __future__ import annotations

import json
import shutil

import dagster as dg
import pytest

import expectations as suites
from conftest import dagster_resources, lake_stages, write_jsonl, write_sources
from dagster_project.definitions import defs
from dagster_project.resources import QualityResource


def _suites_with_extra(tmp_path, table: str, severity: str):
    """The project's suites, plus one expectation on `table` that the data cannot meet."""
    folder = tmp_path / "suites"
    shutil.copytree(suites.suites_dir(), folder, ignore=shutil.ignore_patterns("__*"))
    doc = json.loads((folder / f"{table}.json").read_text())
    doc["expectations"].append({"type": "expect_column_values_to_be_in_set", "severity": severity,
                                "kwargs": {"column": "source", "value_set": ["a"]}, "meta": {}})
    (folder / f"{table}.json").write_text(json.dumps(doc))
    return folder


def _run(lake, tmp_path, suites_dir):
    for name in ("a", "b"):  # two sources of equal size: no source-share warning
        write_jsonl(tmp_path / f"{name}.jsonl", [{"prompt": f"{name} q{i}", "chosen": f"yes {i}", "rejected": f"no {i}"}
                                                 for i in range(10)])
    src = write_sources(tmp_path / "s.yaml", [{"name": n, "path": f"{n}.jsonl", "shape": "prompt_chosen_rejected"}
                                              for n in ("a", "b")])
    return dg.materialize(
        [*defs.assets, *defs.asset_checks], selection=lake_stages(), raise_on_error=False,
        instance=dg.DagsterInstance.ephemeral(),
        resources=dagster_resources(lake, src, quality=QualityResource(suites_dir=str(suites_dir), build_docs=False)))


def _materialized(result) -> set[str]:
    return {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()} | {
        m.asset_key.to_user_string() for m in result.asset_materializations_for_node("silver")}


def _evaluation(result, asset: str, check: str):
    (e,) = [e for e in result.get_asset_check_evaluations()
            if e.asset_key.to_user_string() == asset and e.check_name == check]
    return e


def test_failed_blocking_check_stops_downstream(lake, tmp_path):
    result = _run(lake, tmp_path, _suites_with_extra(tmp_path, "raw_pairs", "critical"))
    blocked = _evaluation(result, "raw_pairs", "expectations")
    assert not blocked.passed and blocked.severity == dg.AssetCheckSeverity.ERROR
    assert "expect_column_values_to_be_in_set(source)" in blocked.metadata["failed_expectations"].value
    assert "raw_pairs" in _materialized(result)
    assert "silver_pairs" not in _materialized(result) and not lake.has_table("silver_pairs")


def test_failed_warning_lets_downstream_run(lake, tmp_path):
    result = _run(lake, tmp_path, _suites_with_extra(tmp_path, "raw_pairs", "warning"))
    warned = _evaluation(result, "raw_pairs", "expectations_warnings")
    assert not warned.passed and warned.severity == dg.AssetCheckSeverity.WARN
    assert _evaluation(result, "raw_pairs", "expectations").passed
    assert {"silver_pairs", "silver_quarantine"} <= _materialized(result)
    assert _evaluation(result, "silver_pairs", "reconciles").passed
    assert result.success


@pytest.mark.parametrize("table", ["raw_pairs", "silver_pairs"])
def test_every_check_passes_on_clean_data(lake, tmp_path, table):
    result = _run(lake, tmp_path, suites.suites_dir())
    evaluations = [e for e in result.get_asset_check_evaluations() if e.asset_key.to_user_string() == table]
    assert {e.check_name for e in evaluations} == {"expectations", "expectations_warnings", "reconciles"}
    assert all(e.passed for e in evaluations)
