-- The columns the silver_quarantine suite validates.
select
    raw_id,
    pair_id,
    reason,
    reason = 'duplicate' and duplicate_of is null as duplicate_without_original
from silver_quarantine
