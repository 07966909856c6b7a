-- benchmark_ngrams: the hashed word 13-grams of the benchmark first-turn prompts (decontamination).
with prompt_words as (
    select word_hashes(prompt) as wh from benchmark_prompts
)
select distinct unnest(ngram_hashes(wh)) as ngram
from prompt_words
