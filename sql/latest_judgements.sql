-- latest_judgements: each annotator's latest judgement of each pair (human_labels is append-only:
-- a correction is a newer row, and only the newest counts).
select *
from human_labels
qualify row_number() over (partition by pair_id, annotator
                           order by labelled_at desc, recorded_at desc, label_id desc) = 1
