-- The columns the silver_labels suite validates: the table's own plus consistency flags.
select
    pair_id,
    verdict,
    confidence,
    shown_order,
    merge,
    prompt_version,
    len(votes) as judges,
    verdict = 'undecided' and confidence > 0 as undecided_with_confidence,
    verdict <> 'undecided' and confidence <= 0 as decided_without_confidence,
    len(list_filter(votes, lambda v: len(v.answers) = 0)) > 0 as any_judge_failed
from silver_labels
