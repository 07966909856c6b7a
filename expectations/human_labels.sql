-- The columns the human_labels suite validates: the table's own plus consistency flags.
select
    label_id,
    pair_id,
    annotator,
    choice,
    shown_order,
    seconds,
    labelled_at,
    recorded_at,
    simulated,
    source,
    source = 'web' and shown_order is null as web_label_without_order,
    source = 'web' and guideline_version is null as web_label_without_guideline,
    coalesce(not simulated and seconds < 2, false) as under_two_seconds
from human_labels
