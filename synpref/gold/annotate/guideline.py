"""The annotation guideline shown to human annotators (a versioned document in models/guidelines/)."""

from __future__ import annotations

from dataclasses import dataclass

from models.judge import GUIDELINES_DIR


@dataclass(frozen=True)
class Guideline:
    version: str  # recorded with every label made under it
    text: str


def load_guideline(version: str = "annotation-v1") -> Guideline:
    path = GUIDELINES_DIR / f"{version.replace('-', '_')}.md"
    if not path.is_file():
        known = ", ".join(sorted(p.stem.replace("_", "-") for p in GUIDELINES_DIR.glob("*.md")))
        raise ValueError(f"unknown guideline {version!r} (no {path.name} in {GUIDELINES_DIR}); known: {known}")
    return Guideline(version, path.read_text().strip())
