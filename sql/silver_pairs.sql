-- silver_pairs: normalised, hashed, deduplicated, decontaminated pairs (content as ingested).
with kept as (
    select raw_id from silver_decisions where reason is null
)

select
    k.pair_id,
    k.source,
    k.conversation,
    k.chosen,
    k.rejected,
    k.raw_id,
    k.source_file,
    k.source_row,
    k.meta  -- what the source's SELECT kept beside the pair (JSON; null for the four shapes)
from silver_keyed as k
semi join kept using (raw_id)
