-- The columns the gold_pairs suite validates: the table's own plus consistency flags.
select
    pair_id,
    chosen,
    rejected,
    flipped,
    simulated,
    agreement,
    annotators,
    chosen = rejected as same_responses,
    votes_for <= votes_against as not_a_majority,
    votes_for + votes_against + cannot_decide <> annotators as votes_do_not_add_up
from gold_pairs
