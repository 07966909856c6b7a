-- pku_saferlhf: PKU-SafeRLHF: a `prompt`, two responses `response_0` and `response_1`, and the
-- id (0 or 1) of the preferred one in the field named by param `label` (better_response_id, or
-- safer_response_id for the safety preference). Meta: better_response_id, safer_response_id,
-- is_response_0_safe, is_response_1_safe.
-- @param path_prompt = $.prompt
-- @param path_response_0 = $.response_0
-- @param path_response_1 = $.response_1
-- @param label = better_response_id
with fields as (
    select
        source_row,
        json_extract(record, getvariable('path_prompt')) as prompt,
        json_extract(record, getvariable('path_response_0')) as response_0,
        json_extract(record, getvariable('path_response_1')) as response_1,
        json_extract(record, '$."' || getvariable('label') || '"') as label,
        json_extract(record, '$.better_response_id') as better_response_id,
        json_extract(record, '$.safer_response_id') as safer_response_id,
        json_extract(record, '$.is_response_0_safe') as is_response_0_safe,
        json_extract(record, '$.is_response_1_safe') as is_response_1_safe
    from records
), checked as (
    select
        *,
        coalesce(
            case when prompt is null then ['missing_field', 'field ' || getvariable('path_prompt') || ' (prompt) is missing']
                 when prompt = 'null' then ['null_content', 'prompt is null'] end,
            case when response_0 is null then ['missing_field', 'field ' || getvariable('path_response_0') || ' (response_0) is missing']
                 when response_0 = 'null' then ['null_content', 'response_0 is null']
                 when left(response_0, 1) <> '"' then ['wrong_type', 'response_0 is not a string: ' || left(response_0, 200)] end,
            case when response_1 is null then ['missing_field', 'field ' || getvariable('path_response_1') || ' (response_1) is missing']
                 when response_1 = 'null' then ['null_content', 'response_1 is null']
                 when left(response_1, 1) <> '"' then ['wrong_type', 'response_1 is not a string: ' || left(response_1, 200)] end,
            case when label is null then ['missing_field', 'field ' || getvariable('label') || ' (the label) is missing']
                 when json_type(label) not in ('UBIGINT', 'BIGINT', 'DOUBLE') or label::double not in (0, 1)
                     then ['invalid_label', getvariable('label') || ' is ' || left(label, 200) || '; expected 0 or 1 (the preferred response)'] end
        ) as problem
    from fields
)
select
    source_row,
    prompt,
    if(try_cast(label as double) = 1, response_1, response_0) ->> '$' as chosen,
    if(try_cast(label as double) = 1, response_0, response_1) ->> '$' as rejected,
    problem[1] as quarantine_reason,
    problem[2] as quarantine_detail,
    better_response_id,
    safer_response_id,
    is_response_0_safe,
    is_response_1_safe
from checked
