"""The checks every mapped row passes, whatever SQL mapped it: SQL generated per output type.

A source's SELECT (a preset or the user's own) returns ``source_row``, ``conversation`` or
``prompt``, ``chosen`` and ``rejected``. Each of these may be VARCHAR, JSON, or a list of
{role, content} structs; the expressions built here turn them into the lake's pair (typed
conversation, chosen and rejected strings, and a second conversation where the two
responses carry different ones) or the first quarantine reason that applies:
``null_content``, ``wrong_type``, ``bad_conversation``, ``unknown_role``, ``field_too_large``.
"""

from __future__ import annotations

from dataclasses import dataclass

from synpref.raw import reasons

ROLES = ("system", "user", "assistant", "tool")
MESSAGES_JSON = """'[{"role":"JSON","content":"JSON"}]'"""
MESSAGE_TYPE = "STRUCT(role VARCHAR, content VARCHAR)[]"
_ROLES_SQL = "[" + ", ".join(f"'{r}'" for r in ROLES) + "]"


def q(reason: str) -> str:
    return f"'{reason}'"


@dataclass(frozen=True)
class Field:
    """One output field as SQL: its text (a string field), its messages (a list field), the
    first problem with it, and the detail for that problem. `prep` and `prep2` are columns
    computed once in two stages before (so that a parsed list is not parsed again per use)."""

    text: str
    messages: str
    error: str
    detail: str
    prep: tuple[str, ...] = ()
    prep2: tuple[str, ...] = ()


def _message_errors(msgs: str, content_type: str | None) -> str:
    """Each message's first problem (NULL when none), as a list."""
    if content_type:  # JSON: content_type tells a null content from one of another type
        null_content = (f"when m.content_type = 'n' then {q(reasons.NULL_CONTENT)} "
                        f"when m.content is null then {q(reasons.WRONG_TYPE)} ")
    else:
        null_content = f"when m.content is null then {q(reasons.NULL_CONTENT)} "
    return (f"list_transform({msgs}, lambda m: case when m is null then {q(reasons.BAD_CONVERSATION)} "
            f"when m.role is null then {q(reasons.WRONG_TYPE)} "
            f"when not list_contains({_ROLES_SQL}, m.role) then {q(reasons.UNKNOWN_ROLE)} "
            f"{null_content}"
            f"when length(m.content) > getvariable('max_field_chars') then {q(reasons.FIELD_TOO_LARGE)} end)")


def _messages_detail(name: str, msgs: str, errors: str) -> str:
    at = f"list_position(list_transform({errors}, lambda r: r is not null), true)"
    return (f"'{name}[' || ({at} - 1) || '] ' || case list_filter({errors}, lambda r: r is not null)[1] "
            f"when {q(reasons.UNKNOWN_ROLE)} then 'has role ' || {msgs}[{at}].role || '; known: {', '.join(ROLES)}' "
            f"when {q(reasons.NULL_CONTENT)} then 'has null content' "
            f"when {q(reasons.FIELD_TOO_LARGE)} then 'has ' || length({msgs}[{at}].content) || "
            f"' chars, over the limit of ' || getvariable('max_field_chars') "
            f"when {q(reasons.BAD_CONVERSATION)} then 'is not a {{role, content}} message' "
            f"else 'has a role or content that is not a string' end")


def _first_error(errors: str) -> str:
    return f"list_filter({errors}, lambda r: r is not null)[1]"


STRING_MESSAGES = """'[{"role":"VARCHAR","content":"VARCHAR"}]'"""
# A role or content that is not a string (null, a number, a list, an object): the key followed by
# no quote. Only a key can be "role" followed by a colon: inside a string, quotes are escaped.
_NOT_STRING = r"""'"(?:role|content)"\s*:\s*[^"\s]'"""


def _json_messages(value: str) -> str:
    """A JSON array of {role, content} objects as messages; NULL where it is not one. Most
    arrays hold only strings and are read in one pass; one with a role or content of another
    type (found by its text) is read value by value, so that type is reported, not cast: a role
    or content that is not a string becomes NULL, and content_type says whether it was null."""
    fast = (f"list_transform(try(json_transform_strict({value}, {STRING_MESSAGES})), "
            f"lambda m: {{'role': m.role, 'content': m.content, 'content_type': '\"'}})")
    parsed = f"try(json_transform_strict({value}, {MESSAGES_JSON}))"
    slow = (f"list_transform({parsed}, lambda m: {{'role': case when left(m.role, 1) = '\"' then m.role->>'$' end, "
            f"'content': case when left(m.content, 1) = '\"' then m.content->>'$' end, "
            f"'content_type': coalesce(left(m.content, 1), 'n')}})")
    return f"case when regexp_matches({value}, {_NOT_STRING}) then {slow} else {fast} end"


