"""Sources mapped by the user's own SQL (`sql:`): the README's worked examples end to end, SQL in a
file, the errors a sources file or a SELECT can make, the accounting (records read = records
paired + records quarantined), row-level problems still quarantined per row, every format, and
`synpref sources check` / `synpref sources presets`. Real DuckDB, real ingest, real CLI."""

from __future__ import annotations

import json

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from click.testing import CliRunner

from conftest import rows, run_stages, write_jsonl, write_sources
from dagster_project.cli import main
from synpref.checks.reconcile import reconcile_ingest
from synpref.raw.mapping import MappingError, load_records
from synpref.raw.presets import load_preset, preset_names
from synpref.raw.sources import SourcesError, load_sources


def user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def meta(pair: dict) -> dict | None:
    return json.loads(pair["meta"]) if pair["meta"] is not None else None


def triple(pair: dict) -> tuple:
    return pair["conversation"], pair["chosen"], pair["rejected"]


def one_source(tmp_path, records, sql: str | None = None, name: str = "mine", file: str = "data.jsonl", **entry):
    """A sources file with one source over `records` (written as JSONL unless `records` is bytes)."""
    path = tmp_path / file
    if isinstance(records, bytes):
        path.write_bytes(records)
    elif records is not None:
        write_jsonl(path, records)
    spec = {"name": name, "path": file, **entry}
    if sql is not None:
        spec["sql"] = sql
    return write_sources(tmp_path / "sources.yaml", [spec])


def accounted(summary, lake) -> None:
    """Every record read is paired or quarantined, and the reconciliation agrees."""
    (result,) = summary.files
    pairs, quarantine = rows(lake, "raw_pairs"), rows(lake, "ingest_quarantine")
    quarantined_records = {q["source_row"] for q in quarantine} - {p["source_row"] for p in pairs}
    assert result.read == result.paired + len(quarantined_records)
    assert (result.raw, result.quarantined) == (len(pairs), len(quarantine))
    check = reconcile_ingest(lake)
    assert check.success, check.detail


# ---------------------------------------------------------------- the README's worked examples

MESSAGE_LIST_SQL = (
    "select source_row, prompt as conversation, chosen.content as chosen, rejected.content as rejected, "
    "id, chosen.model as chosen_model from source"
)

MESSAGE_LIST_RECORDS = [
    {
        "id": 7,
        "prompt": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Capital of France?"}],
        "chosen": {"content": "Paris.", "model": "a"},
        "rejected": {"content": "Lyon.", "model": "b"},
    },
    {
        "id": 8,
        "prompt": [{"role": "user", "content": "2 + 2?"}],
        "chosen": {"content": "4.", "model": "b"},
        "rejected": {"content": "5.", "model": "a"},
    },
]


def test_example_message_list_prompt_with_answers_inside_objects(lake, tmp_path):
    summary, silver = run_stages(lake, one_source(tmp_path, MESSAGE_LIST_RECORDS, MESSAGE_LIST_SQL))
    first, second = rows(lake, "raw_pairs")
    assert triple(first) == (
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Capital of France?"}],
        "Paris.",
        "Lyon.",
    )
    assert triple(second) == (user("2 + 2?"), "4.", "5.")
    assert first["rejected_conversation"] is None and first["source"] == "mine"
    assert [meta(p) for p in (first, second)] == [{"id": 7, "chosen_model": "a"}, {"id": 8, "chosen_model": "b"}]
    assert rows(lake, "ingest_quarantine") == []
    # meta reaches silver
    silver_pairs = rows(lake, "silver_pairs")
    assert [(triple(p), meta(p)) for p in silver_pairs] == [
        (triple(first), meta(first)),
        (triple(second), meta(second)),
    ]
    assert silver.silver_rows == 2
    accounted(summary, lake)


LABEL_SQL = """
select source_row,
       question as prompt,
       case preferred when 'first' then answer_a when 'second' then answer_b end as chosen,
       case preferred when 'first' then answer_b when 'second' then answer_a end as rejected,
       case when preferred = 'tie' then 'tie'
            when preferred not in ('first', 'second') then 'unknown_label' end as quarantine_reason,
       case when preferred not in ('first', 'second') then 'preferred is ' || preferred end as quarantine_detail,
       preferred
from source
"""

