-- The columns the silver_decisions suite validates.
select raw_id, pair_id, reason
from silver_decisions
