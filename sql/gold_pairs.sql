-- gold_pairs: human-verified pairs, the majority of annotators' votes (ties and pairs nobody could
-- decide are left out). chosen is the response the humans preferred; flipped says it was the
-- original rejected one.
with decided as (
    select *, outcome = 'gold_flipped' as flipped
    from pair_votes
    where outcome in ('gold_agrees', 'gold_flipped')
)

select
    d.pair_id,
    s.conversation,
    case when d.flipped then s.rejected else s.chosen end as chosen,
    case when d.flipped then s.chosen else s.rejected end as rejected,
    d.flipped,
    greatest(d.votes_chosen, d.votes_rejected)::integer as votes_for,
    least(d.votes_chosen, d.votes_rejected)::integer as votes_against,
    d.cannot_decide::integer as cannot_decide,
    d.annotators::integer as annotators,
    round(greatest(d.votes_chosen, d.votes_rejected) / (d.votes_chosen + d.votes_rejected), 4) as agreement,
    d.simulated,
    s.source,
    d.label_sources,
    d.guideline_versions,
    d.first_labelled_at,
    d.last_labelled_at
from decided as d
join silver_pairs as s using (pair_id)
order by d.pair_id
