-- The columns the judge_votes suite validates: the table's own plus consistency flags.
select
    pair_id,
    judge,
    config_key,
    decision,
    shown_order,
    error,
    confidence,
    invalid,
    agree + flip + invalid <> len(answers) as counts_do_not_add_up,
    -- every sample answered, or none at all when the backend failed
    case when error is null then len(answers) <> samples else len(answers) <> 0 end as wrong_number_of_answers,
    (decision = 'agree' and agree <= flip) or (decision = 'flipped' and flip <= agree)
        or (decision = 'undecided' and agree <> flip) as decision_against_the_votes
from judge_votes
