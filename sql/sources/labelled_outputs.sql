-- labelled_outputs: LLMBar/AlpacaEval style: a prompt (a string or messages), two outputs, and
-- `label` 1 or 2 naming the better one.
-- @param path_prompt = $.prompt
-- @param path_output_1 = $.output_1
-- @param path_output_2 = $.output_2
-- @param path_label = $.label
with fields as (
    select
        source_row,
        json_extract(record, getvariable('path_prompt')) as prompt,
        json_extract(record, getvariable('path_output_1')) as output_1,
        json_extract(record, getvariable('path_output_2')) as output_2,
        json_extract(record, getvariable('path_label')) as label
    from records
), checked as (
    select
        *,
        coalesce(
            missing_problem(prompt, 'prompt', getvariable('path_prompt')),
            case when prompt = 'null' then ['null_content', 'prompt is null'] end,
            field_problem(output_1, 'output_1', getvariable('path_output_1')),
            field_problem(output_2, 'output_2', getvariable('path_output_2')),
            missing_problem(label, 'label', getvariable('path_label')),
            case when json_type(label) not in ('UBIGINT', 'BIGINT', 'DOUBLE') or label::double not in (1, 2)
                then ['invalid_label', 'label is ' || left(label, 200) || '; expected 1 or 2 (the better output)'] end
        ) as problem
    from fields
)
select
    source_row,
    prompt,
    case when try_cast(label as double) = 1 then output_1 ->> '$' else output_2 ->> '$' end as chosen,
    case when try_cast(label as double) = 1 then output_2 ->> '$' else output_1 ->> '$' end as rejected,
    problem[1] as quarantine_reason,
    problem[2] as quarantine_detail
from checked
