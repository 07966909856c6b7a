"""The gold layer: annotation_queue -> (humans, through the label journal) -> human_labels -> gold_pairs."""

import dagster as dg
from pydantic import Field

from dagster_project.checks import table_check_specs
from dagster_project.metadata import counts_table, preview
from dagster_project.plots import figure_md
from dagster_project.resources import LakeResource, QualityResource
from dagster_project.results import table_result
from synpref.gold import annotation_queue as queue_stage
from synpref.gold import human_labels as labels_stage
from synpref.lake.duck import refresh_views
from synpref.gold.gold_pairs import TABLE as GOLD, build_gold_pairs
from synpref.gold.gold_figure import gold_figure
from synpref.gold.label_journal import segment_files


class AnnotationQueueConfig(dg.Config):
    sql: str | None = Field(default=None, description="A read-only SELECT over the lake's tables returning "
                                                      "pair_id: more candidates. None queues only what Stage 1 "
                                                      "retrieval sent to humans.")
    pair_ids: list[str] | None = Field(default=None, description="Pairs to queue, instead of a SELECT.")
    origin: str = Field(default="sql", description="Recorded with each pair the SELECT (or list) queues.")
    size: int | None = Field(default=200, description="Queue at most this many of the SELECT's new pairs, "
                                                      "objective and low-controversy first (None: all).")


@dg.asset(
    name=queue_stage.TABLE, group_name="gold", deps=["silver_pairs", "pair_attributes", "stage1_retrievals"],
    kinds={"duckdb", "parquet"}, check_specs=table_check_specs(queue_stage.TABLE),
    description="The pairs for human annotators (pair_id, origin, priority), objective and low-controversy first: "
                "what Stage 1 retrieval sent to humans, and any a SELECT names (the seed set).",
)
def annotation_queue(context: dg.AssetExecutionContext, config: AnnotationQueueConfig,
                     lake: LakeResource, quality: QualityResource) -> dg.MaterializeResult:
    the_lake = lake.lake()
    new = old = left_out = 0
    try:
        retrieved = queue_stage.queue_retrieved(the_lake)
    except ValueError as e:
        raise dg.Failure(description=str(e)) from e
    if any(retrieved.values()):
        context.log.info(f"queued what retrieval sent to humans: {retrieved}")
    if config.sql or config.pair_ids:
        try:
            queued = queue_stage.queue_for_humans(the_lake, config.origin, select_sql=config.sql,
                                                  pair_ids=config.pair_ids, size=config.size)
        except ValueError as e:
            raise dg.Failure(description=str(e)) from e
        new, old, left_out = queued.new, queued.already, queued.over_size
        context.log.info(f"queued {new:,} pairs for annotators ({old:,} queued already, {left_out:,} over the size)")
    queue_stage.ensure_table(the_lake)
    refresh_views(the_lake)
    counts = queue_stage.queue_counts(the_lake)
    by_priority: dict[str, int] = {}
    for per_origin in counts.values():
        for priority, n in per_origin.items():
            by_priority[str(priority)] = by_priority.get(str(priority), 0) + n
    return table_result(context, lake, quality, queue_stage.TABLE, {
        "dagster/row_count": sum(by_priority.values()), "queued_now": new + sum(retrieved.values()),
        "queued_by_request_now": new,
        "queued_by_retrieval_now": counts_table({k: v for k, v in retrieved.items() if v}, key="round"),
        "already_queued": old,
        "left_out_by_size": left_out,
        "by_origin": counts_table({o: sum(p.values()) for o, p in counts.items()}, key="origin"),
        "by_priority": counts_table(dict(sorted(by_priority.items(), key=lambda kv: int(kv[0]))), key="priority"),
    })


@dg.observable_source_asset(
    name="label_journal", group_name="gold",
    description="The annotation page's write-ahead journal (<lake>/annotation/journal), where every human label "
                "lands first, and where simulated annotators and finished servers leave theirs; its data version "
                "is the number of journaled lines, so human_labels shows new labels waiting as stale.",
)
def label_journal(lake: LakeResource) -> dg.DataVersion:
    lines = sum(path.read_bytes().count(b"\n") for path in segment_files(lake.lake()))
    return dg.DataVersion(f"{labels_stage.stored_rows(lake.lake())}+{lines}")


