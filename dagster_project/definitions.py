"""The one Definitions object of the SynPref code location."""

import dagster as dg

from assets import raw, silver
from dagster_project.resources import LakeResource, SourcesResource

defs = dg.Definitions(
    assets=dg.load_assets_from_modules([raw, silver]),
    resources={"lake": LakeResource(), "sources": SourcesResource()},
)
