"""Source presets: the SELECTs under sql/sources/, one per public preference-data format.

A preset file opens with comment lines: the first says what the format is, and each
``-- @param name = default`` declares a variable its SQL reads with ``getvariable('name')``.
``path_<field>`` parameters are JSON paths of the record's fields; a source's ``columns:``
sets them from dotted paths (``question.text`` -> ``$."question"."text"``).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources

_PARAM = re.compile(r"^--\s*@param\s+([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$")
MACROS = "_macros"


@dataclass(frozen=True)
class Preset:
    name: str
    sql: str
    params: dict[str, str]  # name -> default, as written
    summary: str  # the header's first sentence

    def fields(self) -> list[str]:
        """Fields whose paths `columns:` may set."""
        return [p[len("path_"):] for p in self.params if p.startswith("path_")]


def _files():
    return resources.files("sql").joinpath("sources")


@cache
def preset_names() -> tuple[str, ...]:
    return tuple(sorted(f.name[:-4] for f in _files().iterdir()
                        if f.name.endswith(".sql") and not f.name.startswith("_")))


@cache
def load_preset(name: str) -> Preset:
    if name not in preset_names():
        raise KeyError(name)
    text = _files().joinpath(f"{name}.sql").read_text()
    params, header = {}, []
    for line in text.splitlines():
        if not line.startswith("--"):
            break
        m = _PARAM.match(line)
        if m:
            params[m.group(1)] = m.group(2)
        else:
            header.append(line.lstrip("-").strip())
    summary = " ".join(header)
    summary = summary.split(": ", 1)[-1] if summary.startswith(name) else summary
    return Preset(name, text, params, summary)


@cache
def macros_sql() -> str:
    return _files().joinpath(f"{MACROS}.sql").read_text()


def macros_fingerprint() -> str:
    return hashlib.md5(macros_sql().encode()).hexdigest()[:12]


def json_path(dotted: str) -> str:
    """A dotted path of the sources file as a DuckDB JSON path: keys quoted, digits as indexes
    (``messages.-1.content`` -> ``$."messages"[#-1]."content"``)."""
    if dotted.startswith("$"):
        return dotted  # already a JSON path
    out = "$"
    for part in dotted.split("."):
        if re.fullmatch(r"-?\d+", part):
            index = int(part)
            out += f"[#{index}]" if index < 0 else f"[{index}]"
        else:
            out += '."' + part.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return out
