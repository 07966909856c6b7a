-- silver_quarantine: raw pairs kept out of silver, each with its reason (nothing dropped silently).
with decisions as (
    select raw_id, reason, detail, duplicate_of from silver_decisions where reason is not null
)

select
    k.raw_id,
    k.source,
    k.source_file,
    k.source_row,
    d.reason,
    d.detail,
    k.pair_id,
    d.duplicate_of,
    k.conversation,
    k.chosen,
    k.rejected
from silver_keyed as k
join decisions as d using (raw_id)
