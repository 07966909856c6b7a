-- silver_quarantine: raw pairs kept out of silver, each with its reason (nothing dropped silently).
with decisions as (
    select raw_id, pair_id, reason, detail, duplicate_of from silver_decisions where reason is not null
)
select
    r.raw_id,
    r.source,
    r.source_file,
    r.source_row,
    d.reason,
    d.detail,
    d.pair_id,
    d.duplicate_of,
    r.conversation,
    r.chosen,
    r.rejected
from raw_pairs as r
join decisions as d using (raw_id)
