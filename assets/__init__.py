"""Thin asset definitions, one module per lake layer."""

import warnings

import dagster as dg

# Two beta features chosen on purpose (single-run backfills over the shards and folds, the label
# journal as an observable source): Dagster would say so on every import of the definitions.
warnings.filterwarnings("ignore", category=dg.BetaWarning,
                        message=r"(Parameter `backfill_policy` of function `asset`|Function `observable_source_asset`)")
