-- shp: Stanford Human Preferences (SHP): a Reddit post `history` (the prompt), two top-level
-- comments `human_ref_A` and `human_ref_B`, and `labels` 1 when A is preferred, 0 when B is.
-- Meta: score_ratio, post_id, domain.
-- @param path_history = $.history
-- @param path_human_ref_A = $.human_ref_A
-- @param path_human_ref_B = $.human_ref_B
-- @param path_labels = $.labels
with fields as (
    select
        source_row,
        json_extract(record, getvariable('path_history')) as history,
        json_extract(record, getvariable('path_human_ref_A')) as ref_a,
        json_extract(record, getvariable('path_human_ref_B')) as ref_b,
        json_extract(record, getvariable('path_labels')) as labels,
        json_extract(record, '$.score_ratio') as score_ratio,
        json_extract(record, '$.post_id') as post_id,
        json_extract(record, '$.domain') as domain
    from records
), checked as (
    select
        *,
        coalesce(
            case when history is null then ['missing_field', 'field ' || getvariable('path_history') || ' (history) is missing']
                 when history = 'null' then ['null_content', 'history is null']
                 when left(history, 1) <> '"' then ['wrong_type', 'history is not a string: ' || left(history, 200)] end,
            case when ref_a is null then ['missing_field', 'field ' || getvariable('path_human_ref_A') || ' (human_ref_A) is missing']
                 when ref_a = 'null' then ['null_content', 'human_ref_A is null']
                 when left(ref_a, 1) <> '"' then ['wrong_type', 'human_ref_A is not a string: ' || left(ref_a, 200)] end,
            case when ref_b is null then ['missing_field', 'field ' || getvariable('path_human_ref_B') || ' (human_ref_B) is missing']
                 when ref_b = 'null' then ['null_content', 'human_ref_B is null']
                 when left(ref_b, 1) <> '"' then ['wrong_type', 'human_ref_B is not a string: ' || left(ref_b, 200)] end,
            case when labels is null then ['missing_field', 'field ' || getvariable('path_labels') || ' (labels) is missing']
                 when json_type(labels) not in ('UBIGINT', 'BIGINT', 'DOUBLE') or labels::double not in (0, 1)
                     then ['invalid_label', 'labels is ' || left(labels, 200) || '; expected 1 (A is preferred) or 0 (B is)'] end
        ) as problem
    from fields
)
select
    source_row,
    history ->> '$' as prompt,
    if(try_cast(labels as double) = 1, ref_a, ref_b) ->> '$' as chosen,
    if(try_cast(labels as double) = 1, ref_b, ref_a) ->> '$' as rejected,
    problem[1] as quarantine_reason,
    problem[2] as quarantine_detail,
    score_ratio,
    post_id,
    domain
from checked
