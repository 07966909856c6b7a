"""SynPref core: plain functions for the preference-data lake, free of Dagster.

Dagster assets (``assets/``) and the CLI (``dagster_project/cli.py``) call into this
package; everything here can be used and tested on its own.
"""

__version__ = "0.1.0"
