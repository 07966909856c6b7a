-- pair_evidence: what Stage 2's rules weigh, per pool pair of one shard (every rule file reads this view).
-- Inputs (temp views set up by synpref/filtered/filtering.py): pool (pair_id, source), scores (the shard's
-- pool_scores: the out-of-fold p_best of the fold models that never saw the pair, their spread, and
-- the gold RM's p_gold), judge_verdicts (pair_id, verdict), human_verdicts (pair_id, flipped) and
-- label_issues (pair_id, label_issue, label_quality: cleanlab's confident learning on p_best).
select
    p.pair_id,
    p.source,
    s.fold,
    s.p_best,
    s.p_best_spread,
    s.p_gold,
    j.verdict as judge_verdict,
    h.flipped as human_flipped,
    l.label_issue,
    l.label_quality
from pool as p
left join scores as s using (pair_id)
left join judge_verdicts as j using (pair_id)
left join human_verdicts as h using (pair_id)
left join label_issues as l using (pair_id)
