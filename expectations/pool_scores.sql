-- The columns the pool_scores suite validates: the table's own plus consistency flags.
select
    pair_id,
    p_best,
    p_gold,
    best_model,
    gold_model,
    needs_judges is distinct from (p_best <= 0.5) as needs_judges_inconsistent,
    -- every shard must be scored by the same two model versions, or the filter mixes models
    count(distinct best_version) over () + count(distinct gold_version) over () <> 2 as mixed_versions
from pool_scores
