-- annotation_queue: the pairs to queue for human annotators, best first: objective before
-- subjective, then low before medium before high controversiality, pairs with no attributes last
-- (the paper's order). Reads temp table `fresh` (named pairs not queued yet) and `latest_attributes`.
with ranked as (
    select
        f.pair_id,
        (3 * case a.objectivity when 'objective' then 0 when 'subjective' then 1 else 2 end
           + case a.controversiality when 'low' then 0 when 'medium' then 1 else 2 end)::integer as priority
    from fresh as f
    left join latest_attributes as a using (pair_id)
)

select pair_id, priority
from ranked
order by priority, pair_id
