"""The `synpref` command: materialize, sql (read-only), tables, and the demo end to end."""

from __future__ import annotations

import json
import re

import pytest
from click.testing import CliRunner

from conftest import tamper, write_jsonl, write_sources
from dagster_project.cli import main

RECORDS = [{"prompt": f"q{i}", "chosen": f"good {i}", "rejected": f"bad {i}"} for i in range(12)]


@pytest.fixture(scope="module")
def built_lake(tmp_path_factory):
    """One lake for the module's read-only tests (tests that change it take a copy)."""
    tmp_path = tmp_path_factory.mktemp("cli")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DAGSTER_HOME", str(tmp_path / "home"))
        write_jsonl(tmp_path / "a.jsonl", RECORDS + RECORDS[:3])
        src = write_sources(tmp_path / "s.yaml", [{"name": "a", "path": "a.jsonl",
                                                  "shape": "prompt_chosen_rejected"}])
        lake_dir = tmp_path / "lake"
        result = CliRunner().invoke(main, ["materialize", "--select", "*silver_pairs", "--sources", str(src),
                                           "--lake", str(lake_dir)])
    assert result.exit_code == 0, result.output
    return lake_dir


def _sql(lake_dir, query, *extra):
    return CliRunner().invoke(main, ["sql", query, "--lake", str(lake_dir), *extra])


def _silver_count(lake_dir) -> int:
    result = _sql(lake_dir, "select count(*) as n from silver_pairs", "--format", "csv")
    assert result.exit_code == 0 and result.output.splitlines()[0] == "n", result.output
    (n,) = result.output.splitlines()[1:]
    return int(n)


def test_materialize_prints_the_tables(built_lake):
    result = CliRunner().invoke(main, ["tables", "--lake", str(built_lake)])
    assert result.exit_code == 0, result.output
    listed = {line.split()[0]: line.split()[1:] for line in result.output.splitlines()
              if line.split() and line.split()[0] in ("raw_pairs", "ingest_quarantine", "silver_decisions",
                                                      "silver_pairs", "silver_quarantine")}
    # table: layer, rows, files (15 records, 3 of them repeats)
    assert listed == {"raw_pairs": ["raw", "15", "1"], "ingest_quarantine": ["raw", "0", "1"],
                      "silver_decisions": ["silver", "15", "1"], "silver_pairs": ["silver", "12", "1"],
                      "silver_quarantine": ["silver", "3", "1"]}


def test_lake_goes_before_or_after_the_command(built_lake, tmp_path, monkeypatch):
    monkeypatch.setenv("SYNPREF_LAKE", str(tmp_path / "elsewhere"))
    after = CliRunner().invoke(main, ["tables", "--lake", str(built_lake)])
    before = CliRunner().invoke(main, ["--lake", str(built_lake), "tables"])
    assert before.exit_code == 0 and before.output == after.output and "silver_pairs" in before.output
    # after the command wins over before it, and either over $SYNPREF_LAKE
    both = CliRunner().invoke(main, ["--lake", str(tmp_path / "nowhere"), "tables", "--lake", str(built_lake)])
    assert both.output == after.output
    env_only = CliRunner().invoke(main, ["tables"])
    assert "no tables yet" in env_only.output and "elsewhere" in env_only.output
    nested = CliRunner().invoke(main, ["--lake", str(built_lake), "sql", "select count(*) as n from silver_pairs"])
    assert nested.exit_code == 0 and "12" in nested.output


def test_sql_prints_the_count(built_lake):
    result = _sql(built_lake, "select count(*) as n from silver_pairs")
    assert result.exit_code == 0, result.output
    cells = [line.strip("│ ") for line in result.output.splitlines() if line.startswith("│")]
    assert cells == ["n", "int64", "12"], result.output  # DuckDB's box: name, type, value


def test_sql_csv_and_json(built_lake):
    csv = _sql(built_lake, "select reason, count(*) as n from quarantine group by reason", "--format", "csv")
    assert csv.output.splitlines() == ["reason,n", "duplicate,3"]
    rows = json.loads(_sql(built_lake, "select chosen from silver_pairs order by source_row limit 2",
                           "--format", "json").output)
    assert rows == [{"chosen": "good 0"}, {"chosen": "good 1"}]


