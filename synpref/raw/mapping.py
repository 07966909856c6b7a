"""A source file through DuckDB: its records, the source's SELECT over them, the checks, the outputs.

1. ``load_records``: the file's records into the temp view ``records (source_row, record
   JSON)``; DuckDB reads and parses them, and the few lines it refuses are decided in Python,
   so each gets its exact reason (invalid UTF-8, invalid JSON, nested too deep, a lone
   surrogate) and the rest still land. ``source`` is the same rows with the record's
   top-level fields as columns (as DuckDB infers them).
2. ``map_records``: the source's SELECT (a preset under sql/sources/, or the user's own)
   becomes the view ``mapped``; wrapper.py's checks turn it into ``mapped_out`` (one row
   per pair or quarantine row), and every record the SELECT returned nothing for gets a
   ``no_pair`` row, so records read = records paired + records quarantined.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa

from synpref.lake.duck import lit
from synpref.raw import reasons, wrapper
from synpref.raw.readers import DETAIL_LIMIT, TOO_DEEP, clip, decode_json
from synpref.raw.streams import LineError, open_stream, raw_line_text

DEEP_TYPING = 128  # records with this many opening brackets are left out of the typing of `source`
DEEP_BRACKETS = 512  # lines with more opening brackets are checked in Python for nesting depth
RESERVED = ("source_row", "record")
KNOWN_OUTPUTS = {"source_row", "conversation", "prompt", "chosen", "rejected", "quarantine_reason",
                 "quarantine_detail"}


class MappingError(ValueError):
    """The source's SELECT is wrong as a whole (a syntax error, a missing column): names the source."""


@dataclass
class Loaded:
    records: int  # rows in `records`
    errors: list[LineError]  # rows that never became a record


def load_records(con: duckdb.DuckDBPyConnection, path: Path, fmt: str, split: str | None = None,
                 typed: bool = True, limit: int | None = None) -> Loaded:
    """The file's records into `records` and `source`. JSONL and JSON arrays are read by DuckDB
    itself (in parallel, no Python per line); a file its readers refuse as a whole (a line
    that is not UTF-8, mixed line ends, a JSON array with a syntax error, a gzip cut short)
    is read again through streams.py, which finds each bad row's own reason. `typed`: also
    make the `source` view (its columns are typed from every record, which costs a scan).
    `limit`: only the first rows of the file."""
    errors: list[LineError] = []
    first = f" limit {int(limit)}" if limit else ""  # the first rows: the caller keeps insertion order
    native = fmt in NATIVE and _load_native(con, path, fmt, first)
    if not native:
        stream = open_stream(path, fmt, split)
        con.register("record_stream", stream.reader())
        try:
            if stream.kind == "lines":
                _load_lines(con, f"select source_row, line, try(decode(line)) as text from record_stream{first}")
            else:
                con.execute(f"create or replace temp table rows as select * from record_stream{first}")
        except duckdb.Error:  # the stream's own error (a FileReadError) comes back wrapped: raise it
            if stream.failure is not None:
                raise stream.failure from None
            raise
        finally:
            con.unregister("record_stream")
        errors += stream.errors
        kind = stream.kind
    else:
        kind = "table" if fmt == "csv" else "lines"
    if kind == "lines":
        errors += _decide_refused_lines(con)
        con.execute("create or replace temp view records as "
                    "select source_row, record from lines where record is not null")
        if typed:
            _typed_view(con)
    else:
        _table_views(con)
    count = con.execute("select count(*) from records").fetchall()[0][0]
    return Loaded(count, sorted(errors, key=lambda e: e.row))


NATIVE = ("jsonl", "jsonl.gz", "json", "csv")
MAX_LINE_BYTES = 16 << 20  # longer lines send the file through streams.py


