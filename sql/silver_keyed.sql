-- silver_keyed: every raw pair with its pair_id, any per-pair reason to keep it out, and its bucket.
-- Written partitioned by bucket (a hash of pair_id), so that deduplication can run one bucket at a time.
with keyed as (
    select
        r.*,
        pair_hash(r.conversation, r.chosen, r.rejected) as pair_id,
        norm_text(r.chosen) as chosen_key,
        norm_text(r.rejected) as rejected_key,
        -- case, not `and`: only the few pairs that carry a second conversation pay for the check
        case
            when r.rejected_conversation is null then false
            else conversation_key(r.rejected_conversation) <> conversation_key(r.conversation)
        end as conversation_mismatch,
        c.raw_id is not null as contaminated
    from raw_pairs as r
    left join silver_contaminated as c using (raw_id)
)

select
    * exclude (chosen_key, rejected_key, conversation_mismatch, contaminated),
    case
        when chosen_key = '' or rejected_key = '' then 'empty_response'
        when conversation_mismatch then 'conversation_mismatch'
        when chosen_key = rejected_key then 'identical_responses'
        when contaminated then 'contaminated'
    end as pair_reason,
    hash(pair_id) % getvariable('buckets') as bucket
from keyed
