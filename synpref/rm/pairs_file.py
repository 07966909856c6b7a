"""A labelled pairs file from outside the lake (an evaluation benchmark's Parquet, JSONL or JSON):
scored with the file's own columns kept beside the scores, its accuracy overall and by one of
its columns, and its rm_eval rows as an outside eval set beside the lake's gold accuracy
(`synpref score --pairs FILE`, `synpref eval`).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Callable

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from synpref.lake import Lake, LakePath, atomic_path, schemas
from synpref.lake.duck import ident, lit
from synpref.rm.rm_eval import OWN_SETS, TABLE as EVAL, eval_metrics, eval_rows
from synpref.rm.rm_models import NAME_PATTERN, ModelRef
from synpref.rm.rm_predictions import nonempty, prediction_rows, write_scored

FILE_READERS = {".parquet": "read_parquet", ".jsonl": "read_json_auto", ".json": "read_json_auto",
                ".gz": "read_json_auto"}
# the output's own columns: pair_id first, the scores after the file's columns; a file column of
# one of these names (an earlier score's output scored again) is replaced
SCORE_COLUMNS = schemas.RM_PREDICTIONS.names
CONVERSATION = "__synpref_conversation"  # what the scorer reads (the conversation, or the prompt as one)


def file_columns(con: duckdb.DuckDBPyConnection, path: Path) -> list[str]:
    """Register the file as the view pairs_file; its columns, in order."""
    reader = FILE_READERS.get(path.suffix.lower())
    if reader is None or not path.is_file():
        raise ValueError(f"{path}: not a Parquet, JSONL or JSON file of pairs")
    con.execute(f"create view pairs_file as select * from {reader}({lit(path)})")
    return [c[0] for c in con.execute("describe pairs_file").fetchall()]


def check_breakdown(path: Path, by: str) -> None:
    """Refuse, before any scoring, a column to break accuracy down by that the file lacks."""
    with duckdb.connect() as con:
        columns = file_columns(con, Path(path))
    if by not in columns:
        raise ValueError(f"{Path(path).name} has no column {by!r} to break accuracy down by; "
                         f"its columns: {', '.join(columns)}")
    if by in SCORE_COLUMNS[1:]:
        raise ValueError(f"{by!r} is one of the scores' columns, which replace the file's column of that name")


def score_file(path: Path, ref: ModelRef, make_scorer: Callable, out: Path, chunk_pairs: int = 2048,
               log: Callable[[str], None] = lambda msg: None) -> int:
    """Score a pairs file (chosen, rejected, and conversation or prompt; pair_id if it has one, else
    its row number) into a Parquet file: pair_id, the file's other columns, then rm_predictions'
    score columns (reward_chosen, reward_rejected, p_chosen...)."""
    path = Path(path)
    with duckdb.connect() as con:
        columns = file_columns(con, path)
        if "conversation" in columns:
            conversation = "conversation"
        elif "prompt" in columns:
            conversation = "[{'role': 'user', 'content': prompt}]"
        else:
            raise ValueError(f"{path}: pairs need a conversation (list of role/content) or a prompt column")
        missing = {"chosen", "rejected"} - set(columns)
        if missing:
            raise ValueError(f"{path}: pairs need columns {sorted(missing)}")
        ((rows, incomplete),) = con.execute(
            f"select count(*), count(*) filter (where chosen is null or rejected is null or {conversation} is null) "
            f"from pairs_file").fetchall()
        if incomplete:
            raise ValueError(f"{path}: {incomplete} of {rows} pairs lack chosen, rejected or the conversation")
        pair_id = "pair_id::varchar" if "pair_id" in columns else "'row-' || (row_number() over ())::varchar"
        kept = [c for c in columns if c not in SCORE_COLUMNS]
        reader = con.sql(f"select {pair_id} as pair_id, {', '.join(map(ident, kept))}, {conversation} as "
                         f"{CONVERSATION} from pairs_file").to_arrow_reader(chunk_pairs)
        scores = list(schemas.RM_PREDICTIONS)
        schema = pa.schema([scores[0], *(reader.schema.field(c) for c in kept), *scores[1:]])

        def to_rows(batch: pa.RecordBatch, *scored) -> pa.Table:
            predicted = prediction_rows(ref, path.name, batch["pair_id"].to_pylist(), *scored)
            own = pa.Table.from_batches([batch])
            return pa.Table.from_arrays([predicted["pair_id"], *(own[c] for c in kept), *predicted.columns[1:]],
                                        schema=schema)

        return write_scored(Path(out), nonempty(reader), make_scorer(), to_rows, schema, rows, log,
                            inputs=(CONVERSATION, "chosen", "rejected"))


def accuracy_rows(scored: Path, by: str | None = None) -> list[dict]:
    """rm_eval's figures on a scored file (score_file's output): accuracy (p_chosen > 0.5; a tie is
    wrong), mean margin and calibration overall, per confidence bin and, with `by`, per value of
    that column."""
    with duckdb.connect() as con:
        con.execute(f"create view scored_file as select * from read_parquet({lit(scored)})")
        return eval_metrics(con, "scored_file", [by] if by else [])


def eval_set_name(path: Path, name: str | None = None) -> str:
    """An outside set's name: `name`, else the file's name less its suffixes (.jsonl, .jsonl.gz...),
    any run of other characters than letters, digits, '.', '_' and single '-' made one '-'."""
    if name is None:
        bare = Path(path).name.removesuffix(".gz")
        name = re.sub(r"[^A-Za-z0-9._-]+|-{2,}", "-", Path(bare).stem).strip("-.")
    if not NAME_PATTERN.fullmatch(name or ""):
        raise ValueError(f"bad eval set name {name!r}: letters, digits, '.', '_' and single '-' only")
    if name in OWN_SETS:  # readers tell the lake's own sets by these names
        raise ValueError(f"{name!r} names the lake's own evaluation set: give the outside set another name")
    return name


def write_outside_eval(lake: Lake, ref: ModelRef, eval_set: str, pairs_file: str,
                       records: list[dict]) -> LakePath:
    """An outside set's rm_eval rows: one part per (model, version, set), so evaluating the version
    on the set again replaces its rows."""
    eval_set = eval_set_name(Path(pairs_file), eval_set)  # refuses a bad name, or one of the own sets'
    path = lake.table_dir(EVAL) / f"{ref.name}--{ref.version}--{eval_set}.parquet"
    with atomic_path(path) as tmp:
        pq.write_table(eval_rows(ref, eval_set, records, pairs_file), tmp, compression="zstd")
    return path