LABEL_RECORDS = [
    {"question": "Best pet?", "answer_a": "A cat.", "answer_b": "A rock.", "preferred": "first"},
    {"question": "Best color?", "answer_a": "Grey.", "answer_b": "Blue.", "preferred": "second"},
    {"question": "Best day?", "answer_a": "Monday.", "answer_b": "Sunday.", "preferred": "tie"},
    {"question": "Best fruit?", "answer_a": "Apple.", "answer_b": "Pear.", "preferred": "both"},
]


def test_example_label_column_mapped_by_case(lake, tmp_path):
    summary, _ = run_stages(lake, one_source(tmp_path, LABEL_RECORDS, LABEL_SQL))
    pairs = rows(lake, "raw_pairs")
    assert [triple(p) for p in pairs] == [
        (user("Best pet?"), "A cat.", "A rock."),
        (user("Best color?"), "Blue.", "Grey."),
    ]
    assert [meta(p) for p in pairs] == [{"preferred": "first"}, {"preferred": "second"}]
    quarantine = rows(lake, "ingest_quarantine")
    assert [(q["source_row"], q["reason"], q["detail"]) for q in quarantine] == [
        (3, "tie", "preferred is tie"),  # a known reason is kept as it is
        (4, "excluded_by_source", "unknown_label: preferred is both"),
    ]  # the source's own reason, in the detail
    assert json.loads(quarantine[1]["raw_text"]) == LABEL_RECORDS[3]
    assert summary.files[0].reasons == {"excluded_by_source": 1, "tie": 1}
    assert [p["chosen"] for p in rows(lake, "silver_pairs")] == ["A cat.", "Blue."]
    accounted(summary, lake)


def test_own_reason_without_detail_and_reasons_come_before_the_checks(lake, tmp_path):
    sql = (
        "select source_row, question as prompt, null::varchar as chosen, answer_b as rejected, "
        "case when preferred = 'tie' then 'tie' else 'not_rated' end as quarantine_reason from source"
    )
    summary, _ = run_stages(lake, one_source(tmp_path, LABEL_RECORDS[2:], sql))
    # the null chosen is not what quarantined them: the given reason comes first
    assert [q["reason"] for q in rows(lake, "ingest_quarantine")] == ["tie", "excluded_by_source"]
    assert rows(lake, "ingest_quarantine")[1]["detail"] == "not_rated"
    accounted(summary, lake)


def test_params_reach_the_sql_through_getvariable(lake, tmp_path):
    records = [{"prompt": "Q", "chosen": "good", "rejected": "bad", "score": s} for s in (1, 5)]
    sql = (
        "select source_row, prompt, chosen, rejected from source "
        "where score >= getvariable('min_score') and getvariable('tag') = 'x'"
    )
    summary, _ = run_stages(lake, one_source(tmp_path, records, sql, params={"min_score": 3, "tag": "x"}))
    assert [p["source_row"] for p in rows(lake, "raw_pairs")] == [2]
    assert [(q["source_row"], q["reason"]) for q in rows(lake, "ingest_quarantine")] == [(1, "no_pair")]
    accounted(summary, lake)


def test_sql_from_a_file_beside_the_sources_file(lake, tmp_path):
    (tmp_path / "mapping").mkdir()
    (tmp_path / "mapping" / "objects.sql").write_text("-- answers inside objects\n" + MESSAGE_LIST_SQL + "\n")
    src = one_source(tmp_path, MESSAGE_LIST_RECORDS, "mapping/objects.sql")
    assert load_sources(src).sources[0].sql.startswith("-- answers inside objects")
    summary, _ = run_stages(lake, src)
    assert [meta(p) for p in rows(lake, "raw_pairs")] == [
        {"id": 7, "chosen_model": "a"},
        {"id": 8, "chosen_model": "b"},
    ]
    accounted(summary, lake)


def test_sql_file_that_is_missing_names_the_source(tmp_path):
    with pytest.raises(SourcesError, match=r"source 'mine'.*cannot read .*nope\.sql"):
        load_sources(one_source(tmp_path, MESSAGE_LIST_RECORDS, "nope.sql"))


# ---------------------------------------------------------------- errors, with messages naming the source

GOOD = [{"prompt": "Q", "chosen": "good", "rejected": "bad"}]


