-- filtered_pairs, rule "ensemble": the Stage 2 decision for every pool pair of one shard.
-- Reads the view evidence (sql/pair_evidence.sql); gives pair_id, status, reason, noise_score, rule
-- (synpref/filtered/filtering.py adds the evidence columns). Every model that never saw the pair's label votes:
-- the fold models (their mean out-of-fold p_best) and the gold RM, averaged in logit space with equal
-- weight. A pair is dropped when that ensemble's p is below 0.5 by more than the fold models' spread
-- (they confidently disagree with the label); a judge's verdict, where there is one, overrules it.
-- With recycling, a dropped pair is flipped where the ensemble is below 0.5 - margin as well.
with scored as (
    select
        *,
        1 / (1 + exp(-(ln(greatest(p_best, 1e-6) / greatest(1 - p_best, 1e-6))
                       + ln(greatest(p_gold, 1e-6) / greatest(1 - p_gold, 1e-6))) / 2)) as p_ensemble
    from evidence
),

checked as (
    select
        *,
        case judge_verdict when 'agree' then false when 'flipped' then true
            else p_ensemble + coalesce(p_best_spread, 0) < 0.5 end as against,
        p_ensemble + coalesce(p_best_spread, 0) < 0.5 - getvariable('flip_margin') as clearly_against
    from scored
)

select
    pair_id,
    case
        when human_flipped is not null then if(human_flipped, 'flipped', 'kept')
        when not against then 'kept'
        when getvariable('recycle_flipped') and clearly_against then 'flipped'
        else 'dropped'
    end as status,
    case
        when human_flipped is not null then 'human_verified'
        when judge_verdict = 'agree' then 'judges_agree'
        when not against then 'ensemble_agrees'
        when getvariable('recycle_flipped') and clearly_against then 'recycled_flipped'
        when judge_verdict = 'flipped' then 'judges_disagree'
        else 'ensemble_disagrees'
    end as reason,
    if(human_flipped is not null, human_flipped::int::double, 1 - p_ensemble) as noise_score,
    'ensemble' as rule
from checked
