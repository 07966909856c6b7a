-- The columns the annotation_queue suite validates.
select pair_id, origin, priority, queued_at
from annotation_queue
