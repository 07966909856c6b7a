"""The one Definitions object of the SynPref code location."""

import dagster as dg

from assets import attributes, crossfit, embeddings, filtered, gold, judging, models, raw, silver, stage1, stage2
from dagster_project.checks import all_checks
from dagster_project.executors import synpref_executor
from dagster_project.resources import default_resources
from dagster_project.sensors import gold_pairs_on_new_labels

defs = dg.Definitions(
    assets=dg.load_assets_from_modules([raw, silver, attributes, embeddings, judging, gold, models, stage1, crossfit,
                                        stage2, filtered]),
    asset_checks=all_checks(),
    sensors=[gold_pairs_on_new_labels],
    resources=default_resources(),
    executor=synpref_executor,
)
