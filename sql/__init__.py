"""The SQL stages: one SELECT per file, named after the table it makes."""

from importlib import resources


def load(name: str) -> str:
    """The text of ``sql/<name>.sql``."""
    return resources.files(__name__).joinpath(f"{name}.sql").read_text()
