-- The columns the pool_scores suite validates: the table's own plus consistency flags.
select
    pair_id,
    fold,
    p_best,
    p_best_spread,
    p_gold,
    best_model,
    gold_model,
    needs_judges is distinct from (p_best <= 0.5) as needs_judges_inconsistent,
    -- every shard must be scored by the same two model versions, or the filter mixes models
    count(distinct best_version) over () + count(distinct gold_version) over () <> 2 as mixed_versions,
    -- every pair scored by one fold model per repeat (a pair with fewer lost a member's score)
    members is distinct from max(members) over () as uneven_members
from pool_scores
