-- Macros the source presets share (loaded before a source's SELECT; not a preset itself).
-- A problem is [reason, detail]; NULL when there is none.

-- A field the record must have: missing (no such key) is not the same as null.
create or replace temp macro missing_problem(v, name, path) as
    case when v is null then ['missing_field', 'field ' || path || ' (' || name || ') is missing'] end;

-- A field that must be a string, when present.
create or replace temp macro string_problem(v, name) as
    case
        when v = 'null' then ['null_content', name || ' is null']
        when left(v, 1) <> '"' then ['wrong_type', name || ' is ' || json_kind(v) || ', expected a string']
    end;

-- A field the record must have, holding a string.
create or replace temp macro field_problem(v, name, path) as
    coalesce(missing_problem(v, name, path), string_problem(v, name));

create or replace temp macro json_kind(v) as
    case left(v, 1)
        when '{' then 'an object' when '[' then 'a list' when '"' then 'a string' when 'n' then 'null'
        when 't' then 'a boolean' when 'f' then 'a boolean' else 'a number'
    end;

-- An HH-RLHF transcript as turns (from its markers' roles and the text between them), or NULL
-- when it does not open with a turn marker.
create or replace temp macro hh_roles(t) as regexp_extract_all(t, '(?:^|\n\n)(Human|Assistant):[ ]?', 1);
create or replace temp macro hh_pieces(t) as regexp_split_to_array(t, '(?:^|\n\n)(?:Human|Assistant):[ ]?');
create or replace temp macro hh_turns(roles, pieces) as
    case
        when len(roles) = 0 or not regexp_full_match(pieces[1], '\s*') then null
        else list_transform(list_zip(roles, list_slice(pieces, 2, len(pieces))),
                            lambda z: {'role': if(z[1] = 'Human', 'user', 'assistant'), 'content': z[2]})
    end;
