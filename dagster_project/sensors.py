"""Sensors: gold_pairs follows new human labels."""

import dagster as dg

from dagster_project.resources import LakeResource
from synpref.gold.human_labels import stored_rows, unsealed_dead_lines


def labels_in_gold(instance: dg.DagsterInstance) -> int:
    """The human_labels rows the latest gold_pairs was built from (0 before the first)."""
    event = instance.get_latest_materialization_event(dg.AssetKey("gold_pairs"))
    if event is None or event.asset_materialization is None:
        return 0
    value = event.asset_materialization.metadata.get("human_labels_rows")
    return int(value.value) if value is not None else 0


@dg.sensor(
    name="gold_pairs_on_new_labels", job_name="gold", minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Seals the annotation journal and rebuilds gold_pairs when there are labels gold_pairs was not "
                "built from (stored rows of human_labels, or a stopped server's unsealed journal lines).",
)
def gold_pairs_on_new_labels(context: dg.SensorEvaluationContext, lake: LakeResource):
    the_lake = lake.lake()
    # labels known = stored rows + lines a dead server left in the journal; sealing moves lines
    # into rows, which leaves the sum as it was
    known = stored_rows(the_lake) + unsealed_dead_lines(the_lake)
    built = labels_in_gold(context.instance)
    if known <= built:
        return dg.SkipReason(f"no new human labels ({known:,} known, gold_pairs built from {built:,})")
    return dg.RunRequest(run_key=f"human-labels-{known}",
                         tags={"synpref/labels_known": str(known), "synpref/labels_new": str(known - built)})