@pytest.mark.parametrize("statement", [
    "drop view silver_pairs",
    "insert into silver_pairs select * from silver_pairs",
    "copy (select * from silver_pairs) to 'out.csv'",
    "create table t as select 1",
    "attach 'other.duckdb' as other",
    "select 1; drop view raw_pairs",
    "explain analyze copy (select 1) to 'x.csv'",
    "update silver_pairs set chosen = ''",
])
def test_sql_refuses_writes(built_lake, statement):
    result = _sql(built_lake, statement)
    assert result.exit_code != 0
    assert "refused" in result.output and "read-only" in result.output
    assert _silver_count(built_lake) == 12  # nothing changed


def test_sql_reports_a_bad_query_clearly(built_lake):
    result = _sql(built_lake, "select nope from silver_pairs")
    assert result.exit_code != 0 and "nope" in result.output


def test_materialize_rejects_an_unknown_selection(built_lake):
    result = CliRunner().invoke(main, ["materialize", "--select", "no_such_table", "--lake", str(built_lake)])
    assert result.exit_code != 0 and "no_such_table" in result.output


def test_check_passes_with_warnings_and_fails_on_a_blocking_violation(built_lake, tmp_path):
    import shutil

    from synpref.lake import Lake

    lake_dir = shutil.copytree(built_lake, tmp_path / "lake")
    ok = CliRunner().invoke(main, ["check", "--lake", str(lake_dir)])
    assert ok.exit_code == 0, ok.output
    assert "0 blocking failed" in ok.output and "source_share" in ok.output  # one source: a warning only
    # every row says the share of rows its expectation needs; the summary sums the rows as shown
    rows = re.findall(r" (blocking|warning) +(all|[01](?:\.\d+)?) (ok|within|FAILED) +(\d+) of", ok.output)
    assert len(rows) == int(re.search(r"(\d+) checks:", ok.output)[1]) - ok.output.count("reconcile: ")
    failed_warnings = sum(kind == "warning" and result == "FAILED" for kind, _, result, _ in rows)
    assert failed_warnings >= 1 and f"{failed_warnings} warnings failed" in ok.output
    # a pass with unexpected rows is `within` its allowance, never a bare ok
    assert all(unexpected == "0" for _, _, result, unexpected in rows if result == "ok")
    within = sum(result == "within" for _, _, result, _ in rows)
    assert f"{within} passed with unexpected rows" in ok.output
    assert "Data Docs:" in ok.output
    tamper(Lake.at(lake_dir), "silver_pairs", "select * replace ((select min(pair_id) from {t}) as pair_id) from {t}")
    bad = CliRunner().invoke(main, ["check", "silver_pairs", "--lake", str(lake_dir)])
    assert bad.exit_code == 1
    assert "expect_column_values_to_be_unique(pair_id)" in bad.output and "FAILED" in bad.output
    assert "raw_pairs" not in bad.output.split("silver_pairs", 1)[0]  # only the table asked for


def test_sql_works_on_a_moved_lake(built_lake, tmp_path):
    import shutil

    moved = shutil.copytree(built_lake, tmp_path / "moved")
    (built_lake.parent / "hidden").mkdir(exist_ok=True)
    original = built_lake.rename(built_lake.parent / "hidden" / "lake")  # the old paths are gone
    try:
        assert _silver_count(moved) == 12
    finally:
        original.rename(built_lake)


def test_the_quiet_console_keeps_stage_lines_and_sends_the_rest_to_the_log(tmp_path, capfd):
    import subprocess
    import sys

    from dagster_project.console import StageConsole
    from synpref.lake import Lake

    def noisy_stage():
        print("a library's chatter")
        subprocess.run(["echo", "a child process's chatter"], check=True)
        subprocess.run([sys.executable, "-c", "import warnings; warnings.warn('a warning')"], check=True)
        return True

    with StageConsole(Lake.at(tmp_path / "lake"), "test") as console:
        console.run("the stage", noisy_stage)
        console.echo("a line for the user")
    console.say_log()
    shown = capfd.readouterr()
    assert re.search(r"^==> the stage: done \(\d+s\)$", shown.out, re.M) and "a line for the user" in shown.out
    assert "chatter" not in shown.out + shown.err and "warning" not in shown.out + shown.err
    assert shown.out.splitlines()[-1].endswith(str(console.log_path))
    log = console.log_path.read_text()
    assert "a library's chatter" in log and "a child process's chatter" in log and "UserWarning" in log
    assert "==> the stage: done" in log  # the stage lines are in the log too, beside what they sum up

    with pytest.raises(SystemExit) as exit_code, StageConsole(Lake.at(tmp_path / "lake"), "failing") as console:
        console.run("a failing stage", lambda: False)
    assert exit_code.value.code == 1
    shown = capfd.readouterr().out
    assert "==> a failing stage: FAILED" in shown and f"the full log: {console.log_path}" in shown
