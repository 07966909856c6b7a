-- The columns the rm_eval suite validates: the table's own plus a key and sanity flags. The lake's own sets
-- (gold, holdout: no pairs_file) have fixed breakdowns; an outside set (synpref eval) is named after its file
-- and broken down by the file's column, so only the own sets' names are checked against the lists.
select
    model,
    model_version,
    eval_set,
    breakdown,
    group_value,
    case when pairs_file is null then eval_set end as own_eval_set,
    case when pairs_file is null then breakdown end as own_breakdown,
    -- readers tell the own sets by name: an outside set must not take one
    pairs_file is not null and eval_set in ('gold', 'holdout') as outside_set_named_like_own,
    model || '|' || model_version || '|' || eval_set || '|' || breakdown || '|' || group_value as eval_key,
    pairs,
    accuracy,
    mean_margin,
    mean_confidence,
    brier,
    ece,
    breakdown = 'overall' and accuracy <= 0.5 as overall_at_or_below_chance
from rm_eval
