-- The columns the filtered_pairs suite validates: the table's own plus consistency flags.
select
    pair_id,
    status,
    reason,
    rule,
    noise_score,
    p_best,
    p_gold,
    judge_verdict,
    case status
        when 'kept' then reason in ('rm_agrees', 'judges_agree', 'human_verified', 'no_label_issue', 'ensemble_agrees')
        when 'flipped' then reason in ('recycled_flipped', 'human_verified')
        else reason in ('gold_rm_disagrees', 'judges_disagree', 'judges_undecided', 'not_judged', 'label_issue',
                        'ensemble_disagrees')
    end as reason_fits_status,
    -- each rule itself: a pair kept without a human must pass that rule (sql/filtered_pairs*.sql);
    -- coalesce, since no judge verdict (null) must not turn a broken rule into a null that passes
    coalesce(status = 'kept' and not human_verified and not case rule
        when 'paper' then coalesce(p_gold > 0.5, false)
            and (coalesce(p_best > 0.5, false) or coalesce(judge_verdict = 'agree', false))
        when 'confident_learning' then coalesce(judge_verdict = 'agree', false)
            or (judge_verdict is distinct from 'flipped' and not coalesce(label_issue, true))
        when 'ensemble' then coalesce(judge_verdict = 'agree', false)
            or (judge_verdict is distinct from 'flipped'
                and coalesce((1 - noise_score) + coalesce(p_best_spread, 0) >= 0.5 - 1e-9, false))
        else false
    end, true) as kept_against_the_rule,
    -- one rule decides the whole table, or its shards are not comparable
    count(distinct rule) over () > 1 as mixed_rules,
    shard <> (('0x' || left(pair_id, 8))::ubigint % n_shards) as wrong_shard,
    (status = 'dropped')::int as dropped
from filtered_pairs
