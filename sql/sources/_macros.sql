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

-- An HH-RLHF transcript as turns, or NULL when it does not open with a turn marker: each
-- "\n\nHuman:" / "\n\nAssistant:" (or the same at the very start, one space after it optional)
-- opens a turn. Plain replaces and one split; a text holding chr(1) is split by the regex instead.
create or replace temp macro hh_marked(t) as
    replace(replace(case when starts_with(t, 'Human:') or starts_with(t, 'Assistant:') then chr(10) || chr(10) || t
                         else t end,
                    chr(10) || chr(10) || 'Human:', chr(1) || 'H'),
            chr(10) || chr(10) || 'Assistant:', chr(1) || 'A');
create or replace temp macro hh_pieces_turns(p) as
    case
        when len(p) < 2 or not regexp_full_match(p[1], '\s*') then null
        else list_transform(list_slice(p, 2, len(p)),
                            lambda x: {'role': if(left(x, 1) = 'H', 'user', 'assistant'),
                                       'content': if(substr(x, 2, 1) = ' ', substr(x, 3), substr(x, 2))})
    end;
create or replace temp macro hh_regex_turns(roles, pieces) as
    case
        when len(roles) = 0 or not regexp_full_match(pieces[1], '\s*') then null
        else list_transform(list_zip(roles, list_slice(pieces, 2, len(pieces))),
                            lambda z: {'role': if(z[1] = 'Human', 'user', 'assistant'), 'content': z[2]})
    end;
-- A transcript's pieces (hh_marked, split), or NULL for a text holding chr(1) (hh_regex_turns reads it).
create or replace temp macro hh_pieces(t) as
    case when not contains(t, chr(1)) then string_split(hh_marked(t), chr(1)) end;
create or replace temp macro hh_turns(t, pieces) as
    case
        when pieces is not null then hh_pieces_turns(pieces)
        else hh_regex_turns(regexp_extract_all(t, '(?:^|\n\n)(Human|Assistant):[ ]?', 1),
                            regexp_split_to_array(t, '(?:^|\n\n)(?:Human|Assistant):[ ]?'))
    end;
