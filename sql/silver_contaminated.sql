-- silver_contaminated: raw pairs whose conversation shares a word 13-gram with a benchmark prompt.
with conversation_words as (
    select raw_id, word_hashes(array_to_string(list_transform(conversation, lambda m: m.content), ' ')) as wh
    from raw_pairs
),

grams as (
    select raw_id, unnest(ngram_hashes(wh)) as ngram
    from conversation_words
)

select distinct raw_id
from grams
semi join benchmark_ngrams using (ngram)
