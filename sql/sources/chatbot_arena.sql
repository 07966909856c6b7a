-- chatbot_arena: LMSYS Chatbot Arena battles: `conversation_a` and `conversation_b` (lists of
-- {role, content} messages with the same user turns, each ending in its model's answer) and
-- `winner` (model_a, model_b, tie, tie (bothbad)); the winner's answer is chosen, ties are
-- quarantined as `tie`. Meta: model_a, model_b, winner, question_id, language, turn, judge.
-- @param path_conversation_a = $.conversation_a
-- @param path_conversation_b = $.conversation_b
-- @param path_winner = $.winner
-- @param path_model_a = $.model_a
-- @param path_model_b = $.model_b
with fields as (
    select
        source_row,
        json_extract(record, getvariable('path_conversation_a')) as conv_a,
        json_extract(record, getvariable('path_conversation_b')) as conv_b,
        json_extract(record, getvariable('path_winner')) as winner,
        json_extract(record, getvariable('path_model_a')) as model_a,
        json_extract(record, getvariable('path_model_b')) as model_b,
        json_extract(record, '$.question_id') as question_id,
        json_extract(record, '$.language') as language,
        json_extract(record, '$.turn') as turn,
        json_extract(record, '$.judge') as judge
    from records
), typed as (
    select
        *,
        winner ->> '$' as winner_text,
        -- the user turns of each side, where the list is one of string messages
        list_transform(list_filter(try(json_transform_strict(conv_a, '[{"role":"VARCHAR","content":"VARCHAR"}]')),
                                   lambda m: m.role = 'user'), lambda m: m.content) as users_a,
        list_transform(list_filter(try(json_transform_strict(conv_b, '[{"role":"VARCHAR","content":"VARCHAR"}]')),
                                   lambda m: m.role = 'user'), lambda m: m.content) as users_b
    from fields
), checked as (
    select
        *,
        coalesce(
            case when conv_a is null then ['missing_field', 'field ' || getvariable('path_conversation_a') || ' (conversation_a) is missing']
                 when conv_a = 'null' then ['null_content', 'conversation_a is null']
                 when left(conv_a, 1) <> '[' then ['wrong_type', 'conversation_a is not a list of messages: ' || left(conv_a, 200)] end,
            case when conv_b is null then ['missing_field', 'field ' || getvariable('path_conversation_b') || ' (conversation_b) is missing']
                 when conv_b = 'null' then ['null_content', 'conversation_b is null']
                 when left(conv_b, 1) <> '[' then ['wrong_type', 'conversation_b is not a list of messages: ' || left(conv_b, 200)] end,
            case when winner is null then ['missing_field', 'field ' || getvariable('path_winner') || ' (winner) is missing']
                 when winner_text in ('tie', 'tie (bothbad)')
                     then ['tie', 'winner is ''' || winner_text || ''''
                                  || if(winner_text = 'tie (bothbad)', ': both answers were judged bad', ': both answers were judged equal')]
                 when left(winner, 1) <> '"' or winner_text not in ('model_a', 'model_b')
                     then ['invalid_label', 'winner is ' || left(winner, 200) || '; expected model_a, model_b, tie or tie (bothbad)'] end,
            case when users_a is not null and users_b is not null and users_a is distinct from users_b
                 then ['bad_conversation', 'conversation_a and conversation_b have different user turns'] end
        ) as problem
    from typed
)
select
    source_row,
    if(winner_text = 'model_b', conv_b, conv_a) as chosen,
    if(winner_text = 'model_b', conv_a, conv_b) as rejected,
    problem[1] as quarantine_reason,
    problem[2] as quarantine_detail,
    model_a,
    model_b,
    winner,
    question_id,
    language,
    turn,
    judge
from checked