@pytest.mark.parametrize(
    "sql,message",
    [
        ("select source_row, prompt, chosen rejected from", r"source 'mine': the SQL does not run: Parser Error"),
        ("select source_row, prompt, rejected from source", r"source 'mine': the SQL returns no chosen column"),
        ("select prompt, chosen, rejected from source", r"source 'mine': the SQL returns no source_row column"),
        ("select prompt, rejected from source", r"source 'mine': the SQL returns no source_row, chosen columns"),
        (
            "select source_row, prompt, chosen, rejected, no_such_field from source",
            r"source 'mine': the SQL does not run: Binder Error: .*no_such_field",
        ),
        (
            "select source_row + 100 as source_row, prompt, chosen, rejected from source",
            r"source 'mine': the SQL returns 1 rows whose source_row is no record of the file \(e\.g\. 101\)",
        ),
    ],
)
def test_a_wrong_select_fails_the_source_naming_it(lake, tmp_path, sql, message):
    with pytest.raises(MappingError, match=message):
        run_stages(lake, one_source(tmp_path, GOOD, sql))


@pytest.mark.parametrize(
    "entry,message",
    [
        (
            {"sql": "select source_row, prompt, chosen, rejected from source", "columns": {"prompt": "q"}},
            r"source 'mine': `columns` renames a preset's fields; with `sql:` name the fields in the SELECT itself",
        ),
        (
            {"sql": "select 1", "preset": "prompt_chosen_rejected"},
            r"source 'mine': give one of `preset:` \(or `shape:`\) and `sql:`, not preset and sql",
        ),
        (
            {"shape": "prompt_chosen_rejected", "preset": "prompt_chosen_rejected"},
            r"source 'mine': give one of .*not preset and shape",
        ),
        ({}, r"source 'mine': give one of `preset:` \(or `shape:`\) and `sql:`, neither is given"),
        (
            {"preset": "no_such_preset"},
            r"source 'mine' has unknown preset 'no_such_preset'; known: .*prompt_chosen_rejected",
        ),
        ({"shape": "no_such_shape"}, r"source 'mine' has unknown shape 'no_such_shape'"),
        (
            {"preset": "ultrafeedback", "params": {"bogus": 1}},
            r"source 'mine': preset ultrafeedback has no param 'bogus'; its params: score, seed",
        ),
        (
            {"preset": "prompt_chosen_rejected", "params": {"path_prompt": "$.q"}},
            r"source 'mine': preset prompt_chosen_rejected has no param 'path_prompt'; its params: none",
        ),
        ({"sql": "select 1", "params": {"x": [1]}}, r"source 'mine': param x must be a string or a number, not list"),
        (
            {"sql": "select 1", "params": {"bad-name": 1}},
            r"source 'mine': param name 'bad-name' must be a plain identifier",
        ),
    ],
)
def test_a_wrong_sources_entry_is_refused_naming_the_source(tmp_path, entry, message):
    with pytest.raises(SourcesError, match=message):
        load_sources(one_source(tmp_path, GOOD, **entry))


def test_shape_is_the_older_name_of_preset(tmp_path):
    (old,) = load_sources(one_source(tmp_path, GOOD, shape="prompt_chosen_rejected")).sources
    (new,) = load_sources(one_source(tmp_path, GOOD, preset="prompt_chosen_rejected")).sources
    assert old == new and old.preset == "prompt_chosen_rejected" and old.shape == "prompt_chosen_rejected"
    (own,) = load_sources(one_source(tmp_path, GOOD, "select 1")).sources
    assert own.shape == "sql" and own.preset is None


# ---------------------------------------------------------------- accounting


def test_records_the_select_filters_out_are_no_pair(lake, tmp_path):
    records = [{"id": i, "prompt": f"Q{i}", "chosen": "good", "rejected": "bad"} for i in range(1, 6)]
    summary, _ = run_stages(
        lake, one_source(tmp_path, records, "select source_row, prompt, chosen, rejected from source where id % 2 = 1")
    )
    (result,) = summary.files
    assert [p["source_row"] for p in rows(lake, "raw_pairs")] == [1, 3, 5]
    quarantine = rows(lake, "ingest_quarantine")
    assert [(q["source_row"], q["reason"], q["detail"]) for q in quarantine] == [
        (2, "no_pair", "the source's SQL returned no row for this record"),
        (4, "no_pair", "the source's SQL returned no row for this record"),
    ]
    assert json.loads(quarantine[0]["raw_text"]) == records[1]
    assert (result.read, result.paired, result.raw, result.quarantined) == (5, 3, 3, 2)
    assert summary.read == result.paired + len(quarantine)
    accounted(summary, lake)