def _load_native(con: duckdb.DuckDBPyConnection, path: Path, fmt: str, where: str = "") -> bool:
    """DuckDB reads the lines (its CSV reader, one column, strict: blank lines keep their
    numbers), the array's elements, or a CSV file's rows (a header, commas, quotes: typed as
    DuckDB infers them); False when it refuses the file."""
    if fmt == "csv":
        try:
            con.execute(f"create or replace temp table rows as select * rename (ordinality as source_row) from "
                        f"read_csv({lit(path)}, header = true, delim = ',', quote = '\"', strict_mode = true) "
                        f"with ordinality{where}")
            return True
        except duckdb.Error:
            con.execute("drop table if exists rows")
            return False
    if fmt == "json":
        scan = (f"select ordinality as source_row, json::varchar as text, null::blob as line "
                f"from read_json_objects({lit(path)}, format = 'array', maximum_object_size = {MAX_LINE_BYTES}) "
                f"with ordinality")
    else:
        scan = (f"select ordinality as source_row, line as text, null::blob as line from read_csv({lit(path)}, "
                f"columns = {{'line': 'VARCHAR'}}, delim = chr(0), quote = '', escape = '', header = false, "
                f"auto_detect = false, strict_mode = true, max_line_size = {MAX_LINE_BYTES}, "
                f"compression = {lit('gzip' if fmt == 'jsonl.gz' else 'none')}) with ordinality")
    try:
        _load_lines(con, f"select * from ({scan}){where}")
        return True
    except duckdb.Error:
        con.execute("drop table if exists lines")
        return False


def _load_lines(con: duckdb.DuckDBPyConnection, scan: str) -> None:
    """One JSON parse per line: the cast is the check. A line is kept as a record when it is
    UTF-8, valid JSON, an object, and not possibly nested too deep; the others keep their bytes
    (`scan` gives source_row, text: the line as VARCHAR or NULL when it is not UTF-8, line: the
    bytes where text is NULL). Blank lines are refused, and skipped in Python."""
    long_line = f"strlen(text) > {2 * DEEP_BRACKETS}"
    brackets = "strlen(text) - strlen(replace(replace(text, '[', ''), '{', ''))"
    opens = "left(ltrim(left(parsed::varchar, 64)), 1) = '{'"
    con.execute(f"""
        create or replace temp table lines as
        with decoded as ({scan}), parsed as (
            select source_row, line, text,
                   case when text is not null and (not {long_line} or {brackets} <= {DEEP_BRACKETS})
                        then try_cast(text as json) end as parsed
            from decoded
        )
        select source_row,
               case when {opens} then parsed end as record,
               case when {opens} then null else coalesce(line, encode(text)) end as refused
        from parsed
    """)


def _decide_refused_lines(con: duckdb.DuckDBPyConnection) -> list[LineError]:
    """The lines DuckDB did not take as records, one by one in Python: each ends as an error
    row with its reason, or (valid JSON that DuckDB's parser refuses, or nesting that only
    looked too deep) goes back as a record."""
    errors: list[LineError] = []
    fixed: list[tuple[int, str]] = []
    refused = con.execute("select source_row, refused from lines where refused is not null order by 1")
    while batch := refused.fetchmany(1_000):
        for row, line in batch:
            if not line.strip():  # a blank line: no record, but it keeps its number
                continue
            error, text = decide_line(bytes(line))
            if error is not None:
                errors.append(LineError(row, *error))
            else:
                fixed.append((row, text))
    if fixed:
        con.register("fixed_arrow", pa.table({"source_row": pa.array([r for r, _ in fixed], pa.int64()),
                                              "text": pa.array([t for _, t in fixed], pa.string())}))
        con.execute("create or replace temp table fixed_lines as select * from fixed_arrow")
        con.unregister("fixed_arrow")
        still = con.execute("select source_row, text from fixed_lines where try_cast(text as json) is null").fetchall()
        for row, text in still:
            errors.append(LineError(row, reasons.INVALID_JSON, "DuckDB's JSON parser refuses this record", clip(text)))
        con.execute("update lines set record = f.text::json from fixed_lines f "
                    "where lines.source_row = f.source_row and try_cast(f.text as json) is not null")
    return errors


def decide_line(line: bytes) -> tuple[tuple[str, str, str | None] | None, str | None]:
    """(reason, detail, raw_text) for a line that is not a record, or (None, JSON text to load)."""
    line = line.rstrip(b"\r")
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as e:
        return (reasons.INVALID_UTF8, f"not UTF-8 at byte {e.start}", raw_line_text(line)), None
    value, error = decode_json(text)
    if error is not None:
        return (*error, clip(text)), None
    if not isinstance(value, dict):
        return (reasons.NOT_AN_OBJECT, f"record is a JSON {_json_kind(value)}, expected an object", clip(text)), None
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as e:
        return (reasons.INVALID_UNICODE, f"the record holds a lone surrogate U+{ord(e.object[e.start]):04X} "
                                         f"(an escape no UTF-8 text can hold)", clip(text)), None
    except (ValueError, RecursionError):
        return (reasons.INVALID_JSON, TOO_DEEP, clip(text)), None
    return None, text if "\\u" not in text else json.dumps(value)


