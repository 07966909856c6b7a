-- The columns the raw_pairs suite validates: the table's own plus a few derived per pair.
select
    raw_id,
    source,
    source_file,
    source_row,
    chosen,
    rejected,
    len(conversation) as conversation_turns,
    len(list_filter(conversation, lambda m: m.role not in ('system', 'user', 'assistant', 'tool'))) as unknown_roles,
    len(list_filter(conversation, lambda m: m.content is null)) as null_contents,
    length(chosen) / greatest(length(rejected), 1) as length_ratio,
    -- within the batch: batches are hash buckets of the key, so the share follows the table's
    count(*) over (partition by source) / count(*) over () as source_share,
    length(chosen) as chosen_chars,
    length(rejected) as rejected_chars,
    list_sum(list_transform(conversation, lambda m: length(m.content))) as conversation_chars
from raw_pairs
