-- filtered_pairs, rule "paper" (the default): the Stage 2 decision for every pool pair of one shard.
-- Reads the view evidence (sql/pair_evidence.sql); gives pair_id, status, reason, noise_score, rule
-- (synpref/filtered/filtering.py adds the evidence columns). Skywork-Reward-V2's rule: a pair is kept when the
-- gold RM agrees with its label and so do either the best RM (out of fold) or the judges; with
-- recycling, a dropped pair is flipped where the evidence against its label is clear: the gold RM and
-- either the best RM or the judges prefer the other response, the RMs by more than the margin
-- (variable flip_margin), so a coin-flip RM recycles nothing. noise_score is the rule as one number
-- (a pair is kept exactly when it is below 0.5), for threshold-free figures.
with checked as (
    select
        *,
        p_gold > 0.5 as gold_agrees,
        p_best > 0.5 or judge_verdict = 'agree' as second_agrees,
        p_gold < 0.5 - getvariable('flip_margin')
            and (p_best < 0.5 - getvariable('flip_margin') or judge_verdict = 'flipped') as flip_passes,
        1 - least(p_gold, greatest(p_best, if(judge_verdict = 'agree', 1.0, 0.0))) as rule_score
    from evidence
)

select
    pair_id,
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
    if(human_flipped is not null, human_flipped::int::double, rule_score) as noise_score,
    'paper' as rule
from checked
