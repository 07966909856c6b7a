-- silver_decisions: every raw pair's pair_id and, when it cannot enter silver, the reason.
with keyed as (
    select
        raw_id,
        source_file,
        source_row,
        pair_hash(conversation, chosen, rejected) as pair_id,
        norm_text(chosen) as chosen_key,
        norm_text(rejected) as rejected_key,
        -- case, not `and`: only the few pairs that carry a second conversation pay for the check
        case
            when rejected_conversation is null then false
            else conversation_key(rejected_conversation) <> conversation_key(conversation)
        end as conversation_mismatch
    from raw_pairs
),

conversation_words as (
    select raw_id, word_hashes(array_to_string(list_transform(conversation, lambda m: m.content), ' ')) as wh
    from raw_pairs
),

contaminated as (
    select distinct raw_id
    from (select raw_id, unnest(ngram_hashes(wh)) as ngram from conversation_words) as grams
    semi join benchmark_ngrams using (ngram)
),

flagged as (
    select
        k.raw_id,
        k.source_file,
        k.source_row,
        k.pair_id,
        case
            when k.chosen_key = '' or k.rejected_key = '' then 'empty_response'
            when k.conversation_mismatch then 'conversation_mismatch'
            when k.chosen_key = k.rejected_key then 'identical_responses'
            when c.raw_id is not null then 'contaminated'
        end as reason
    from keyed as k
    left join contaminated as c using (raw_id)
),

-- The first occurrence (by file, then row) of each pair_id is kept; later ones are duplicates.
keepers as (
    select pair_id, arg_min(raw_id, struct_pack(f := source_file, r := source_row)) as kept_raw_id
    from flagged
    where reason is null
    group by pair_id
)

select
    f.raw_id,
    f.pair_id,
    coalesce(f.reason, case when f.raw_id <> k.kept_raw_id then 'duplicate' end) as reason,
    case
        when f.reason = 'empty_response' then 'chosen or rejected is empty or whitespace only'
        when f.reason = 'conversation_mismatch' then 'chosen and rejected transcripts differ before the final turn'
        when f.reason = 'identical_responses' then 'chosen and rejected are the same after normalisation'
        when f.reason = 'contaminated' then 'shares a word 13-gram with a benchmark first-turn prompt'
        when f.raw_id <> k.kept_raw_id then 'same pair as raw_id ' || k.kept_raw_id
    end as detail,
    case when f.reason is null and f.raw_id <> k.kept_raw_id then k.kept_raw_id end as duplicate_of
from flagged as f
left join keepers as k using (pair_id)
