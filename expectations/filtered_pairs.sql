-- The columns the filtered_pairs suite validates: the table's own plus consistency flags.
select
    pair_id,
    status,
    reason,
    p_best,
    p_gold,
    judge_verdict,
    case status
        when 'kept' then reason in ('rm_agrees', 'judges_agree', 'human_verified')
        when 'flipped' then reason in ('recycled_flipped', 'human_verified')
        else reason in ('gold_rm_disagrees', 'judges_disagree', 'judges_undecided', 'not_judged')
    end as reason_fits_status,
    -- the rule itself: kept without a human means the gold RM and the best RM or the judges agree
    status = 'kept' and not human_verified
        and not (p_gold > 0.5 and (p_best > 0.5 or judge_verdict = 'agree')) as kept_against_the_rule,
    shard <> (('0x' || left(pair_id, 8))::ubigint % n_shards) as wrong_shard,
    (status = 'dropped')::int as dropped
from filtered_pairs
