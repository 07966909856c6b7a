-- helpsteer2: nvidia/HelpSteer2 ratings: each row a `prompt`, one `response` and its 0-4 scores
-- (helpfulness, correctness, coherence, complexity, verbosity); rows 2k-1 and 2k share a prompt
-- and make one pair, the response with the higher score of param `attribute` chosen (equal
-- scores: `tie`; different prompts: `prompt_mismatch`). A multi-turn prompt ("...\n<extra_id_1>
-- Assistant\n...\n<extra_id_1>User\n...") becomes its turns. The pair's source_row is its first
-- row; `source_rows` lists both. A pair that fails quarantines both rows with the reason.
-- Meta: attribute, chosen_score, rejected_score, source_rows.
-- @param path_prompt = $.prompt
-- @param path_response = $.response
-- @param attribute = helpfulness
with fields as (
    select
        source_row,
        json_extract(record, getvariable('path_prompt')) as prompt,
        json_extract(record, getvariable('path_response')) as response,
        json_extract(record, '$."' || getvariable('attribute') || '"') as score
    from records
), parsed as (
    select
        *,
        regexp_extract_all(prompt ->> '$', '\n?<extra_id_1>(User|Assistant)\n?', 1) as roles,
        regexp_split_to_array(prompt ->> '$', '\n?<extra_id_1>(?:User|Assistant)\n?') as pieces
    from fields
), checked as (
    select
        source_row,
        prompt ->> '$' as prompt_text,
        response ->> '$' as response_text,
        try_cast(score as double) as score,
        score as score_json,
        list_concat([{'role': 'user', 'content': pieces[1]}],
                    list_transform(list_zip(roles, list_slice(pieces, 2, len(pieces))),
                                   lambda z: {'role': if(z[1] = 'User', 'user', 'assistant'), 'content': z[2]}))
            as conversation,
        coalesce(
            case when prompt is null then ['missing_field', 'field ' || getvariable('path_prompt') || ' (prompt) is missing']
                 when prompt = 'null' then ['null_content', 'prompt is null']
                 when left(prompt, 1) <> '"' then ['wrong_type', 'prompt is not a string: ' || left(prompt, 200)]
                 when list_max(list_transform(pieces, lambda x: length(x))) > getvariable('max_field_chars')
                     then ['field_too_large', 'a turn of the prompt is over the limit of ' || getvariable('max_field_chars') || ' chars'] end,
            case when response is null then ['missing_field', 'field ' || getvariable('path_response') || ' (response) is missing']
                 when response = 'null' then ['null_content', 'response is null']
                 when left(response, 1) <> '"' then ['wrong_type', 'response is not a string: ' || left(response, 200)]
                 when length(response ->> '$') > getvariable('max_field_chars')
                     then ['field_too_large', 'response has ' || length(response ->> '$') || ' chars, over the limit of '
                                              || getvariable('max_field_chars')] end,
            case when score is null then ['missing_field', 'field ' || getvariable('attribute') || ' (the attribute) is missing']
                 when json_type(score) not in ('UBIGINT', 'BIGINT', 'DOUBLE')
                     then ['wrong_type', getvariable('attribute') || ' is ' || left(score, 200) || ', expected a number'] end
        ) as problem
    from parsed
), paired as (
    select
        a.source_row as row_a,
        b.source_row as row_b,
        a.prompt_text,
        a.conversation,
        a.response_text as response_a,
        b.response_text as response_b,
        a.score as score_a,
        a.score_json,
        b.score as score_b,
        coalesce(
            case when a.source_row is null
                 then ['no_partner', 'row ' || b.source_row || ' has no partner row ' || (b.source_row - 1)
                                     || ' (it is not a record of the file); HelpSteer2 pairs rows 1-2, 3-4, ...'] end,
            case when b.source_row is null
                 then ['no_partner', 'row ' || a.source_row || ' has no partner row ' || (a.source_row + 1)
                                     || ' (the file ends, or it is not a record); HelpSteer2 pairs rows 1-2, 3-4, ...'] end,
            case when a.problem is not null then [a.problem[1], 'row ' || a.source_row || ': ' || a.problem[2]] end,
            case when b.problem is not null then [b.problem[1], 'row ' || b.source_row || ': ' || b.problem[2]] end,
            case when a.prompt_text <> b.prompt_text
                 then ['prompt_mismatch', 'rows ' || a.source_row || ' and ' || b.source_row
                                          || ' have different prompts; HelpSteer2 pairs consecutive rows that share one'] end,
            case when a.score = b.score
                 then ['tie', 'rows ' || a.source_row || ' and ' || b.source_row || ' have the same '
                              || getvariable('attribute') || ' (' || a.score_json || ')'] end
        ) as problem
    from (select * from checked where source_row % 2 = 1) a
    full outer join (select * from checked where source_row % 2 = 0) b on b.source_row = a.source_row + 1
)
-- a good pair: one row, on the pair's first row
select
    row_a as source_row,
    conversation,
    if(score_a > score_b, response_a, response_b) as chosen,
    if(score_a > score_b, response_b, response_a) as rejected,
    null as quarantine_reason,
    null as quarantine_detail,
    getvariable('attribute') as attribute,
    greatest(score_a, score_b) as chosen_score,
    least(score_a, score_b) as rejected_score,
    [row_a, row_b] as source_rows
from paired
where problem is null
union all
-- a pair that fails: each of its rows quarantined with the reason
select
    unnest(list_filter([row_a, row_b], lambda r: r is not null)) as source_row,
    null as conversation,
    null as chosen,
    null as rejected,
    problem[1] as quarantine_reason,
    problem[2] as quarantine_detail,
    getvariable('attribute') as attribute,
    null as chosen_score,
    null as rejected_score,
    null as source_rows
from paired
where problem is not null
