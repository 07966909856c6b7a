-- The columns the rm_eval suite validates: the table's own plus a key and a sanity flag.
select
    model,
    model_version,
    eval_set,
    breakdown,
    group_value,
    model || '|' || model_version || '|' || breakdown || '|' || group_value as eval_key,
    pairs,
    accuracy,
    mean_margin,
    mean_confidence,
    brier,
    ece,
    breakdown = 'overall' and accuracy <= 0.5 as overall_at_or_below_chance
from rm_eval
