"""benchmarks/summary.py: the summary table that opens benchmarks/README.md, from results/*.json.

Run on the real results folder, so the README's block never goes stale: a new or changed results
file without `python benchmarks/summary.py --write` fails here."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "summary.py"
RESULTS = REPO / "benchmarks" / "results"
README = REPO / "benchmarks" / "README.md"


@pytest.fixture(scope="module")
def summary():
    spec = importlib.util.spec_from_file_location("benchmarks_summary", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _table_rows(table: str) -> list[str]:
    return [line for line in table.splitlines() if line.startswith("| ") and not line.startswith("| benchmark |")]


def test_every_results_file_is_a_row(summary):
    files = sorted(RESULTS.glob("*.json"))
    assert files, "no results JSON to summarise"
    rows = _table_rows(summary.table(RESULTS, README.read_text()))
    assert len(rows) == len(files)
    for path, row in zip(files, rows):
        assert f"(results/{path.name})" in row
        cells = [c.strip() for c in row.strip("|").split(" | ")]
        assert len(cells) == 5 and all(cells), row
        assert "could not read its usual figures" not in row, row  # every known file's headline was read


def test_readme_block_is_the_generated_one(summary):
    text = README.read_text()
    block = summary.current_block(text)
    assert block is not None, "benchmarks/README.md lacks the summary markers"
    assert block == summary.block(RESULTS, text), "stale: run python benchmarks/summary.py --write"
    # it opens the README, right after the title
    assert text.startswith("# Benchmarks\n\n" + summary.START)


def test_links_in_the_table_resolve(summary):
    text = README.read_text()
    headings = {summary._slug(line.lstrip("#")) for line in text.splitlines() if re.match(r"#{1,6} ", line)}
    for target in re.findall(r"\]\(([^)]+)\)", summary.table(RESULTS, text)):
        if target.startswith("#"):
            assert target[1:] in headings, target
        else:
            assert (README.parent / target).is_file(), target


def test_known_headlines(summary):
    table = summary.table(RESULTS, README.read_text())
    if (RESULTS / "celery_workers.json").exists():
        ratio = json.loads((RESULTS / "celery_workers.json").read_text())["ratio_1_over_2_workers"]["stage2"]
        assert f"Stage 2 **{ratio:.2f}x**" in table
    if (RESULTS / "object_store.json").exists():
        ratio = json.loads((RESULTS / "object_store.json").read_text())["ratio_store_over_local"]["stage2"]
        assert f"Stage 2 **{ratio:.2f}x**" in table


def test_unknown_and_reshaped_files_still_get_a_row(summary, tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    (results / "new_bench.json").write_text(json.dumps({"machine": "m1", "speedup": 2.5, "load_avg": 0.3,
                                                        "ratio": {"a": 1.5}, "ok": True}))
    (results / "quality.json").write_text(json.dumps({"summary": {"25": {}}}))  # not the shape it knows
    (results / "old.md").write_text("# a report\n")
    table = summary.table(results, "")
    rows = _table_rows(table)
    assert len(rows) == 2
    new = next(r for r in rows if "results/new_bench.json" in r)
    assert "speedup 2.5" in new and "ratio.a 1.5" in new and "m1; load average 0.3" in new
    assert "not described yet" in new
    reshaped = next(r for r in rows if "results/quality.json" in r)
    assert "could not read its usual figures" in reshaped
    assert "[old.md](results/old.md)" in table


def test_write_replaces_only_the_block(summary, tmp_path):
    bench = tmp_path / "benchmarks"
    shutil.copytree(RESULTS, bench / "results")
    readme = bench / "README.md"
    readme.write_text("# Benchmarks\n\n<!-- summary:start -->\nold\n<!-- summary:end -->\n\nThe rest.\n")
    assert summary.write(readme, bench / "results") is True
    text = readme.read_text()
    assert text.startswith("# Benchmarks\n\n<!-- summary:start -->\n") and text.endswith("<!-- summary:end -->\n\nThe rest.\n")
    assert "old\n" not in text
    assert summary.write(readme, bench / "results") is False  # idempotent
    assert readme.read_text() == text


def test_command_line_check():
    run = subprocess.run([sys.executable, str(SCRIPT), "--check"], capture_output=True, text=True, cwd=REPO)
    assert run.returncode == 0, run.stderr
    printed = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True, cwd=REPO, check=True)
    assert printed.stdout.startswith("| benchmark | what it measures | headline figures | machine / load | results |")