def _json_kind(value) -> str:
    return {list: "array", str: "string", bool: "boolean", type(None): "null"}.get(type(value), "number")


def uses_source(select: str) -> bool:
    """Whether a SELECT reads the typed `source` view (presets read `records`)."""
    return re.search(r"\bsource\b", select, re.IGNORECASE) is not None


def _typed_view(con: duckdb.DuckDBPyConnection) -> None:
    """`source`: the records with their top-level fields as columns, typed from every record (a
    field that holds strings in some and objects in others is JSON, not text). Keys that differ
    only in case keep the first (DuckDB's columns ignore case); all fields stay in `record`.
    DuckDB cannot type a value nested deeper than 128 levels (and fails the database trying):
    records that may hold one are left out of the typing, and a field that may hold one is NULL."""
    deep = _deep("record")
    structure = con.execute(f"select json_group_structure(record) from records where not ({deep})").fetchall()[0][0]
    fields = json.loads(structure) if structure else {}
    typed: dict = {}
    for key, value in (fields.items() if isinstance(fields, dict) else []):
        if key and key not in RESERVED and key.lower() not in {k.lower() for k in typed}:
            typed[key] = _widen(value)
    if typed:
        # a deep record is typed field by field: only a field nested too deep is NULL
        values = {k: f"json_extract(record, {lit(json_path_of(k))})" for k in typed}
        by_field = ", ".join(f"{_ident(k)} := case when {_deep(values[k])} then null "
                             f"else json_transform({values[k]}, {lit(json.dumps(t))}) end" for k, t in typed.items())
        con.execute(f"create or replace temp view source as select source_row, record, "
                    f"unnest(case when {deep} then struct_pack({by_field}) "
                    f"else json_transform(record, {lit(json.dumps(typed))}) end) from records")
    else:
        con.execute("create or replace temp view source as select source_row, record from records")


def _deep(value: str) -> str:
    return f"strlen({value}) - strlen(replace(replace({value}, '[', ''), '{{', '')) >= {DEEP_TYPING}"


def json_path_of(key: str) -> str:
    return '$."' + key.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _widen(structure):
    """Types that hold any later record of the field: numbers signed, unknowns JSON."""
    if isinstance(structure, dict):
        return {k: _widen(v) for k, v in structure.items()} or "JSON"
    if isinstance(structure, list):
        return [_widen(structure[0])] if structure else ["JSON"]
    return {"UBIGINT": "BIGINT", "NULL": "JSON"}.get(structure, structure)


def _table_views(con: duckdb.DuckDBPyConnection) -> None:
    columns = [c for (c,) in con.execute("select column_name from (describe rows)").fetchall() if c != "source_row"]
    struct = "{" + ", ".join(f"{lit(c)}: {_ident(c)}" for c in columns) + "}" if columns else "{}"
    record = f"to_json({struct})" if columns else "'{}'::json"
    others = ", ".join(_ident(c) for c in columns if c not in RESERVED)
    con.execute(f"create or replace temp view records as select source_row, {record} as record from rows")
    con.execute(f"create or replace temp view source as select source_row, {record} as record"
                f"{', ' + others if others else ''} from rows")


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def set_variables(con: duckdb.DuckDBPyConnection, variables: dict) -> None:
    for name, value in variables.items():
        literal = lit(value) if isinstance(value, str) else repr(value) if isinstance(value, (int, float)) else \
            lit(json.dumps(value))
        con.execute(f"set variable {name} = {literal}")


