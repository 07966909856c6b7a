"""Sensors: gold_pairs follows new human labels."""

import dagster as dg

from dagster_project.resources import LakeResource
from synpref.human_labels import stored_rows, unsealed_dead_lines


@dg.sensor(
    name="gold_pairs_on_new_labels", target=dg.AssetSelection.assets("human_labels", "gold_pairs"),
    minimum_interval_seconds=30, default_status=dg.DefaultSensorStatus.RUNNING,
    description="Seals the annotation journal and rebuilds gold_pairs when new human labels arrive "
                "(stored rows of human_labels, or a stopped server's unsealed journal lines).",
)
def gold_pairs_on_new_labels(context: dg.SensorEvaluationContext, lake: LakeResource):
    the_lake = lake.lake()
    # labels known = stored rows + lines a dead server left in the journal; both only grow
    # until a seal moves the lines into rows, which leaves the sum as it was
    known = stored_rows(the_lake) + unsealed_dead_lines(the_lake)
    seen = int(context.cursor or 0)
    if known <= seen:
        return dg.SkipReason(f"no new human labels ({known:,} known)")
    context.update_cursor(str(known))
    return dg.RunRequest(run_key=f"human-labels-{known}",
                         tags={"synpref/labels_known": str(known), "synpref/labels_new": str(known - seen)})
