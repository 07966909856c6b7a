"""annotation_queue: objective and low-controversy pairs first, a size cap, queued once, unknown
pairs refused; from a list, a SELECT, the CLI and the Dagster asset."""

from __future__ import annotations

import dagster as dg
import pytest
from click.testing import CliRunner

from support.annotation import pair_ids, silver_lake, simple_records, write_attributes
from conftest import assert_violation_fails, dagster_resources, rows, violations_parametrized
from dagster_project.cli import main
from synpref.gold.annotation_queue import TABLE, queue_for_humans
from synpref.checks.quality import validate_table

# (objectivity, controversiality) -> priority, in the order humans should see them
KINDS = [(("objective", "low"), 0), (("objective", "medium"), 1), (("objective", "high"), 2),
         (("subjective", "low"), 3), (("subjective", "high"), 5)]


@pytest.fixture
def lake_with_attributes(lake, tmp_path):
    """12 silver pairs: 10 with attributes of the five kinds (two each), 2 without any."""
    silver_lake(lake, tmp_path, simple_records(12))
    ids = pair_ids(lake)
    write_attributes(lake, {pid: KINDS[i % 5][0] for i, pid in enumerate(ids[:10])})
    expected = {pid: KINDS[i % 5][1] for i, pid in enumerate(ids[:10])} | {pid: 8 for pid in ids[10:]}
    return lake, expected


def _queued(lake) -> dict[str, dict]:
    return {r["pair_id"]: r for r in rows(lake, TABLE, order="pair_id")}


def test_the_best_ranked_pairs_are_queued_first_up_to_the_size(lake_with_attributes):
    lake, expected = lake_with_attributes
    first = queue_for_humans(lake, "round-1", select_sql="select pair_id from silver_pairs", size=3)
    assert (first.new, first.already, first.over_size) == (3, 0, 9)
    queued = _queued(lake)
    # the two objective/low pairs, then one objective/medium
    assert sorted(r["priority"] for r in queued.values()) == [0, 0, 1]
    assert all(expected[pid] == r["priority"] and r["origin"] == "round-1" for pid, r in queued.items())

    rest = queue_for_humans(lake, "cli", select_sql="select pair_id from silver_pairs")
    assert (rest.new, rest.already, rest.over_size) == (9, 3, 0)
    queued = _queued(lake)
    assert {pid: r["priority"] for pid, r in queued.items()} == expected  # pairs without attributes: last (8)
    assert sum(r["origin"] == "round-1" for r in queued.values()) == 3  # queuing again changed nothing
    assert queue_for_humans(lake, "again", pair_ids=list(expected)).new == 0


def test_a_list_of_pair_ids_queues_those_pairs(lake_with_attributes):
    lake, expected = lake_with_attributes
    chosen = sorted(expected)[:4]
    queued = queue_for_humans(lake, "round-2", pair_ids=chosen + chosen[:1], size=10)
    assert (queued.new, queued.already) == (4, 0)
    assert sorted(_queued(lake)) == chosen
    assert queue_for_humans(lake, "round-2", pair_ids=chosen, size=0).new == 0


def test_unknown_pairs_writes_and_ambiguous_input_are_refused(lake_with_attributes):
    lake, _ = lake_with_attributes
    with pytest.raises(ValueError, match="not in silver_pairs"):
        queue_for_humans(lake, "x", pair_ids=["no-such-pair"])
    with pytest.raises(ValueError, match="read-only"):
        queue_for_humans(lake, "x", select_sql="delete from silver_pairs")
    with pytest.raises(ValueError, match="either a SELECT or a list"):
        queue_for_humans(lake, "x")
    with pytest.raises(ValueError, match="size must be >= 0"):
        queue_for_humans(lake, "x", pair_ids=[], size=-1)
    assert not lake.has_table(TABLE)


def test_cli_queue(lake_with_attributes):
    lake, expected = lake_with_attributes
    result = CliRunner().invoke(main, ["annotate", "queue", "select pair_id from silver_pairs", "--size", "5",
                                       "--origin", "cli-test", "--lake", str(lake.root)])
    assert result.exit_code == 0, result.output
    assert "queued 5 pairs for annotators (0 were queued already, 7 left out by --size)" in result.output
    one = sorted(expected)[-1]
    result = CliRunner().invoke(main, ["annotate", "queue", "--pair-id", one, "--lake", str(lake.root)])
    assert result.exit_code == 0 and one in _queued(lake)
    result = CliRunner().invoke(main, ["annotate", "queue", "--pair-id", "nope", "--lake", str(lake.root)])
    assert result.exit_code != 0 and "not in silver_pairs" in result.output


def test_asset_queues_with_its_config_and_passes_its_suite(lake_with_attributes, tmp_path):
    from dagster_project.definitions import defs

    lake, _ = lake_with_attributes
    result = dg.materialize(list(defs.assets), selection=dg.AssetSelection.assets(TABLE),
                            instance=dg.DagsterInstance.ephemeral(),
                            resources=dagster_resources(lake, tmp_path / "sources.yaml"),
                            run_config={"ops": {TABLE: {"config": {"sql": "select pair_id from silver_pairs",
                                                                   "origin": "asset", "size": 4}}}})
    assert result.success
    (meta,) = [m.metadata for m in result.asset_materializations_for_node(TABLE)]
    assert meta["dagster/row_count"].value == 4 and meta["left_out_by_size"].value == 8
    assert "| 0 | 2 |" in meta["by_priority"].value
    v = validate_table(lake, TABLE, build_docs=False)
    assert v.rows == 4 and v.success and not v.failed(blocking=False), v.outcomes


VIOLATIONS = [
    (TABLE, "select * from {t} union all (select * from {t} limit 1)", "expect_column_values_to_be_unique(pair_id)",
     True),
    (TABLE, "select * replace (9 as priority) from {t}", "expect_column_values_to_be_between(priority)", True),
    (TABLE, "select * replace (null as origin) from {t}", "expect_column_values_to_not_be_null(origin)", True),
]


@violations_parametrized(VIOLATIONS)
def test_each_planted_violation_fails_its_expectation(lake_with_attributes, table, select, expectation, blocking):
    lake, _ = lake_with_attributes
    queue_for_humans(lake, "t", select_sql="select pair_id from silver_pairs")
    assert_violation_fails(lake, table, select, expectation, blocking)