def map_records(con: duckdb.DuckDBPyConnection, select: str, what: str) -> list[str]:
    """The SELECT over `source`/`records` -> `mapped_out`; returns the meta column names."""
    select = one_select(select, what)
    if con.execute("select count(*) from records").fetchall()[0][0] == 0:  # nothing to map (an empty file)
        con.execute(f"create or replace temp table mapped_out as {EMPTY_OUT}")
        con.execute("create or replace temp table covered_rows (source_row bigint)")
        return []
    try:
        con.execute(f"create or replace temp view mapped as {select}")
        types = dict(con.execute("select column_name, column_type from (describe mapped)").fetchall())
    except duckdb.Error as e:
        raise MappingError(f"{what}: the SQL does not run: {_first_line(e)}") from None
    missing = [c for c in ("source_row", "chosen", "rejected") if c not in types]
    if missing:
        raise MappingError(f"{what}: the SQL returns no {', '.join(missing)} column"
                           f"{'s' if len(missing) > 1 else ''} (it returns {', '.join(types)}); a source's "
                           f"SELECT returns source_row, conversation or prompt, chosen, rejected")
    untyped = {c: t for c, t in types.items() if t.strip('"') == "NULL" and c in KNOWN_OUTPUTS}
    if untyped:  # `null as chosen`: a column of no type is null text (or null messages)
        casts = ", ".join(f"{_ident(c)}::{wrapper.MESSAGE_TYPE if c == 'conversation' else 'VARCHAR'} as {_ident(c)}"
                          for c in untyped)
        con.execute(f"create or replace temp view mapped as select * replace ({casts}) from ({select})")
        types.update({c: wrapper.MESSAGE_TYPE if c == "conversation" else "VARCHAR" for c in untyped})
    meta = [c for c in types if c not in KNOWN_OUTPUTS]
    try:
        con.execute(f"create or replace temp table mapped_out as {assemble_sql(types, meta)}")
    except duckdb.Error as e:
        raise MappingError(f"{what}: the SQL fails while it runs: {_first_line(e)}") from None
    # records a pair names in its `source_rows` (beside its own source_row) are part of that pair
    listed = ("select unnest(from_json(meta->'source_rows', '[\"BIGINT\"]')) as source_row from mapped_out "
              "where reason is null" if "source_rows" in meta else "select null::bigint as source_row where false")
    con.execute(f"create or replace temp table covered_rows as select distinct source_row from ({listed}) "
                f"semi join records using (source_row)")
    con.execute("""
        insert into mapped_out (source_row, reason, detail)
        select source_row, 'no_pair', 'the source''s SQL returned no row for this record'
        from records anti join (select source_row from mapped_out union select source_row from covered_rows)
        using (source_row)
    """)
    strays = con.execute("select count(*), min(source_row) from mapped_out anti join records using (source_row)"
                         ).fetchall()[0]
    if strays[0]:
        raise MappingError(f"{what}: the SQL returns {strays[0]:,} rows whose source_row is no record of the "
                           f"file (e.g. {strays[1]}); return the source_row of the record each row comes from")
    return meta


EMPTY_OUT = (f"select null::bigint as source_row, null::varchar as reason, null::varchar as detail, "
             f"null::{wrapper.MESSAGE_TYPE} as conversation, null::varchar as chosen, null::varchar as rejected, "
             f"null::{wrapper.MESSAGE_TYPE} as rejected_conversation, null::json as meta where false")


def one_select(sql: str, what: str) -> str:
    """The source's SQL, which must be exactly one SELECT: a second statement (`; copy ... to`)
    would run with the ingest's rights."""
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as e:
        raise MappingError(f"{what}: the SQL does not run: {_first_line(e)}") from None
    kinds = [st.type.name for st in statements]
    if kinds != ["SELECT"]:
        raise MappingError(f"{what}: the SQL must be one SELECT statement; it holds "
                           f"{', '.join(kinds) or 'no statement'}")
    return sql.strip().rstrip(";")


def _first_line(error: Exception) -> str:
    return str(error).splitlines()[0][:500]


def confine(con: duckdb.DuckDBPyConnection, folders: list) -> None:
    """Let the source's SQL read and write only under `folders` (SYNPREF_SOURCE_ROOTS, the lake's
    parts and scratch): a sources file from elsewhere cannot read other files into `meta`."""
    con.execute("set autoload_known_extensions = false")
    con.execute(f"set allowed_directories = [{', '.join(lit(f) for f in folders)}]")
    con.execute("set enable_external_access = false")
    con.execute("set lock_configuration = true")


