-- curated_export: the kept and flipped pool pairs in TRL's conversational preference format
-- (explicit prompt): prompt = the conversation so far, chosen / rejected = one assistant message each.
-- A flipped pair comes out with its responses swapped.
with decided as (
    select pair_id, status, reason from filtered_pairs where status in ('kept', 'flipped')
)

select
    s.pair_id,
    s.source,
    d.status,
    d.reason,
    s.conversation as prompt,
    [struct_pack(role := 'assistant', content := if(d.status = 'flipped', s.rejected, s.chosen))] as chosen,
    [struct_pack(role := 'assistant', content := if(d.status = 'flipped', s.chosen, s.rejected))] as rejected,
    s.meta
from decided as d
join silver_pairs as s using (pair_id)
order by s.pair_id
