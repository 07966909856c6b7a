"""What the tests share beyond conftest's fixtures, importable as `support.<module>` (pytest puts
tests/ on sys.path) and, from the benchmarks, as `tests.support.<module>`:

- `annotation`: a silver lake with attributes and labels for the human-annotation tests;
- `kill`: SIGKILL a child process group once it shows it is at work;
- `celery_cluster`: a Redis broker and dagster-celery workers on 127.0.0.1 (`LocalCluster`), with
  the Celery settings of dagster_project/run_config/celery_worker.yaml as a function;
- `object_store`: an S3 store on 127.0.0.1, SeaweedFS (`LocalObjectStore`).

None of it is part of the installed package: a deployment uses the YAML run configs under
dagster_project/run_config/ and its own Redis, workers and store (docs/scale-out.md).
"""
