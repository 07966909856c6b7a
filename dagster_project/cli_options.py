"""Options shared by the `synpref` commands."""

import click

from synpref.lake import LAKE_ENV, resolve_root


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
