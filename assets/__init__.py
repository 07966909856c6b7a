"""Thin asset definitions, one module per lake layer."""
