-- prompt_chosen_rejected: a prompt string, the chosen and the rejected response as strings, and
-- an optional system prompt (e.g. Anthropic-style {"prompt", "chosen", "rejected"} or
-- Argilla/UltraFeedback-binarized "prompt" + string answers). `columns:` names other paths.
-- @param path_prompt = $.prompt
-- @param path_chosen = $.chosen
-- @param path_rejected = $.rejected
-- @param path_system = $.system
with fields as (
    select
        source_row,
        json_extract(record, getvariable('path_system')) as system,
        json_extract(record, getvariable('path_prompt')) as prompt,
        json_extract(record, getvariable('path_chosen')) as chosen,
        json_extract(record, getvariable('path_rejected')) as rejected
    from records
), checked as (
    select
        *,
        coalesce(
            case when system is null or system = 'null' then null else string_problem(system, 'system') end,
            field_problem(prompt, 'prompt', getvariable('path_prompt')),
            field_problem(chosen, 'chosen', getvariable('path_chosen')),
            field_problem(rejected, 'rejected', getvariable('path_rejected'))
        ) as problem
    from fields
)
select
    source_row,
    case when system is null or system = 'null'
        then [{'role': 'user', 'content': prompt ->> '$'}]
        else [{'role': 'system', 'content': system ->> '$'}, {'role': 'user', 'content': prompt ->> '$'}]
    end as conversation,
    chosen ->> '$' as chosen,
    rejected ->> '$' as rejected,
    problem[1] as quarantine_reason,
    problem[2] as quarantine_detail
from checked
