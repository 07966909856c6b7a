"""Options shared by the `synpref` commands."""

import click

from synpref.lake import LAKE_ENV

lake_option = click.option(
    "--lake", "lake_dir", envvar=LAKE_ENV, default="lake", show_default=True,
    help=f"Lake root folder (or ${LAKE_ENV}).")