def test_two_pairs_from_one_record(lake, tmp_path):
    records = [
        {"prompt": "Q", "best": "A", "middle": "B", "worst": "C"},
        {"prompt": "R", "best": "D", "middle": "E", "worst": "F"},
    ]
    sql = """
        select source_row, prompt, best as chosen, middle as rejected, 'best-middle' as which from source
        union all
        select source_row, prompt, middle as chosen, worst as rejected, 'middle-worst' as which from source
        where source_row = 1
    """
    summary, _ = run_stages(lake, one_source(tmp_path, records, sql))
    (result,) = summary.files
    pairs = rows(lake, "raw_pairs", "source_row, chosen")
    assert [(p["source_row"], p["chosen"], p["rejected"], meta(p)["which"]) for p in pairs] == [
        (1, "A", "B", "best-middle"),
        (1, "B", "C", "middle-worst"),
        (2, "D", "E", "best-middle"),
    ]
    assert len({p["raw_id"] for p in pairs}) == 3
    assert (result.read, result.paired, result.raw, result.quarantined) == (2, 2, 3, 0)
    assert len(rows(lake, "silver_pairs")) == 3
    accounted(summary, lake)


def test_one_pair_from_two_records_lists_source_rows(lake, tmp_path):
    """Consecutive rows rating one answer each: the pair names both records in `source_rows`,
    so the second counts as paired, not as no_pair."""
    records = [
        {"q": "Q1", "answer": "A", "score": 4},
        {"q": "Q1", "answer": "B", "score": 1},
        {"q": "Q2", "answer": "C", "score": 2},
        {"q": "Q2", "answer": "D", "score": 3},
    ]
    sql = """
        select a.source_row, a.q as prompt,
               case when a.score >= b.score then a.answer else b.answer end as chosen,
               case when a.score >= b.score then b.answer else a.answer end as rejected,
               [a.source_row, b.source_row] as source_rows
        from source a join source b on b.source_row = a.source_row + 1
        where a.source_row % 2 = 1
    """
    summary, _ = run_stages(lake, one_source(tmp_path, records, sql))
    (result,) = summary.files
    pairs = rows(lake, "raw_pairs")
    assert [(p["source_row"], p["chosen"], p["rejected"], meta(p)) for p in pairs] == [
        (1, "A", "B", {"source_rows": [1, 2]}),
        (3, "D", "C", {"source_rows": [3, 4]}),
    ]
    assert rows(lake, "ingest_quarantine") == []
    assert (result.read, result.paired, result.raw) == (4, 4, 2)
    check = reconcile_ingest(lake)
    assert check.success and check.figures["records_paired"] == 4, check.detail


# ---------------------------------------------------------------- row-level problems stay per row

SIMPLE_SQL = "select source_row, prompt, chosen, rejected from source"


def test_bad_lines_are_quarantined_per_row_under_sql(lake, tmp_path):
    good = [json.dumps({"prompt": f"Q{i}", "chosen": "good", "rejected": "bad"}).encode() for i in range(3)]
    data = (
        b"\n".join(
            [
                good[0],
                b'{"prompt": "Q", "chosen": oops}',  # not JSON
                b'{"prompt": "caf\xe9", "chosen": "good", "rejected": "bad"}',  # Latin-1, not UTF-8
                good[1],
                # a lone surrogate, even in a field no one maps
                b'{"prompt": "Q", "chosen": "good", "rejected": "bad", "note": "\\ud800"}',
                b"",  # a blank line keeps its number, and is no record
                good[2],
            ]
        )
        + b"\r\n"
    )
    summary, _ = run_stages(lake, one_source(tmp_path, data, SIMPLE_SQL))
    (result,) = summary.files
    assert [(p["source_row"], p["conversation"]) for p in rows(lake, "raw_pairs")] == [
        (1, user("Q0")),
        (4, user("Q1")),
        (7, user("Q2")),
    ]
    assert [(q["source_row"], q["reason"]) for q in rows(lake, "ingest_quarantine")] == [
        (2, "invalid_json"),
        (3, "invalid_utf8"),
        (5, "invalid_unicode"),
    ]
    assert result.read == 6 and result.reasons == {"invalid_json": 1, "invalid_unicode": 1, "invalid_utf8": 1}
    accounted(summary, lake)


def test_lines_may_end_in_cr(lake, tmp_path):
    data = b"".join(
        json.dumps({"prompt": f"Q{i}", "chosen": "good", "rejected": "bad"}).encode() + b"\r" for i in range(2)
    )
    run_stages(lake, one_source(tmp_path, data, SIMPLE_SQL))
    assert [p["conversation"] for p in rows(lake, "raw_pairs")] == [user("Q0"), user("Q1")]


