-- The columns the judge_queue suite validates.
select pair_id, origin, queued_at
from judge_queue
