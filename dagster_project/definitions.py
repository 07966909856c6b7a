"""The one Definitions object of the SynPref code location."""

import dagster as dg

from assets import attributes, embeddings, filtered, judging, raw, silver
from dagster_project.checks import all_checks
from dagster_project.resources import (AnnotatorResource, EmbedderResource, JudgesResource, LakeResource,
                                       QualityResource, SourcesResource)

defs = dg.Definitions(
    assets=dg.load_assets_from_modules([raw, silver, attributes, embeddings, judging, filtered]),
    asset_checks=all_checks(),
    resources={"lake": LakeResource(), "sources": SourcesResource(), "quality": QualityResource(),
               "annotator": AnnotatorResource(), "embedder": EmbedderResource(), "judges": JudgesResource()},
)
