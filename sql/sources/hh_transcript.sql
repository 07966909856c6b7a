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
), split as (  -- a column of its own, so that each transcript is split once
    select
        source_row,
        problem,
        chosen ->> '$' as chosen_text,
        rejected ->> '$' as rejected_text,
        hh_pieces(chosen_text) as chosen_pieces,
        hh_pieces(rejected_text) as rejected_pieces
    from checked
), parsed as (
    select
        source_row,
        problem,
        case when problem is null then hh_turns(chosen_text, chosen_pieces) end as chosen_turns,
        case when problem is null then hh_turns(rejected_text, rejected_pieces) end as rejected_turns
    from split
)
select
    source_row,
    chosen_turns as chosen,
    rejected_turns as rejected,
    coalesce(
        problem[1],
        case when chosen_turns is null or rejected_turns is null then 'bad_transcript' end
    ) as quarantine_reason,
    coalesce(
        problem[2],
        case when chosen_turns is null then 'chosen: no leading ''Human:'' / ''Assistant:'' turn marker'
             when rejected_turns is null then 'rejected: no leading ''Human:'' / ''Assistant:'' turn marker' end
    ) as quarantine_detail
from parsed
