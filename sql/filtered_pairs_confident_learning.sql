-- filtered_pairs, rule "confident_learning": the Stage 2 decision for every pool pair of one shard.
-- Reads the view evidence (sql/pair_evidence.sql); gives pair_id, status, reason, noise_score, rule
-- (synpref/filtered/filtering.py adds the evidence columns). cleanlab's find_label_issues on the out-of-fold
-- p_best (label_issue; per-class thresholds estimated from the scores themselves, so it drops about as
-- many pairs as it estimates to be wrong) decides; a judge's verdict, where there is one, overrules it.
-- With recycling, a flagged pair is flipped where the gold RM also prefers the other response by more
-- than the margin. noise_score = 1 - label_quality (cleanlab's self-confidence in the label).
with checked as (
    select
        *,
        case judge_verdict when 'agree' then false when 'flipped' then true else coalesce(label_issue, false)
        end as against,
        p_gold < 0.5 - getvariable('flip_margin') as gold_against
    from evidence
)

select
    pair_id,
    case
        when human_flipped is not null then if(human_flipped, 'flipped', 'kept')
        when not against then 'kept'
        when getvariable('recycle_flipped') and gold_against then 'flipped'
        else 'dropped'
    end as status,
    case
        when human_flipped is not null then 'human_verified'
        when judge_verdict = 'agree' then 'judges_agree'
        when not against then 'no_label_issue'
        when getvariable('recycle_flipped') and gold_against then 'recycled_flipped'
        when judge_verdict = 'flipped' then 'judges_disagree'
        else 'label_issue'
    end as reason,
    if(human_flipped is not null, human_flipped::int::double, 1 - label_quality) as noise_score,
    'confident_learning' as rule
from checked
