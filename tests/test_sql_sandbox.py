"""`synpref sql` reads the lake's tables and nothing else, stops on time, memory and Ctrl-C,
and reports every failure as one `Error:` line (the real command, in a subprocess)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import run_stages, toy_preference_records, write_jsonl, write_sources
from synpref.lake.duck import refresh_views
from synpref.lake import Lake

SYNPREF = Path(sys.executable).parent / "synpref"
ENDLESS = "select sum(range) from range(1000000000000::bigint)"  # minutes of work, no memory


@pytest.fixture(scope="module")
def lake(tmp_path_factory) -> Lake:
    # quotes in the path: every path must reach DuckDB quoted
    tmp = tmp_path_factory.mktemp("sandbox") / "o'brien's data"
    tmp.mkdir()
    write_jsonl(tmp / "pairs.jsonl", toy_preference_records(30))
    src = write_sources(tmp / "sources.yaml", [{"name": "toy", "path": "pairs.jsonl",
                                                "shape": "prompt_chosen_rejected"}])
    lake = Lake.at(tmp / "lake")
    run_stages(lake, src)
    refresh_views(lake)
    (lake.root / "annotation").mkdir()
    (lake.root / "annotation" / "ticket.key").write_text("secret-signing-key")
    return lake


def sql(lake: Lake, query: str, *extra: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([str(SYNPREF), "sql", query, "--lake", str(lake.root), *extra],
                          capture_output=True, text=True, timeout=timeout)


def one_error_line(out: subprocess.CompletedProcess) -> str:
    assert out.returncode == 1, out.stdout + out.stderr
    assert "Traceback" not in out.stderr, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), out.stderr
    return lines[0]


def test_the_lakes_tables_answer(lake):
    out = sql(lake, "select count(*) as n from silver_pairs join raw_pairs using (raw_id)", "--format", "csv")
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["n", "30"]


@pytest.mark.parametrize("target", [
    "/etc/passwd",
    "/proc/self/environ",
    "{lake}/annotation/ticket.key",  # inside the lake, but not a table
    "{lake}/../sources.yaml",
    "{lake}/raw/raw_pairs/../../annotation/ticket.key",  # `..` out of a table folder
])
def test_files_outside_the_tables_are_refused(lake, target):
    path = target.format(lake=lake.root).replace("'", "''")
    for reader in ("read_text", "read_csv", "read_blob"):
        error = one_error_line(sql(lake, f"select * from {reader}('{path}')"))
        assert "Permission Error" in error and "secret" not in error


def test_the_sandbox_cannot_be_undone_or_extended(lake):
    for query in ("set enable_external_access = true", "install httpfs", "load httpfs", "attach 'x.db'",
                  "select 1; set lock_configuration = false"):
        assert "refused" in one_error_line(sql(lake, query))
    # a remote URL would need the httpfs extension: it is neither installed nor loaded on demand
    assert "Permission Error" in one_error_line(sql(lake, "select * from read_csv('https://example.org/x.csv')"))


def test_explain_of_a_select_runs_and_of_a_write_is_refused(lake):
    for query in ("explain select count(*) from silver_pairs", "explain analyze select count(*) from silver_pairs"):
        out = sql(lake, query)
        assert out.returncode == 0 and "explain" in out.stdout.lower(), out.stderr
    assert "COPY" in one_error_line(sql(lake, "explain analyze copy silver_pairs to 'out.csv'"))


def test_a_run_time_error_is_one_line(lake):
    error = one_error_line(sql(lake, "select cast('x' as int)"))
    assert error == "Error: Conversion Error: Could not convert string 'x' to INT32"


def test_the_time_limit_stops_a_query(lake):
    start = time.monotonic()
    error = one_error_line(sql(lake, ENDLESS, "--timeout", "1"))
    assert error == "Error: query stopped after the time limit of 1 s (--timeout)"
    assert time.monotonic() - start < 60  # minutes of work were cut short


def test_ctrl_c_stops_a_query_at_once(lake):
    proc = subprocess.Popen([str(SYNPREF), "sql", ENDLESS, "--lake", str(lake.root), "--timeout", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(6)  # imports done (under a second on a quiet machine), the query running for minutes
    assert proc.poll() is None
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1 and err.strip() == "Error: query interrupted (Ctrl-C)", err


def test_the_memory_limit_bounds_a_query(lake):
    error = one_error_line(sql(lake, "select len(list(range)) from range(100000000::bigint)",
                               "--memory-limit", "100MB"))
    assert "Out of Memory" in error
