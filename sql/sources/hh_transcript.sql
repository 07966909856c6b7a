-- hh_transcript: Anthropic HH-RLHF: `chosen` and `rejected` are whole transcripts
-- ("\n\nHuman: ...\n\nAssistant: ..."), each ending in its own assistant turn; the turns
-- before it are the conversation.
-- @param path_chosen = $.chosen
-- @param path_rejected = $.rejected
with fields as (
    select
        source_row,
        json_extract(record, getvariable('path_chosen')) as chosen,
        json_extract(record, getvariable('path_rejected')) as rejected
    from records
), checked as (
    select
        *,
        coalesce(field_problem(chosen, 'chosen', getvariable('path_chosen')),
                 field_problem(rejected, 'rejected', getvariable('path_rejected'))) as problem
    from fields
), split as (
    select
        source_row,
        problem,
        hh_roles(chosen ->> '$') as chosen_roles,
        hh_pieces(chosen ->> '$') as chosen_pieces,
        hh_roles(rejected ->> '$') as rejected_roles,
        hh_pieces(rejected ->> '$') as rejected_pieces
    from checked
    where problem is null
), parsed as (
    select source_row, problem, null as chosen_turns, null as rejected_turns from checked where problem is not null
    union all by name
    select
        source_row,
        problem,
        hh_turns(chosen_roles, chosen_pieces) as chosen_turns,
        hh_turns(rejected_roles, rejected_pieces) as rejected_turns
    from split
)
select
    source_row,
    chosen_turns as chosen,
    rejected_turns as rejected,
    coalesce(
        problem,
        case when chosen_turns is null then ['bad_transcript', 'chosen: no leading ''Human:'' / ''Assistant:'' turn marker'] end,
        case when rejected_turns is null then ['bad_transcript', 'rejected: no leading ''Human:'' / ''Assistant:'' turn marker'] end
    ) as problem_,
    problem_[1] as quarantine_reason,
    problem_[2] as quarantine_detail
from parsed
