"""The code location's executor: one selector, so run config alone picks where steps run.

A Dagster job's executor is fixed by its definition and run config only configures it, so
the same per-shard steps can run on one machine or across many only if the executor is a
selector, as Dagster's own `multi_or_in_process_executor` is:

    execution: {config: {multiprocess: {max_concurrent: 8}}}     # one machine (the default)
    execution: {config: {in_process: {}}}
    execution: {config: {celery: {broker: ..., backend: ..., config_source: {...}}}}   # dagster-celery
    execution: {config: {k8s: {job_namespace: ..., job_image: ...}}}                   # dagster-k8s

dagster-celery and dagster-k8s come with the `distributed` extra; without them their branch
accepts any mapping and a run that selects it fails at start, saying what to install.
"""

import dagster as dg
from dagster._core.definitions.executor_definition import multiple_process_executor_requirements
from dagster._core.executor.init import InitExecutorContext

try:
    from dagster_celery import celery_executor
except ImportError:  # the `distributed` extra is not installed
    celery_executor = None
try:
    from dagster_k8s import k8s_job_executor
except ImportError:
    k8s_job_executor = None

LOCAL = dg.multi_or_in_process_executor
CLUSTER = {"celery": (celery_executor, "dagster-celery"), "k8s": (k8s_job_executor, "dagster-k8s")}


def _schema(executor: dg.ExecutorDefinition | None):
    return executor.config_schema.as_field().config_type if executor else dg.Permissive()


def _requirements(config: dict):
    return [] if "in_process" in config else multiple_process_executor_requirements()


@dg.executor(
    name="synpref_executor",
    config_schema=dg.Field(
        dg.Selector({
            "multiprocess": LOCAL.config_schema.as_field().config_type.fields["multiprocess"].config_type,
            "in_process": LOCAL.config_schema.as_field().config_type.fields["in_process"].config_type,
            **{name: _schema(executor) for name, (executor, _) in CLUSTER.items()},
        }),
        default_value={"multiprocess": {}},
    ),
    requirements=_requirements,
)
def synpref_executor(init_context: InitExecutorContext):
    """Multiprocess, in-process, Celery or Kubernetes, as the run config's one key says."""
    (branch, config), = init_context.executor_config.items()
    if branch in ("multiprocess", "in_process"):
        delegate, config = LOCAL, {branch: config}
    else:
        delegate, package = CLUSTER[branch]
        if delegate is None:
            raise dg.DagsterInvariantViolationError(
                f"execution.config.{branch} needs {package}: pip install -e '.[distributed]'")
    return delegate.executor_creation_fn(InitExecutorContext(  # type: ignore[misc]
        job=init_context.job, executor_def=delegate, executor_config=config, instance=init_context.instance))
