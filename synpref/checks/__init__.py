"""Checks across layers: Great Expectations suites, reconciliation, and `synpref check`."""