def assemble_sql(types: dict[str, str], meta: list[str]) -> str:
    """The checks and the pair, as one SELECT over `mapped` (see wrapper.py)."""
    f = {}
    if "conversation" in types:
        f["conversation"] = wrapper.field_sql("conversation", types["conversation"], "messages", optional=True)
    if "prompt" in types:
        f["prompt"] = wrapper.field_sql("prompt", types["prompt"], "either", optional=True)
    f["chosen"] = wrapper.field_sql("chosen", types["chosen"], "either")
    f["rejected"] = wrapper.field_sql("rejected", types["rejected"], "either")
    cols = []
    for name, fs in f.items():
        cols += [f"{fs.text} as {name}_text", f"({fs.messages})::{wrapper.MESSAGE_TYPE} as {name}_msgs",
                 f"{fs.error} as {name}_error",
                 f"case when ({fs.error}) is not null then {fs.detail} end as {name}_detail"]
    prep = "".join(", " + p for fs in f.values() for p in fs.prep)
    prep2 = "".join(", " + p for fs in f.values() for p in fs.prep2)
    given = ("quarantine_reason" in types, "quarantine_detail" in types)
    known = f"list_contains([{', '.join(lit(r) for r in sorted(reasons.INGEST_REASONS))}], quarantine_reason::varchar)"
    reason = (f"case when quarantine_reason is null then null when {known} "
              f"then quarantine_reason::varchar else '{reasons.EXCLUDED}' end") if given[0] else "null::varchar"
    detail = "quarantine_detail::varchar" if given[1] else "null::varchar"
    if given[0]:  # a reason of the source's own is kept in the detail
        detail = (f"case when quarantine_reason is null then null when {known} "
                  f"then {detail} else quarantine_reason::varchar || coalesce(': ' || {detail}, '') end")
    meta_sql = ("to_json({" + ", ".join(f"{lit(m)}: {_ident(m)}" for m in meta) + "})") if meta else "null::json"
    empty = f"[]::{wrapper.MESSAGE_TYPE}"
    if "conversation" in f:
        prefix = f"coalesce(conversation_msgs, {empty})"
    elif "prompt" in f:
        prefix = (f"coalesce(prompt_msgs, case when prompt_text is not null "
                  f"then [{{'role': 'user', 'content': prompt_text}}] else {empty} end)")
    else:
        prefix = empty
    checks = [("given_reason", "given_detail")]
    for name in f:
        checks.append((f"{name}_error", f"{name}_detail"))
        if name in ("chosen", "rejected"):
            checks.append((f"{name}_final_error", f"{name}_final_detail"))
    checks.append(("empty_error", "empty_detail"))
    reason_sql = "coalesce(" + ", ".join(r for r, _ in checks) + ")"
    # the detail of the check that gave the reason (a given reason may come without one)
    detail_sql = "case " + " ".join(f"when {r} is not null then {d}" for r, d in checks) + " end"
    final = {}
    for side in ("chosen", "rejected"):
        final[side] = (
            f"case when {side}_msgs is null then null when len({side}_msgs) = 0 then 'bad_conversation' "
            f"when {side}_msgs[-1].role <> 'assistant' then 'bad_conversation' end as {side}_final_error, "
            f"case when {side}_msgs is null then null when len({side}_msgs) = 0 then '{side} has no messages' "
            f"when {side}_msgs[-1].role <> 'assistant' then '{side} does not end with an assistant turn' "
            f"end as {side}_final_detail")
    return f"""
        with prep as (
            select *{prep}
            from mapped
        ), prep2 as (
            select *{prep2}
            from prep
        ), fields as (
            select cast(source_row as bigint) as source_row, {reason} as given_reason, {detail} as given_detail,
                   {', '.join(cols)},
                   {meta_sql} as meta
            from prep2
        ), sides as (
            select *, {final['chosen']}, {final['rejected']},
                   {prefix} as prefix
            from fields
        ), pairs as (
            select *,
                   case when chosen_msgs is null then prefix
                        else list_concat(prefix, list_slice(chosen_msgs, 1, len(chosen_msgs) - 1)) end as conv_c,
                   case when rejected_msgs is null then prefix
                        else list_concat(prefix, list_slice(rejected_msgs, 1, len(rejected_msgs) - 1)) end as conv_r
            from sides
        ), checked as (
            select *,
                   case when len(conv_c) = 0 then 'bad_conversation' end as empty_error,
                   case when len(conv_c) = 0 then 'the pair has no conversation before the responses' end
                       as empty_detail
            from pairs
        ), decided as (
            select *, {reason_sql} as reason, {detail_sql} as long_detail from checked
        )
        select source_row, reason,
               case when length(long_detail) > {DETAIL_LIMIT} then left(long_detail, {DETAIL_LIMIT}) || '... [clipped, '
                    || format('{{:,}}', length(long_detail)) || ' chars in all]' else long_detail end as detail,
               case when reason is null then conv_c end as conversation,
               case when reason is null then coalesce(chosen_text, chosen_msgs[-1].content) end as chosen,
               case when reason is null then coalesce(rejected_text, rejected_msgs[-1].content) end as rejected,
               case when reason is null and conv_r is distinct from conv_c then conv_r end as rejected_conversation,
               meta
        from decided
    """
