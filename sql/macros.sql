-- Shared macros: text normalisation, the pair hash and word 13-grams for the silver stage.
-- Normalisation only decides identity; the stored content is kept exactly as ingested.
-- Macros inline their arguments: pass columns, not expressions, to the ones that repeat them.
-- Collapses every whitespace run to one space; the pattern leaves single spaces alone (same
-- result as '\s+', five times faster, since most whitespace is already a single space).
create or replace temp macro norm_text(s) as
    trim(regexp_replace(nfc_normalize(s), '\s\s+|[\t\n\r\f]', ' ', 'g'));

create or replace temp macro conversation_key(conv) as
    array_to_string(list_transform(conv, lambda m: m.role || chr(31) || norm_text(m.content)), chr(30));

create or replace temp macro pair_hash(conv, chosen, rejected) as
    md5(conversation_key(conv) || chr(29) || norm_text(chosen) || chr(29) || norm_text(rejected));

-- Lower-cased ASCII alphanumeric words of a text, each hashed. Separator runs become one
-- space (again leaving single spaces alone), then a plain split.
create or replace temp macro word_hashes(s) as
    list_transform(string_split(trim(regexp_replace(lower(s), '[^a-z0-9]{2,}|[^a-z0-9 ]', ' ', 'g')), ' '),
                   lambda w: hash(w));

-- The hashes of every 13 consecutive words (the paper's n), from a column of word hashes:
-- the list zipped with 12 shifted copies of itself, so no lambda captures the whole list.
create or replace temp macro ngram_hashes(wh) as
    list_transform(
        list_zip(wh, wh[2:], wh[3:], wh[4:], wh[5:], wh[6:], wh[7:], wh[8:], wh[9:], wh[10:], wh[11:],
                 wh[12:], wh[13:], true),
        lambda g: hash(g));
