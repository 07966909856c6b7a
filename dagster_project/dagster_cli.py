"""Dagster's own CLI (`dagster dev`, `dagster job execute`), run by `synpref ui` and Stage 2, without
its notice that the separate `dg` CLI supersedes these commands: this project does not install `dg`."""

import sys
import warnings

import dagster as dg

warnings.filterwarnings("ignore", category=dg.SupersessionWarning, message=r".*Use 'dg ")

from dagster._cli import main  # noqa: E402  (the filter must be in place before the commands load)

if __name__ == "__main__":
    sys.exit(main())