def test_oversize_field_is_field_too_large(lake, tmp_path):
    records = [
        {"prompt": "Q", "chosen": "x" * 11, "rejected": "bad"},
        {"prompt": "Q", "chosen": "x" * 10, "rejected": "bad"},
        {"prompt": [{"role": "user", "content": "y" * 11}], "chosen": "ok", "rejected": "bad"},
    ]
    summary, _ = run_stages(lake, one_source(tmp_path, records, SIMPLE_SQL, max_field_chars=10))
    assert [p["source_row"] for p in rows(lake, "raw_pairs")] == [2]
    assert [(q["source_row"], q["reason"], q["detail"]) for q in rows(lake, "ingest_quarantine")] == [
        (1, "field_too_large", "chosen has 11 chars, over the limit of 10"),
        (3, "field_too_large", "prompt[0] has 11 chars, over the limit of 10"),
    ]
    accounted(summary, lake)


def test_wrong_output_types_are_quarantined_per_row(lake, tmp_path):
    records = [
        {"prompt": "Q", "chosen": "good", "rejected": "bad"},
        {"prompt": "Q", "chosen": None, "rejected": "bad"},
        {"prompt": "Q", "chosen": 3, "rejected": "bad"},
        {"prompt": [{"role": "wizard", "content": "hi"}], "chosen": "good", "rejected": "bad"},
        {"prompt": "Q", "chosen": [{"role": "user", "content": "no answer"}], "rejected": "bad"},
    ]
    summary, _ = run_stages(lake, one_source(tmp_path, records, SIMPLE_SQL))
    assert [p["source_row"] for p in rows(lake, "raw_pairs")] == [1]
    assert [(q["source_row"], q["reason"]) for q in rows(lake, "ingest_quarantine")] == [
        (2, "null_content"),
        (3, "wrong_type"),
        (4, "unknown_role"),
        (5, "bad_conversation"),
    ]
    accounted(summary, lake)


# ---------------------------------------------------------------- formats


def test_parquet_source_has_the_typed_columns(lake, tmp_path):
    path = tmp_path / "data.parquet"
    pq.write_table(pa.Table.from_pylist(MESSAGE_LIST_RECORDS), path)
    with duckdb.connect() as con:
        load_records(con, path, "parquet")
        columns = dict(con.execute("select column_name, column_type from (describe source)").fetchall())
    assert list(columns) == ["source_row", "record", "id", "prompt", "chosen", "rejected"]
    types = {k: v.replace('"', "") for k, v in columns.items()}
    assert types["id"] == "BIGINT" and types["chosen"] == "STRUCT(content VARCHAR, model VARCHAR)"
    assert types["prompt"] == "STRUCT(role VARCHAR, content VARCHAR)[]"
    summary, _ = run_stages(lake, one_source(tmp_path, None, MESSAGE_LIST_SQL, file="data.parquet"))
    pairs = rows(lake, "raw_pairs")
    assert [triple(p)[1:] for p in pairs] == [("Paris.", "Lyon."), ("4.", "5.")]
    assert pairs[0]["conversation"][0] == {"role": "system", "content": "Be brief."}
    assert [meta(p) for p in pairs] == [{"id": 7, "chosen_model": "a"}, {"id": 8, "chosen_model": "b"}]
    accounted(summary, lake)


def test_json_array_source(lake, tmp_path):
    (tmp_path / "data.json").write_text(json.dumps(MESSAGE_LIST_RECORDS, indent=2))
    summary, _ = run_stages(lake, one_source(tmp_path, None, MESSAGE_LIST_SQL, file="data.json"))
    assert [(p["source_row"], p["chosen"], meta(p)) for p in rows(lake, "raw_pairs")] == [
        (1, "Paris.", {"id": 7, "chosen_model": "a"}),
        (2, "4.", {"id": 8, "chosen_model": "b"}),
    ]
    accounted(summary, lake)


def test_datasets_folder_source(lake, tmp_path):
    datasets = pytest.importorskip("datasets")
    columns = {k: [r[k] for r in LABEL_RECORDS] for k in LABEL_RECORDS[0]}
    datasets.Dataset.from_dict(columns).save_to_disk(str(tmp_path / "saved"))
    summary, _ = run_stages(lake, one_source(tmp_path, None, LABEL_SQL, file="saved"))
    assert [(p["chosen"], p["rejected"]) for p in rows(lake, "raw_pairs")] == [
        ("A cat.", "A rock."),
        ("Blue.", "Grey."),
    ]
    assert [(q["source_row"], q["reason"]) for q in rows(lake, "ingest_quarantine")] == [
        (3, "tie"),
        (4, "excluded_by_source"),
    ]
    accounted(summary, lake)


