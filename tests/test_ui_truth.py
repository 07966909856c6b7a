"""What the Dagster UI shows of a finished demo lake is true: every table with rows has a
materialisation, every run belongs to a named job, a no-op rerun leaves nothing stale, and the
sensor launches nothing when no label is new."""

from __future__ import annotations

import shutil

import dagster as dg
import pytest
from dagster._core.definitions.data_version import CachingStaleStatusResolver, StaleStatus
from dagster._core.loader import LoadingContextForTest

from dagster_project.definitions import defs
from dagster_project.resources import LakeResource, default_resources
from dagster_project.sensors import gold_pairs_on_new_labels
from conftest import rows
from synpref.lake.duck import table_counts
from synpref.gold.human_labels import submit_labels
from synpref.lake import TABLE_LAYERS, Lake

pytestmark = pytest.mark.slow


def _instance(env: dict) -> dg.DagsterInstance:
    return dg.DagsterInstance.from_config(env["DAGSTER_HOME"])


def _stale(instance: dg.DagsterInstance) -> set[str]:
    """Assets (and partitions) the UI would show as stale ("Upstream data" / "Code version")."""
    graph = defs.resolve_asset_graph()
    resolver = CachingStaleStatusResolver(instance, lambda: graph, LoadingContextForTest(instance))
    out = set()
    for key in graph.materializable_asset_keys:
        node = graph.get(key)
        partitions = [None]
        if node.partitions_def is not None:
            partitions = node.partitions_def.get_partition_keys(dynamic_partitions_store=instance)
        for partition in partitions:
            if resolver.get_status(key, partition) == StaleStatus.STALE:
                out.add(key.to_user_string() + (f"[{partition}]" if partition else ""))
    return out


def test_every_table_with_rows_has_a_materialisation_and_every_run_a_job(demo):
    lake, _, env = demo
    with _instance(env) as instance:
        with_rows = [table for table, _, rows, _ in table_counts(lake) if rows]
        assert set(with_rows) >= {"judge_queue", "annotation_queue", "rm_eval", "rm_eval_pairs", "silver_labels",
                                  "stage1_retrievals", "stage1_rounds", "gold_pairs", "filtered_pairs"}
        never = [t for t in with_rows if instance.get_latest_materialization_event(dg.AssetKey(t)) is None]
        assert not never, f"tables with rows but no materialisation: {never}"
        runs = instance.get_runs()
        names = {r.job_name for r in runs}
        assert "__ephemeral_asset_job__" not in names and "__ASSET_JOB" not in names, names
        assert {"ingest_and_clean", "queue_for_humans", "stage1_round", "stage1_round_finish", "stage2_models",
                "stage2", "export"} <= names


def test_a_no_op_rerun_leaves_nothing_stale_and_the_sensor_launches_nothing(demo, tmp_path):
    reference, _, env = demo
    lake = Lake.at(tmp_path / "lake")
    shutil.copytree(reference.root, lake.root, symlinks=True)
    home = tmp_path / "home"
    shutil.copytree(env["DAGSTER_HOME"], home)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        # the sensor on a finished lake: every label is in gold already
        context = dg.build_sensor_context(instance=instance)
        skipped = gold_pairs_on_new_labels(context, lake=LakeResource(root=str(lake.root)))
        assert isinstance(skipped, dg.SkipReason), skipped
        before = _stale(instance)
        result = defs.resolve_job_def("ingest_and_clean").execute_in_process(
            instance=instance, resources=default_resources(str(lake.root)), raise_on_error=False)
        assert result.success
        silver = {m.asset_key.to_user_string(): m.metadata for m in result.asset_materializations_for_node("silver")}
        assert silver["silver_pairs"]["reused"].value is True
        after = _stale(instance)
        assert after <= before, f"turned stale by a no-op rerun: {sorted(after - before)}"
        # nothing of the ingest's downstream is stale: the reused tables kept their data versions
        downstream = {"silver_pairs", "pair_attributes", "pair_embeddings", "judge_queue", "annotation_queue",
                      "gold_pairs", "filtered_pairs", "curated_export"}
        assert not {s.split("[")[0] for s in after} & downstream, sorted(after)
        # one new label in the journal (as the annotation page writes it): now the sensor asks for gold
        pair_id = rows(lake, "silver_pairs", order="pair_id")[0]["pair_id"]
        assert submit_labels(lake, [{"pair_id": pair_id, "annotator": "newcomer", "choice": "chosen"}], "web") == (1, 0)
        request = gold_pairs_on_new_labels(dg.build_sensor_context(instance=instance),
                                           lake=LakeResource(root=str(lake.root)))
        assert isinstance(request, dg.RunRequest) and request.tags["synpref/labels_new"] == "1"


def test_every_registry_table_of_the_demo_has_its_layer_as_group(demo):
    lake, _, env = demo
    groups = {spec.key.to_user_string(): spec.group_name for spec in defs.resolve_all_asset_specs()}
    with _instance(env) as instance:
        for table, layer in TABLE_LAYERS.items():
            assert groups[table] == layer
            event = instance.get_latest_materialization_event(dg.AssetKey(table))
            if event is not None:  # the data version the UI shows came from the table, not the run
                tags = event.asset_materialization.tags or {}
                assert tags.get("dagster/data_version"), table
