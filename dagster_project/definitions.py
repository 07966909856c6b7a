"""The one Definitions object of the SynPref code location: assets grouped by layer, the
stages as jobs, checks with their tables, the sensor and the resources."""

import dagster as dg

import assets
from dagster_project.checks import graph_asset_checks
from dagster_project.executors import synpref_executor
from dagster_project.jobs import asset_jobs
from dagster_project.resources import default_resources
from dagster_project.sensors import gold_pairs_on_new_labels

# graph-backed assets (name -> their tables): their last op cannot return check results, so each
# graph gets one check step
GRAPH_ASSETS = {"pair_attributes": ("pair_attributes",), "pair_embeddings": ("pair_embeddings",),
                "judge_votes": ("judge_votes",), "pool_scoring": ("pool_scores", "pool_model_scores"),
                "filtered_pairs": ("filtered_pairs",)}

ASSETS = dg.load_assets_from_package_module(assets)
CHECKS = [graph_asset_checks(name, tables) for name, tables in GRAPH_ASSETS.items()]


def build_defs(root: str | None = None, sources_file: str | None = None, **resources) -> dg.Definitions:
    """The definitions with their resources on the lake at `root` (default $SYNPREF_LAKE at run
    time), the sources file and any resource given: the CLI runs a job of these on one lake."""
    return dg.Definitions(assets=ASSETS, asset_checks=CHECKS, jobs=asset_jobs(), sensors=[gold_pairs_on_new_labels],
                          resources=default_resources(root, sources_file, **resources), executor=synpref_executor)


defs = build_defs()