# ---------------------------------------------------------------- synpref sources check / presets


def check_files(tmp_path):
    """Two sources: the message-list example with one bad line, and the label example."""
    lines = [json.dumps(r) for r in MESSAGE_LIST_RECORDS]
    (tmp_path / "objects.jsonl").write_text(lines[0] + "\n{not json\n" + lines[1] + "\n")
    write_jsonl(tmp_path / "labels.jsonl", LABEL_RECORDS)
    return write_sources(
        tmp_path / "sources.yaml",
        [
            {"name": "objects", "path": "objects.jsonl", "sql": MESSAGE_LIST_SQL},
            {"name": "labels", "path": "labels.jsonl", "sql": LABEL_SQL},
        ],
    )


def invoke(*args):
    return CliRunner().invoke(main, ["sources", *args], catch_exceptions=False)


def test_check_prints_pairs_and_reasons_and_writes_nothing(tmp_path, monkeypatch):
    src = check_files(tmp_path)
    monkeypatch.chdir(tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    out = invoke("check", str(src), "--show", "1")
    assert out.exit_code == 0, out.output
    text = out.output
    assert "objects (sql)" in text and "labels (sql)" in text
    assert "3 records sampled: 2 pairs, 1 quarantine rows" in text
    assert "Capital of France?" in text and "Paris." in text and "Lyon." in text and "chosen_model" in text
    assert "2 + 2?" not in text  # --show 1
    assert "invalid_json" in text and "tie" in text and "excluded_by_source" in text
    assert "unknown_label: preferred is both" in text
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no lake, nothing written
    assert not (tmp_path / "lake").exists()


def test_check_json_and_source_filter(tmp_path, monkeypatch):
    src = check_files(tmp_path)
    monkeypatch.chdir(tmp_path)
    out = invoke("check", str(src), "--json", "--source", "objects")
    assert out.exit_code == 0, out.output
    (result,) = json.loads(out.output)
    assert (result["source"], result["preset"], result["records"], result["pairs"], result["quarantined"]) == (
        "objects",
        "sql",
        3,
        2,
        1,
    )
    assert result["reasons"] == {"invalid_json": 1} and result["examples"]["invalid_json"][0] == 2
    assert [p["chosen"] for p in result["first_pairs"]] == ["Paris.", "4."]
    assert result["first_pairs"][0]["meta"] == {"id": 7, "chosen_model": "a"}
    assert result["error"] is None
    out = invoke("check", str(src), "--json", "--sample", "2", "--source", "labels")
    (result,) = json.loads(out.output)
    assert (result["source"], result["records"], result["pairs"], result["reasons"]) == ("labels", 2, 2, {})
    assert not (tmp_path / "lake").exists()


def test_check_unknown_source_is_a_usage_error(tmp_path, monkeypatch):
    src = check_files(tmp_path)
    out = invoke("check", str(src), "--source", "nope")
    assert out.exit_code == 2 and "no source named 'nope'; the sources are objects, labels" in out.output


def test_check_broken_sql_exits_1_with_the_error(tmp_path, monkeypatch):
    write_jsonl(tmp_path / "data.jsonl", GOOD)
    src = write_sources(
        tmp_path / "sources.yaml",
        [
            {"name": "fine", "path": "data.jsonl", "sql": SIMPLE_SQL},
            {"name": "broken", "path": "data.jsonl", "sql": "select source_row, prompt, rejected from source"},
        ],
    )
    monkeypatch.chdir(tmp_path)
    out = invoke("check", str(src))
    assert out.exit_code == 1
    assert "source 'broken': the SQL returns no chosen column" in " ".join(out.output.split())
    assert "1 records sampled: 1 pairs" in out.output  # the other source is still checked
    out = invoke("check", str(src), "--json")
    assert out.exit_code == 1
    fine, broken = json.loads(out.output)
    assert fine["error"] is None and broken["error"].startswith("source 'broken': the SQL returns no chosen column")
    assert not (tmp_path / "lake").exists()


def test_presets_lists_every_preset_with_its_params():
    out = invoke("presets")
    assert out.exit_code == 0
    listed = [line.split(":")[0] for line in out.output.splitlines() if line and not line.startswith(" ")]
    assert listed == list(preset_names()) and "_macros" not in out.output
    assert set(listed) >= {
        "prompt_chosen_rejected",
        "conversational",
        "hh_transcript",
        "labelled_outputs",
        "chatbot_arena",
        "pku_saferlhf",
        "shp",
        "ultrafeedback",
        "helpsteer2",
        "ranked",
    }
    assert "ultrafeedback: openbmb/UltraFeedback" in out.output
    assert (
        "params: path_instruction=$.instruction, path_completions=$.completions, score=overall_score, seed=0"
        in out.output
    )
    for name in listed:
        assert load_preset(name).summary in " ".join(out.output.split())


# ---------------------------------------------------------------- bugs found in review, fixed


def test_select_failing_at_run_time_names_the_source(lake, tmp_path):
    sql = "select source_row, prompt, chosen, rejected, prompt::integer as n from source"
    with pytest.raises(MappingError, match=r"source 'mine'"):
        run_stages(lake, one_source(tmp_path, GOOD, sql))


@pytest.mark.parametrize("data", [b"", b"{not json\n"], ids=["empty", "all-bad"])
def test_a_file_without_records_is_quarantined_not_failed(lake, tmp_path, data):
    summary, _ = run_stages(lake, one_source(tmp_path, data, SIMPLE_SQL))
    assert summary.files[0].quarantined == 1 and summary.files[0].raw == 0


def test_keys_differing_only_in_case_do_not_fail_the_file(lake, tmp_path):
    summary, _ = run_stages(lake, one_source(tmp_path, [{**GOOD[0], "A": 1, "a": 2}], SIMPLE_SQL))
    assert summary.files[0].raw == 1


def test_a_field_whose_type_changes_after_the_sample_is_not_taken_as_text(lake, tmp_path, monkeypatch):
    records = [*GOOD, *GOOD, {"prompt": [{"role": "user", "content": "hi"}], "chosen": {"a": 1}, "rejected": "bad"}]
    run_stages(lake, one_source(tmp_path, records, SIMPLE_SQL))
    assert [p["source_row"] for p in rows(lake, "raw_pairs")] == [1, 2]  # chosen is an object: no pair
    assert [(q["source_row"], q["reason"]) for q in rows(lake, "ingest_quarantine")] == [(3, "wrong_type")]


def test_source_row_is_always_an_integer(lake, tmp_path):
    run_stages(
        lake,
        one_source(tmp_path, GOOD, "select source_row::varchar as source_row, prompt, chosen, rejected from source"),
    )
    assert [p["source_row"] for p in rows(lake, "raw_pairs")] == [1]


def test_an_untyped_null_column_is_null_content(lake, tmp_path):
    sql = "select source_row, question as prompt, null as chosen, answer_b as rejected from source"
    run_stages(lake, one_source(tmp_path, LABEL_RECORDS[:1], sql))
    assert [(q["reason"], q["detail"]) for q in rows(lake, "ingest_quarantine")] == [("null_content", "chosen is null")]


def test_a_known_reason_without_detail_keeps_no_other_checks_detail(lake, tmp_path):
    sql = (
        "select source_row, question as prompt, null::varchar as chosen, answer_b as rejected, "
        "'tie' as quarantine_reason from source"
    )
    run_stages(lake, one_source(tmp_path, LABEL_RECORDS[2:3], sql))
    assert [(q["reason"], q["detail"]) for q in rows(lake, "ingest_quarantine")] == [("tie", None)]


def test_relocated_sources_file_still_finds_its_sql_file(tmp_path):
    from synpref.raw.sources import relocate

    (tmp_path / "objects.sql").write_text(MESSAGE_LIST_SQL)
    src = one_source(tmp_path, MESSAGE_LIST_RECORDS, "objects.sql")
    (tmp_path / "elsewhere").mkdir()
    copy = relocate(src, tmp_path / "elsewhere" / "sources.yaml")
    assert load_sources(copy).sources[0].sql == MESSAGE_LIST_SQL


def test_a_deeply_nested_record_does_not_fail_the_file(lake, tmp_path):
    deep = {**GOOD[0], "extra": json.loads("[" * 130 + "]" * 130)}
    summary, _ = run_stages(lake, one_source(tmp_path, [GOOD[0], deep], SIMPLE_SQL))
    assert summary.files[0].raw == 2


def test_sql_is_one_select_statement(lake, tmp_path):
    target = tmp_path / "written.csv"
    sql = f"{SIMPLE_SQL}; copy (select 42 as x) to '{target}'"
    with pytest.raises((SourcesError, MappingError), match="source 'mine'"):
        run_stages(lake, one_source(tmp_path, GOOD, sql))
    assert not target.exists()


def test_sql_reads_no_file_outside_the_source_roots(lake, tmp_path, monkeypatch):
    (tmp_path / "data").mkdir()
    secret = tmp_path / "secret.txt"
    secret.write_text("s3cr3t")
    write_jsonl(tmp_path / "data" / "d.jsonl", GOOD)
    src = write_sources(
        tmp_path / "data" / "sources.yaml",
        [
            {
                "name": "mine",
                "path": "d.jsonl",
                "sql": (
                    f"select source_row, prompt, chosen, rejected, "
                    f"(select content from read_text('{secret}')) as leaked from source"
                ),
            }
        ],
    )
    monkeypatch.setenv("SYNPREF_SOURCE_ROOTS", str(tmp_path / "data"))
    try:
        run_stages(lake, src)
    except (SourcesError, MappingError):
        return  # refused: fine
    assert "s3cr3t" not in " ".join(str(p["meta"]) for p in rows(lake, "raw_pairs"))


def test_line_ends_a_lone_cr_only_where_a_whole_file_uses_it(lake, tmp_path):
    """Lines end at \n (\r\n too). DuckDB's reader also takes a file whose every line ends in a
    lone \r; a file that mixes them is read with \n only, so a lone \r inside it joins two records
    into one line, which is quarantined (as before DuckDB read the files)."""
    lines = [json.dumps({"prompt": f"Q{i}", "chosen": "good", "rejected": "bad"}).encode() for i in range(3)]
    (tmp_path / "cr").mkdir()
    src = one_source(tmp_path / "cr", b"".join(line + b"\r" for line in lines), preset="prompt_chosen_rejected")
    summary, _ = run_stages(lake, src)
    assert (summary.files[0].read, summary.files[0].raw) == (3, 3)
    mixed = lines[0] + b"\r\n" + lines[1] + b"\r" + lines[2] + b"\n"
    other = type(lake).at(tmp_path / "lake2")
    summary, _ = run_stages(other, one_source(tmp_path, mixed, preset="prompt_chosen_rejected"))
    assert (summary.files[0].read, summary.files[0].raw) == (2, 1)
    assert [(q["source_row"], q["reason"]) for q in rows(other, "ingest_quarantine")] == [(2, "invalid_json")]


def test_a_null_conversation_is_quarantined(lake, tmp_path):
    records = [
        {"conv": [{"role": "user", "content": "hi"}], "chosen": "good", "rejected": "bad"},
        {"conv": None, "chosen": "good", "rejected": "bad"},
    ]
    run_stages(
        lake, one_source(tmp_path, records, "select source_row, conv as conversation, chosen, rejected from source")
    )
    assert [p["source_row"] for p in rows(lake, "raw_pairs")] == [1]
    assert [(q["source_row"], q["reason"]) for q in rows(lake, "ingest_quarantine")] == [(2, "bad_conversation")]


def test_a_confined_ingest_still_writes_its_parts_and_quarantine(lake, tmp_path, monkeypatch):
    """Under SYNPREF_SOURCE_ROOTS the SELECT is confined; the ingest's own writes (parts, the
    quarantine of a bad line) still land."""
    (tmp_path / "data").mkdir()
    write_jsonl(tmp_path / "data" / "d.jsonl", GOOD)
    with (tmp_path / "data" / "d.jsonl").open("ab") as f:
        f.write(b"{not json\n")
    src = write_sources(tmp_path / "data" / "sources.yaml", [{"name": "mine", "path": "d.jsonl", "sql": SIMPLE_SQL}])
    monkeypatch.setenv("SYNPREF_SOURCE_ROOTS", str(tmp_path / "data"))
    summary, _ = run_stages(lake, src)
    assert (summary.read, summary.raw, summary.quarantined) == (2, 1, 1)
    assert [q["reason"] for q in rows(lake, "ingest_quarantine")] == ["invalid_json"]


def test_the_readme_shows_the_tested_examples():
    """The README's Sources section holds the two SELECTs these tests run (whitespace aside)."""
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme[readme.index("## Sources"):readme.index("## Where to go next")]
    blocks = [yaml.safe_load(b) for b in re.findall(r"```yaml\n(.*?)```", section, re.S)]
    shown = [s["sql"] for b in blocks for s in (b["sources"] if isinstance(b, dict) else b) if "sql" in s]
    flat = {" ".join(sql.split()) for sql in shown}
    assert " ".join(MESSAGE_LIST_SQL.split()) in flat and " ".join(LABEL_SQL.split()) in flat
