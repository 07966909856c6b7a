-- silver_pairs: normalised, hashed, deduplicated, decontaminated pairs (content as ingested).
with decisions as (
    select raw_id, pair_id from silver_decisions where reason is null
)
select
    d.pair_id,
    r.source,
    r.conversation,
    r.chosen,
    r.rejected,
    r.raw_id,
    r.source_file,
    r.source_row
from raw_pairs as r
join decisions as d using (raw_id)
