"""Great Expectations suites, one JSON file per lake table (added with the data-quality checks)."""