def field_sql(name: str, sql_type: str, kind: str, optional: bool = False) -> Field:
    """The SQL of output column `name` (of DuckDB type `sql_type`): `kind` is "text" for a field
    that must be a string, "messages" for one that must be a list, "either" for one that may be
    a response string or a conversation ending in the response (a prompt may be either too).
    An `optional` field may be null (absent); any other null is `null_content`."""
    col = f'"{name}"'
    field = _field_sql(name, col, sql_type, kind)
    if not optional:
        return field
    absent = f"{col} is null" if sql_type != "JSON" else f"({col} is null or {col} = 'null')"
    return Field(field.text, field.messages, f"case when {absent} then null else {field.error} end", field.detail,
                 field.prep, field.prep2)


def _field_sql(name: str, col: str, sql_type: str, kind: str) -> Field:
    limit = "getvariable('max_field_chars')"
    if sql_type == "VARCHAR":
        text = col if kind != "messages" else "NULL"
        error = (f"case when {col} is null then {q(reasons.NULL_CONTENT)} "
                 + (f"when true then {q(reasons.WRONG_TYPE)} " if kind == "messages" else "")
                 + f"when length({col}) > {limit} then {q(reasons.FIELD_TOO_LARGE)} end")
        detail = (f"case when {col} is null then '{name} is null' "
                  + (f"when true then '{name} is a string, expected a list of messages' " if kind == "messages" else "")
                  + f"else '{name} has ' || length({col}) || ' chars, over the limit of ' || {limit} end")
        return Field(text, "NULL", error, detail)
    errors = f'"{name}__e"'
    if sql_type.replace(" ", "").replace('"', "") == MESSAGE_TYPE.replace(" ", ""):
        null = f"case when {col} is null then {q(reasons.NULL_CONTENT)} "
        if kind == "text":
            return Field("NULL", "NULL", f"{null}else {q(reasons.WRONG_TYPE)} end",
                         f"'{name} is a list, expected a string'")
        return Field("NULL", col, f"{null}else {_first_error(errors)} end",
                     f"case when {col} is null then '{name} is null' else {_messages_detail(name, col, errors)} end",
                     prep2=(f"{_message_errors(col, None)} as {errors}",))
    # JSON, or any other type through its JSON form
    value, first, string, msgs = (f'"{name}__{k}"' for k in ("v", "f", "s", "m"))
    prep = (f"{col if sql_type == 'JSON' else f'to_json({col})'} as {value}",
            f"left({value}, 1) as {first}",
            f"case when {first} = '\"' then {value}->>'$' end as {string}",
            f"case when {first} = '[' then {_json_messages(value)} end as {msgs}")
    prep2 = (f"{_message_errors(msgs, 'content_type')} as {errors}",)
    list_error = f"case when {msgs} is null then {q(reasons.BAD_CONVERSATION)} else {_first_error(errors)} end"
    string_error = f"case when length({string}) > {limit} then {q(reasons.FIELD_TOO_LARGE)} end"
    is_null = f"{value} is null or {value} = 'null'"
    if kind == "text":
        error = (f"case when {is_null} then {q(reasons.NULL_CONTENT)} "
                 f"when {first} <> '\"' then {q(reasons.WRONG_TYPE)} else {string_error} end")
    elif kind == "messages":
        error = (f"case when {is_null} then {q(reasons.NULL_CONTENT)} when {first} <> '[' then {q(reasons.WRONG_TYPE)} "
                 f"else {list_error} end")
    else:
        error = (f"case when {is_null} then {q(reasons.NULL_CONTENT)} when {first} = '\"' then {string_error} "
                 f"when {first} = '[' then {list_error} else {q(reasons.WRONG_TYPE)} end")
    text = string if kind != "messages" else "NULL"
    messages = (f"list_transform({msgs}, lambda m: {{'role': m.role, 'content': m.content}})"
                if kind != "text" else "NULL")
    kinds = {"{": "an object", "t": "a boolean", "f": "a boolean", "n": "null", '"': "a string", "[": "a list"}
    shown = "case " + " ".join(f"when {first} = '{k}' then '{v}'" for k, v in kinds.items()) + " else 'a number' end"
    expected = {"text": "a string", "messages": "a list of messages", "either": "a string or a list of messages"}[kind]
    message_detail = (f"case when {msgs} is null then '{name} is not a list of {{role, content}} objects: ' "
                      f"|| left({value}, 300) else {_messages_detail(name, msgs, errors)} end")
    detail = (f"case when {is_null} then '{name} is null' "
              f"when {first} = '\"' and {kind != 'messages'} then '{name} has ' || length({string}) || "
              f"' chars, over the limit of ' || {limit} when {first} = '[' and {kind != 'text'} "
              f"then {message_detail} else '{name} is ' || {shown} || ', expected {expected}' end")
    return Field(text, messages, error, detail, prep, prep2)
