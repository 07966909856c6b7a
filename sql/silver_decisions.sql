-- silver_decisions: every raw pair's pair_id and, when it cannot enter silver, the reason.
-- Runs over one bucket of silver_keyed at a time; equal pair_ids always share a bucket.
with keyed as (
    select raw_id, pair_id, pair_reason, source_file, source_row
    from silver_keyed
),

-- The first occurrence (by file, then row) of each pair_id is kept; later ones are duplicates.
keepers as (
    select pair_id, arg_min(raw_id, struct_pack(f := source_file, r := source_row)) as kept_raw_id
    from keyed
    where pair_reason is null
    group by pair_id
)

select
    k.raw_id,
    k.pair_id,
    coalesce(k.pair_reason, case when k.raw_id <> p.kept_raw_id then 'duplicate' end) as reason,
    case
        when k.pair_reason = 'empty_response' then 'chosen or rejected is empty or whitespace only'
        when k.pair_reason = 'conversation_mismatch'
            then 'chosen and rejected transcripts differ before the final turn'
        when k.pair_reason = 'identical_responses' then 'chosen and rejected are the same after normalisation'
        when k.pair_reason = 'contaminated' then 'shares a word 13-gram with a benchmark first-turn prompt'
        when k.raw_id <> p.kept_raw_id then 'same pair as raw_id ' || p.kept_raw_id
    end as detail,
    case when k.pair_reason is null and k.raw_id <> p.kept_raw_id then p.kept_raw_id end as duplicate_of
from keyed as k
left join keepers as p using (pair_id)
