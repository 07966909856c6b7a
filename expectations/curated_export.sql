-- The columns the curated_export suite validates: TRL conversational form, one message a side.
select
    pair_id,
    status,
    chosen[1].content as chosen_text,
    rejected[1].content as rejected_text,
    chosen[1].content = rejected[1].content as same_responses,
    chosen[1].role || '/' || rejected[1].role as response_roles,
    len(prompt) as prompt_turns,
    prompt[-1].role as prompt_last_role,
    (status = 'flipped')::int as flipped
from curated_export
