"""Options shared by the `synpref` commands."""

import os
from pathlib import Path

import click

from synpref.lake import LAKE_ENV, Lake, resolve_root


def _checked_root(ctx, param, value: str) -> str:
    """A usage error, not a traceback, for a root that cannot be a lake (a URL no store serves)."""
    try:
        resolve_root(value)
    except ValueError as e:
        raise click.BadParameter(str(e), ctx=ctx, param=param) from e
    return value


lake_option = click.option(
    "--lake", "lake_dir", envvar=LAKE_ENV, default="lake", show_default=True, callback=_checked_root,
    help=f"Lake root: a folder, or an object-store URL such as s3://bucket/lake (or ${LAKE_ENV}).")


def use_lake(lake_dir: str) -> Lake:
    """Point this process (and any process Dagster starts) at one lake and its Dagster home."""
    lake = Lake.at(lake_dir)
    lake.root.mkdir(parents=True, exist_ok=True)
    os.environ[LAKE_ENV] = str(lake.root)
    # the instance's SQLite files need a local disk: an object-store lake keeps them in its home
    home = Path(os.environ.setdefault("DAGSTER_HOME", str(lake.home / "dagster_home")))
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():  # local SQLite storage under DAGSTER_HOME, Dagster's default
        config.write_text("# Dagster instance settings for this lake; empty means local SQLite storage.\n")
    return lake
