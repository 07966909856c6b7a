-- ranked: one prompt (a string or messages) and k ranked `responses` (a list of strings, best
-- first); param `pairs` = all gives every better-vs-worse pair (k(k-1)/2), best_vs_rest the best
-- against each other response (k-1). Meta: chosen_rank, rejected_rank (1 = best).
-- @param path_prompt = $.prompt
-- @param path_responses = $.responses
-- @param pairs = all
with fields as (
    select
        source_row,
        json_extract(record, getvariable('path_prompt')) as prompt,
        json_extract(record, getvariable('path_responses')) as responses
    from records
), checked as (
    select
        *,
        try_cast(responses as json[]) as items,
        list_position(list_transform(items, lambda x: x is null), true) as null_at,
        list_position(list_transform(items, lambda x: left(x, 1) <> '"'), true) as not_string_at,
        coalesce(
            case when getvariable('pairs') not in ('all', 'best_vs_rest')
                 then error('preset ranked: param pairs is ''' || getvariable('pairs') || '''; expected all or best_vs_rest') end,
            case when prompt is null then ['missing_field', 'field ' || getvariable('path_prompt') || ' (prompt) is missing']
                 when prompt = 'null' then ['null_content', 'prompt is null'] end,
            case when responses is null then ['missing_field', 'field ' || getvariable('path_responses') || ' (responses) is missing']
                 when responses = 'null' then ['null_content', 'responses is null']
                 when left(responses, 1) <> '[' then ['wrong_type', 'responses is not a list: ' || left(responses, 200)]
                 when null_at is not null then ['null_content', 'responses[' || (null_at - 1) || '] is null']
                 when not_string_at is not null
                     then ['wrong_type', 'responses[' || (not_string_at - 1) || '] is not a string: ' || left(items[not_string_at], 200)]
                 when len(items) < 2
                     then ['too_few_responses', 'responses holds ' || len(items) || ' response(s); a pair needs 2'] end
        ) as problem
    from fields
), ranks as (
    select
        source_row,
        prompt,
        items,
        unnest(list_filter(
            flatten(list_transform(range(1, len(items) + 1),
                                   lambda i: list_transform(range(i + 1, len(items) + 1), lambda j: [i, j]))),
            lambda p: getvariable('pairs') = 'all' or p[1] = 1)) as pair
    from checked
    where problem is null
)
select
    source_row,
    prompt,
    items[pair[1]] ->> '$' as chosen,
    items[pair[2]] ->> '$' as rejected,
    null as quarantine_reason,
    null as quarantine_detail,
    pair[1] as chosen_rank,
    pair[2] as rejected_rank
from ranks
union all
select
    source_row,
    prompt,
    null as chosen,
    null as rejected,
    problem[1] as quarantine_reason,
    problem[2] as quarantine_detail,
    null as chosen_rank,
    null as rejected_rank
from checked
where problem is not null
