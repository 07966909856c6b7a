-- pair_votes: the human votes per labelled pair, relative to its original label. "cannot decide"
-- is no vote; the outcome says whether the pair becomes gold (the majority of votes) or why not.
with tallied as (
    select
        pair_id,
        count(*) filter (where choice = 'chosen') as votes_chosen,
        count(*) filter (where choice = 'rejected') as votes_rejected,
        count(*) filter (where choice = 'cannot_decide') as cannot_decide,
        count(*) as annotators,
        bool_or(simulated) as simulated,
        list_sort(list(distinct source)) as label_sources,
        list_sort(list(distinct guideline_version) filter (where guideline_version is not null)) as guideline_versions,
        min(labelled_at) as first_labelled_at,
        max(labelled_at) as last_labelled_at
    from latest_judgements
    group by pair_id
)

select
    t.*,
    case
        when s.pair_id is null then 'not_in_silver'
        when t.votes_chosen + t.votes_rejected = 0 then 'cannot_decide'
        when t.votes_chosen = t.votes_rejected then 'tie'
        when t.votes_chosen > t.votes_rejected then 'gold_agrees'
        else 'gold_flipped'
    end as outcome
from tallied as t
left join (select pair_id from silver_pairs) as s using (pair_id)
