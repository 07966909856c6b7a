"""Options shared by the `synpref` commands."""

import os
from pathlib import Path

import click

from synpref.lake import LAKE_ENV, Lake, resolve_root

DEFAULT_LAKE = "lake"


def _checked(ctx, param, value: str) -> str:
    """A usage error, not a traceback, for a root that cannot be a lake (a URL no store serves)."""
    try:
        resolve_root(value)
    except ValueError as e:
        raise click.BadParameter(str(e), ctx=ctx, param=param) from e
    return value


def _group_lake(ctx, param, value: str | None) -> str | None:
    return value if value is None else _checked(ctx, param, value)


def _command_lake(ctx, param, value: str | None) -> str:
    """--lake after the subcommand wins; else the one given before it (`synpref --lake X tables`,
    which has read $SYNPREF_LAKE already); else $SYNPREF_LAKE; else ./lake."""
    if value is None:
        parent = ctx.parent
        while parent is not None and parent.params.get("lake_dir") is None:
            parent = parent.parent
        value = parent.params["lake_dir"] if parent is not None else os.environ.get(LAKE_ENV) or DEFAULT_LAKE
    return _checked(ctx, param, value)


LAKE_HELP = f"Lake root: a folder, or an object-store URL such as s3://bucket/lake (default ${LAKE_ENV}, else ./lake)."

# on the `synpref` group: `synpref --lake X COMMAND`
group_lake_option = click.option("--lake", "lake_dir", envvar=LAKE_ENV, default=None, callback=_group_lake,
                                 help=LAKE_HELP)
# on every command: `synpref COMMAND --lake X`
lake_option = click.option("--lake", "lake_dir", default=None, callback=_command_lake, help=LAKE_HELP)


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