@dg.asset(
    name=labels_stage.TABLE, group_name="gold", deps=["label_journal"], kinds={"parquet"},
    check_specs=table_check_specs(labels_stage.TABLE),
    description="Every human judgement, append-only: pair_id, annotator, choice (relative to the original "
                "label), shown order, seconds spent, time, guideline version, simulated. Materialising it "
                "seals the annotation page's journal.",
)
def human_labels(context: dg.AssetExecutionContext, lake: LakeResource,
                 quality: QualityResource) -> dg.MaterializeResult:
    the_lake = lake.lake()
    sealed = labels_stage.seal(the_lake)
    labels_stage.ensure_table(the_lake)
    refresh_views(the_lake)
    context.log.info(f"sealed {sealed.sealed:,} journaled labels")
    counts = labels_stage.label_counts(the_lake)
    return table_result(context, lake, quality, labels_stage.TABLE, {
        "dagster/row_count": counts["rows"], "sealed_now": sealed.sealed,
        "journal_segments": sealed.segments, "journal_segments_removed": sealed.removed,
        "journal_lines_stored_already": sealed.duplicates, "unreadable_journal_lines": sealed.rejected_lines,
        "journal_lines_naming_unknown_pairs": sealed.unknown_pairs,
        "simulated_rows": counts["simulated"],
        "by_choice": counts_table(counts["by_choice"], key="choice"),
        "by_annotator": counts_table(counts["by_annotator"], key="annotator"),
        "by_source": counts_table(counts["by_source"], key="source"),
    })


@dg.asset(
    name=GOLD, group_name="gold", deps=[labels_stage.TABLE, "silver_pairs"], kinds={"duckdb", "parquet"},
    check_specs=table_check_specs(GOLD),
    description="Human-verified pairs: the majority of annotators (ties and 'cannot decide' left out); chosen "
                "is the response humans preferred, flipped says it was the original rejected one.",
)
def gold_pairs(context: dg.AssetExecutionContext, lake: LakeResource,
               quality: QualityResource) -> dg.MaterializeResult:
    the_lake = lake.lake()
    try:
        summary = build_gold_pairs(the_lake)
    except ValueError as e:
        raise dg.Failure(description=str(e)) from e
    refresh_views(the_lake)
    a = summary.agreement
    context.log.info(f"{summary.rows:,} gold pairs ({summary.flipped:,} flipped); outcomes {summary.outcomes}")
    lines = ["| annotator A | annotator B | shared pairs | agreement | Cohen's kappa |", "|---|---|---:|---:|---:|"]
    lines += [f"| {p.a} | {p.b} | {p.shared:,} | {p.agreement:.3f} | "
              f"{'n/a' if p.kappa is None else f'{p.kappa:.3f}'} |" for p in a.cohen]
    return table_result(context, lake, quality, GOLD, {
        "dagster/row_count": summary.rows, "flipped": summary.flipped, "with_simulated_labels": summary.simulated,
        "human_labels_rows": summary.labels,  # what the sensor compares with the labels known now
        "labelled_pairs_by_outcome": counts_table(summary.outcomes, key="outcome"),
        "pairs_with_2plus_votes": a.items,
        "pairwise_agreement": _number(a.pairwise), "fleiss_kappa": _number(a.fleiss_kappa),
        "cohen_kappa_mean": _number(a.cohen_mean),
        "cohen_kappa_by_annotator_pair": dg.MetadataValue.md("\n".join(lines) if a.cohen else "_no overlaps yet_"),
        "figure": figure_md(gold_figure(summary), "gold pairs by outcome and annotator agreement"),
        "seconds": summary.seconds,
        "preview": preview(the_lake.table_files(GOLD), ["pair_id", "flipped", "votes_for", "votes_against",
                                                        "annotators", "simulated"]),
    })


def _number(value: float | None) -> dg.MetadataValue:
    return dg.MetadataValue.float(float("nan") if value is None else value)
