"""The one Definitions object of the SynPref code location."""

import dagster as dg

from assets import attributes, embeddings, judging, models, raw, silver
from dagster_project.checks import all_checks
from dagster_project.resources import default_resources

defs = dg.Definitions(
    assets=dg.load_assets_from_modules([raw, silver, attributes, embeddings, judging, models]),
    asset_checks=all_checks(),
    resources=default_resources(),
)
