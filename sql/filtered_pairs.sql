-- filtered_pairs: the Stage 2 decision for every pool pair of one shard (kept / flipped / dropped + reason).
-- Inputs (temp views set up by synpref/filter_stage.py): pool (pair_id, source), best_scores and
-- gold_scores (pair_id, p_chosen: the current best RM's and the gold RM's probability that the
-- original label is right), judge_verdicts (pair_id, verdict), human_verdicts (pair_id, flipped).
-- A pair is kept when the gold RM agrees with its label and so do either the best RM or the
-- judges; with recycling, a dropped pair is flipped where the evidence against its label is clear:
-- the gold RM and either the best RM or the judges prefer the other response, the RMs by more
-- than the margin (variable flip_margin), so a coin-flip RM recycles nothing.
with evidence as (
    select
        p.pair_id,
        p.source,
        b.p_chosen as p_best,
        g.p_chosen as p_gold,
        j.verdict as judge_verdict,
        h.flipped as human_flipped
    from pool as p
    left join best_scores as b using (pair_id)
    left join gold_scores as g using (pair_id)
    left join judge_verdicts as j using (pair_id)
    left join human_verdicts as h using (pair_id)
),

checked as (
    select
        *,
        p_gold > 0.5 as gold_agrees,
        p_best > 0.5 or judge_verdict = 'agree' as second_agrees,
        -- the same rule for the label flipped, with a margin
        p_gold < 0.5 - getvariable('flip_margin')
            and (p_best < 0.5 - getvariable('flip_margin') or judge_verdict = 'flipped') as flip_passes
    from evidence
)

select
    pair_id,
    source,
    case
        when human_flipped is not null then if(human_flipped, 'flipped', 'kept')
        when gold_agrees and second_agrees then 'kept'
        when getvariable('recycle_flipped') and flip_passes then 'flipped'
        else 'dropped'
    end as status,
    case
        when human_flipped is not null then 'human_verified'
        when gold_agrees and p_best > 0.5 then 'rm_agrees'
        when gold_agrees and second_agrees then 'judges_agree'
        when getvariable('recycle_flipped') and flip_passes then 'recycled_flipped'
        when second_agrees then 'gold_rm_disagrees'
        when judge_verdict = 'flipped' then 'judges_disagree'
        when judge_verdict = 'undecided' then 'judges_undecided'
        else 'not_judged'
    end as reason,
    p_best,
    p_gold,
    judge_verdict,
    human_flipped is not null as human_verified
from checked
