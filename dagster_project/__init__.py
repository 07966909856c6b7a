"""The SynPref Dagster code location: definitions, resources and the `synpref` CLI."""
