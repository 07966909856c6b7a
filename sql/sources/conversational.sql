-- conversational: TRL's conversational preference format: `chosen` and `rejected` are lists of
-- {role, content} messages ending in the assistant's answer, with an optional `prompt` (a
-- string, or the messages before the answers) shared by both.
-- @param path_prompt = $.prompt
-- @param path_chosen = $.chosen
-- @param path_rejected = $.rejected
with fields as (
    select
        source_row,
        json_extract(record, getvariable('path_prompt')) as prompt,
        json_extract(record, getvariable('path_chosen')) as chosen,
        json_extract(record, getvariable('path_rejected')) as rejected
    from records
), checked as (
    select
        *,
        coalesce(
            missing_problem(chosen, 'chosen', getvariable('path_chosen')),
            missing_problem(rejected, 'rejected', getvariable('path_rejected')),
            case when left(chosen, 1) = '"'
                then ['bad_conversation', 'chosen is one string, not a conversation ending in an assistant turn'] end,
            case when left(rejected, 1) = '"'
                then ['bad_conversation', 'rejected is one string, not a conversation ending in an assistant turn'] end
        ) as problem
    from fields
)
select
    source_row,
    case when prompt = 'null' then null else prompt end as prompt,
    chosen,
    rejected,
    problem[1] as quarantine_reason,
    problem[2] as quarantine_detail
from checked
