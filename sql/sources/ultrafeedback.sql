-- ultrafeedback: openbmb/UltraFeedback: an `instruction` and its `completions` (objects with a
-- `response`, a `model` and scores); the best-scored completion (the first of equals) is chosen
-- against one lower-scored completion drawn per record from a hash of the record's row and
-- param `seed`. Param `score` names the completion's score: overall_score, fine-grained_score,
-- or a dotted path such as annotations.helpfulness.Rating. Completions without a response
-- string or a numeric score are skipped; equal scores throughout are quarantined as `tie`.
-- Meta: chosen_score, rejected_score, chosen_model, rejected_model.
-- @param path_instruction = $.instruction
-- @param path_completions = $.completions
-- @param score = overall_score
-- @param seed = 0
with fields as (
    select
        source_row,
        json_extract(record, getvariable('path_instruction')) as instruction,
        json_extract(record, getvariable('path_completions')) as completions
    from records
), checked as (
    select
        *,
        coalesce(
            case when instruction is null then ['missing_field', 'field ' || getvariable('path_instruction') || ' (instruction) is missing']
                 when instruction = 'null' then ['null_content', 'instruction is null'] end,
            case when completions is null then ['missing_field', 'field ' || getvariable('path_completions') || ' (completions) is missing']
                 when completions = 'null' then ['null_content', 'completions is null']
                 when left(completions, 1) <> '[' then ['wrong_type', 'completions is not a list: ' || left(completions, 200)] end
        ) as problem,
        try_cast(completions as json[]) as items
    from fields
), completion as (
    select source_row, unnest(items) as c, generate_subscripts(items, 1) as idx
    from checked
    where problem is null
), scored as (
    select
        source_row,
        idx,
        json_extract(c, '$.response') as response,
        json_extract(c, '$.model') as model,
        try_cast(json_extract(c, '$."' || replace(getvariable('score'), '.', '"."') || '"') ->> '$' as double) as score
    from completion
), usable as (
    select *, max(score) over (partition by source_row) as top
    from scored
    where score is not null and left(response, 1) = '"'
), picked as (
    select
        source_row,
        count(*) as n,
        max(score) as best,
        min(score) as worst,
        min(idx) filter (where score = top) as chosen_idx,
        arg_min(idx, md5(source_row || ':' || getvariable('seed') || ':' || idx)) filter (where score < top) as rejected_idx
    from usable
    group by source_row
), decided as (
    select
        c.source_row,
        c.instruction,
        p.chosen_idx,
        p.rejected_idx,
        coalesce(
            c.problem,
            case when coalesce(p.n, 0) < 2
                 then ['too_few_completions', coalesce(p.n, 0) || ' of ' || coalesce(len(c.items), 0)
                       || ' completions have a response and a numeric ' || getvariable('score') || '; a pair needs 2'] end,
            case when p.best = p.worst
                 then ['tie', 'all ' || p.n || ' scored completions have ' || getvariable('score') || ' ' || p.best] end
        ) as problem
    from checked c
    left join picked p using (source_row)
)
select
    d.source_row,
    d.instruction as prompt,
    ch.response ->> '$' as chosen,
    rj.response ->> '$' as rejected,
    d.problem[1] as quarantine_reason,
    d.problem[2] as quarantine_detail,
    ch.score as chosen_score,
    rj.score as rejected_score,
    ch.model as chosen_model,
    rj.model as rejected_model
from decided d
left join usable ch on ch.source_row = d.source_row and ch.idx = d.chosen_idx
left join usable rj on rj.source_row = d.source_row and rj.idx = d.rejected_idx
