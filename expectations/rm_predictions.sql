-- The columns the rm_predictions suite validates: the table's own plus consistency flags.
select
    pair_id,
    pair_id || '|' || pairs_table || '|' || model || '|' || model_version as prediction_key,
    pairs_table,
    model,
    model_version,
    reward_chosen,
    reward_rejected,
    p_chosen,
    not (isfinite(reward_chosen) and isfinite(reward_rejected)) as reward_not_finite,
    -- p_chosen = sigmoid(reward_chosen - reward_rejected), written overflow-free
    abs(p_chosen - 0.5 * (1 + tanh(0.5 * (reward_chosen - reward_rejected)))) > 1e-6 as p_inconsistent,
    p_chosen in (0, 1) as p_saturated
from rm_predictions
