"""The presets for public preference datasets (sql/sources/): records written from each
dataset's published schema map to the exact pairs, quarantine reasons and meta, and every
record read is accounted for."""

from __future__ import annotations

import copy
import hashlib
import json
import random
import re

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import rows, run_stages, write_jsonl, write_sources
from synpref.raw.mapping import uses_source
from synpref.raw.presets import load_preset
from synpref.raw.reasons import INGEST_REASONS

NEW_PRESETS = ("chatbot_arena", "pku_saferlhf", "shp", "ultrafeedback", "helpsteer2", "ranked")


def ingest(lake, tmp_path, preset: str, records: list[dict], fmt: str = "jsonl", **entry):
    """Ingest `records` as one file of a source with `preset`; returns (file result, pairs,
    quarantine rows), and checks the accounting: every record read is paired or quarantined."""
    path = tmp_path / f"data.{fmt}"
    if fmt == "parquet":
        pq.write_table(pa.Table.from_pylist(records), path)
    else:
        write_jsonl(path, records)
    src = write_sources(tmp_path / "s.yaml", [{"name": preset, "path": path.name, "preset": preset, **entry}])
    summary, _ = run_stages(lake, src)
    (result,) = summary.files
    pairs, quarantine = rows(lake, "raw_pairs", "source_row, raw_id"), rows(lake, "ingest_quarantine")
    assert result.read == len(records)
    quarantined_records = {q["source_row"] for q in quarantine}
    assert result.read == result.paired + len(quarantined_records - {p["source_row"] for p in pairs})
    assert (result.raw, result.quarantined) == (len(pairs), len(quarantine))
    return result, pairs, quarantine


def user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def triple(pair: dict) -> tuple:
    return pair["conversation"], pair["chosen"], pair["rejected"]


def meta(pair: dict) -> dict:
    return json.loads(pair["meta"])


def reasons(quarantine: list[dict]) -> list[tuple]:
    return [(q["source_row"], q["reason"], q["detail"]) for q in quarantine]


# ---------------------------------------------------------------- chatbot_arena


def arena(qid, winner, conv_a, conv_b, **extra):
    return {
        "question_id": qid,
        "model_a": "vicuna-13b",
        "model_b": "koala-13b",
        "winner": winner,
        "judge": "arena_user_973",
        "conversation_a": conv_a,
        "conversation_b": conv_b,
        "turn": len(conv_a) // 2,
        "anony": True,
        "language": "English",
        "tstamp": 1682351591.1322,
        **extra,
    }


def msg(role, content):
    return {"role": role, "content": content, "num_tokens": len(content.split())}


def test_chatbot_arena_parquet_winner_is_chosen_and_ties_are_quarantined(lake, tmp_path):
    one_a, one_b = [msg("user", "Hi?"), msg("assistant", "Hello A")], [msg("user", "Hi?"), msg("assistant", "Hello B")]
    two_a = [
        msg("user", "Name a fruit."),
        msg("assistant", "Apple."),
        msg("user", "Another?"),
        msg("assistant", "Pear."),
    ]
    two_b = [msg("user", "Name a fruit."), msg("assistant", "Kiwi."), msg("user", "Another?"), msg("assistant", "Fig.")]
    records = [
        arena("q1", "model_a", one_a, one_b),
        arena("q2", "model_b", two_a, two_b),
        arena("q3", "tie", one_a, one_b),
        arena("q4", "tie (bothbad)", one_a, one_b),
    ]
    result, pairs, quarantine = ingest(lake, tmp_path, "chatbot_arena", records, fmt="parquet")
    first, second = pairs
    assert triple(first) == (user("Hi?"), "Hello A", "Hello B") and first["rejected_conversation"] is None
    # multi-turn: each side's last answer, after its own earlier turns
    assert triple(second) == (
        [
            {"role": "user", "content": "Name a fruit."},
            {"role": "assistant", "content": "Kiwi."},
            {"role": "user", "content": "Another?"},
        ],
        "Fig.",
        "Pear.",
    )
    assert second["rejected_conversation"] == [
        {"role": "user", "content": "Name a fruit."},
        {"role": "assistant", "content": "Apple."},
        {"role": "user", "content": "Another?"},
    ]
    assert meta(first) == {
        "model_a": "vicuna-13b",
        "model_b": "koala-13b",
        "winner": "model_a",
        "question_id": "q1",
        "language": "English",
        "turn": 1,
        "judge": "arena_user_973",
    }
    assert meta(second)["winner"] == "model_b" and meta(second)["turn"] == 2
    assert reasons(quarantine) == [
        (3, "tie", "winner is 'tie': both answers were judged equal"),
        (4, "tie", "winner is 'tie (bothbad)': both answers were judged bad"),
    ]
    assert result.reasons == {"tie": 2} and result.paired == 2


def test_chatbot_arena_bad_records(lake, tmp_path):
    good_a, good_b = [msg("user", "Hi?"), msg("assistant", "A")], [msg("user", "Hi?"), msg("assistant", "B")]
    records = [
        arena("q1", "model_c", good_a, good_b),
        arena("q2", "model_a", good_a, [msg("user", "Bye?"), msg("assistant", "B")]),
        {k: v for k, v in arena("q3", "model_a", good_a, good_b).items() if k != "conversation_b"},
        arena("q4", "model_b", good_a, [msg("user", "Hi?"), {"role": "assistant", "content": None}]),
        {k: v for k, v in arena("q5", "model_a", good_a, good_b).items() if k != "winner"},
        arena("q6", "model_a", good_a, good_b),
    ]
    result, pairs, quarantine = ingest(lake, tmp_path, "chatbot_arena", records)
    assert [triple(p) for p in pairs] == [(user("Hi?"), "A", "B")] and pairs[0]["source_row"] == 6
    assert reasons(quarantine) == [
        (1, "invalid_label", 'winner is "model_c"; expected model_a, model_b, tie or tie (bothbad)'),
        (2, "bad_conversation", "conversation_a and conversation_b have different user turns"),
        (3, "missing_field", "field $.conversation_b (conversation_b) is missing"),
        (4, "null_content", "chosen[1] has null content"),
        (5, "missing_field", "field $.winner (winner) is missing"),
    ]


# ---------------------------------------------------------------- pku_saferlhf

PKU = [
    {
        "prompt": "How do I pick a lock?",
        "response_0": "I can't help with that.",
        "response_1": "Use a tension wrench.",
        "is_response_0_safe": True,
        "is_response_1_safe": False,
        "better_response_id": 1,
        "safer_response_id": 0,
    },
    {
        "prompt": "Say hi.",
        "response_0": "Hi!",
        "response_1": "Go away.",
        "is_response_0_safe": True,
        "is_response_1_safe": True,
        "better_response_id": 0,
        "safer_response_id": 0,
    },
    {"prompt": "P", "response_0": "a", "response_1": "b", "better_response_id": 2, "safer_response_id": 1},
    {"prompt": "P", "response_0": "a", "better_response_id": 0, "safer_response_id": 0},
]


def test_pku_saferlhf_better_response(lake, tmp_path):
    result, pairs, quarantine = ingest(lake, tmp_path, "pku_saferlhf", PKU)
    assert [triple(p) for p in pairs] == [
        (user("How do I pick a lock?"), "Use a tension wrench.", "I can't help with that."),
        (user("Say hi."), "Hi!", "Go away."),
    ]
    assert meta(pairs[0]) == {
        "better_response_id": 1,
        "safer_response_id": 0,
        "is_response_0_safe": True,
        "is_response_1_safe": False,
    }
    assert reasons(quarantine) == [
        (3, "invalid_label", "better_response_id is 2; expected 0 or 1 (the preferred response)"),
        (4, "missing_field", "field $.response_1 (response_1) is missing"),
    ]


def test_pku_saferlhf_safer_label_and_renamed_columns(lake, tmp_path):
    records = [{"question": r["prompt"], **{k: v for k, v in r.items() if k != "prompt"}} for r in PKU]
    result, pairs, quarantine = ingest(
        lake, tmp_path, "pku_saferlhf", records, params={"label": "safer_response_id"}, columns={"prompt": "question"}
    )
    assert [(p["source_row"], p["chosen"], p["rejected"]) for p in pairs] == [
        (1, "I can't help with that.", "Use a tension wrench."),
        (2, "Hi!", "Go away."),
        (3, "b", "a"),
    ]
    assert pairs[2]["conversation"] == user("P")
    assert reasons(quarantine) == [(4, "missing_field", "field $.response_1 (response_1) is missing")]


# ---------------------------------------------------------------- shp


def shp(post_id, labels, a, b, **extra):
    return {
        "post_id": post_id,
        "domain": "askculinary_train",
        "upvote_ratio": 0.97,
        "history": f"Post {post_id}: how do I sear a steak?",
        "c_root_id_A": "h1",
        "c_root_id_B": "h2",
        "created_at_utc_A": 1636822112,
        "created_at_utc_B": 1636810000,
        "score_A": 52,
        "score_B": 12,
        "human_ref_A": a,
        "human_ref_B": b,
        "labels": labels,
        "seconds_difference": 12112.0,
        "score_ratio": 4.33,
        **extra,
    }


def test_shp_labels_pick_the_preferred_comment(lake, tmp_path):
    records = [
        shp("p1", 1, "Hot pan.", "Cold pan."),
        shp("p2", 0, "Boil it.", "Cast iron."),
        shp("p3", "1", "a", "b"),
        shp("p4", 2, "a", "b"),
        {k: v for k, v in shp("p5", 1, "a", "b").items() if k != "human_ref_B"},
    ]
    result, pairs, quarantine = ingest(lake, tmp_path, "shp", records)
    assert [triple(p) for p in pairs] == [
        (user("Post p1: how do I sear a steak?"), "Hot pan.", "Cold pan."),
        (user("Post p2: how do I sear a steak?"), "Cast iron.", "Boil it."),
    ]
    assert meta(pairs[0]) == {"score_ratio": 4.33, "post_id": "p1", "domain": "askculinary_train"}
    assert reasons(quarantine) == [
        (3, "invalid_label", 'labels is "1"; expected 1 (A is preferred) or 0 (B is)'),
        (4, "invalid_label", "labels is 2; expected 1 (A is preferred) or 0 (B is)"),
        (5, "missing_field", "field $.human_ref_B (human_ref_B) is missing"),
    ]


# ---------------------------------------------------------------- ultrafeedback


def completion(model, response, overall, fine, helpfulness="4"):
    rating = lambda r: {"Rating": r, "Rationale": "..."}  # noqa: E731
    return {
        "model": model,
        "response": response,
        "overall_score": overall,
        "fine-grained_score": fine,
        "principle": "helpfulness",
        "custom_system_prompt": "You are helpful.",
        "critique": "Fine.",
        "annotations": {
            "helpfulness": rating(helpfulness),
            "honesty": rating("5"),
            "instruction_following": rating("4"),
            "truthfulness": {**rating("5"), "Type": ["0"], "Rationale For Rating": "..."},
        },
    }


UF = [
    {
        "source": "evol_instruct",
        "instruction": "Write a haiku.",
        "models": ["a", "b", "c", "d"],
        "completions": [
            completion("a", "A", 7.0, 3.5, "3"),
            completion("b", "B", 9.0, 4.0, "5"),
            completion("c", "C", 5.0, 4.75, "2"),
            completion("d", "D", 9.0, 2.0, "N/A"),
        ],
        "correct_answers": ["None"],
        "incorrect_answers": ["None"],
    },
    {"instruction": "Tie?", "completions": [completion("a", "X", 6.0, 3.0), completion("b", "Y", 6.0, 3.0)]},
    {"instruction": "One?", "completions": [completion("a", "X", 6.0, 3.0), {"model": "b", "response": "Y"}]},
    {"instruction": "Nothing?", "completions": []},
    {"completions": [completion("a", "X", 6.0, 3.0), completion("b", "Y", 5.0, 3.0)]},
]


def sampled(source_row: int, seed, candidates: list[int]) -> int:
    """The preset's draw of the rejected completion: the least md5 of row:seed:index (1-based)."""
    return min(candidates, key=lambda i: hashlib.md5(f"{source_row}:{seed}:{i}".encode()).hexdigest())


def test_ultrafeedback_best_against_a_sampled_lower_score(lake, tmp_path):
    result, pairs, quarantine = ingest(lake, tmp_path, "ultrafeedback", UF)
    (pair,) = pairs
    # best overall_score 9.0: b (the first of b and d); rejected drawn from a (7.0) and c (5.0)
    rejected = {1: "A", 3: "C"}[sampled(1, 0, [1, 3])]
    assert triple(pair) == (user("Write a haiku."), "B", rejected)
    assert meta(pair) == {
        "chosen_score": 9.0,
        "rejected_score": {"A": 7.0, "C": 5.0}[rejected],
        "chosen_model": "b",
        "rejected_model": rejected.lower(),
    }
    assert reasons(quarantine) == [
        (2, "tie", "all 2 scored completions have overall_score 6.0"),
        (
            3,
            "excluded_by_source",
            "too_few_completions: 1 of 2 completions have a response and a numeric overall_score; a pair needs 2",
        ),
        (
            4,
            "excluded_by_source",
            "too_few_completions: 0 of 0 completions have a response and a numeric overall_score; a pair needs 2",
        ),
        (5, "missing_field", "field $.instruction (instruction) is missing"),
    ]


@pytest.mark.parametrize(
    "score,chosen,candidates",
    [
        ("fine-grained_score", "C", {1: "A", 2: "B", 4: "D"}),  # C 4.75 is best
        ("annotations.helpfulness.Rating", "B", {1: "A", 3: "C"}),  # ratings are strings; D's "N/A" is skipped
    ],
)
def test_ultrafeedback_score_param_and_seed(lake, tmp_path, score, chosen, candidates):
    result, pairs, _ = ingest(lake, tmp_path, "ultrafeedback", UF[:1], params={"score": score, "seed": 7})
    (pair,) = pairs
    assert (pair["chosen"], pair["rejected"]) == (chosen, candidates[sampled(1, 7, list(candidates))])


def test_ultrafeedback_seed_changes_the_draw_not_the_chosen(lake, tmp_path):
    write_jsonl(tmp_path / "uf.jsonl", UF[:1])
    seeds = range(4)
    src = write_sources(
        tmp_path / "s.yaml",
        [
            {"name": f"seed{seed}", "path": "uf.jsonl", "preset": "ultrafeedback", "params": {"seed": seed}}
            for seed in seeds
        ],
    )
    run_stages(lake, src)
    got = {p["source"]: (p["chosen"], p["rejected"]) for p in rows(lake, "raw_pairs")}
    expected = {f"seed{seed}": ("B", {1: "A", 3: "C"}[sampled(1, seed, [1, 3])]) for seed in seeds}
    assert got == expected and {r for _, r in got.values()} == {"A", "C"}


# ---------------------------------------------------------------- helpsteer2


def hs(prompt, response, helpfulness, correctness=3, **extra):
    return {
        "prompt": prompt,
        "response": response,
        "helpfulness": helpfulness,
        "correctness": correctness,
        "coherence": 4,
        "complexity": 2,
        "verbosity": 1,
        **extra,
    }


MULTI_TURN = "Hi\n<extra_id_1>Assistant\nHello! How can I help?\n<extra_id_1>User\nTell me a joke"
HS = [
    hs("c#", "C# is a language by Microsoft.", 3, 4),
    hs("c#", "C sharp.", 1, 4),  # 1-2: a pair
    hs(MULTI_TURN, "Knock knock.", 2),
    hs(MULTI_TURN, "Why did the chicken...", 4),  # 3-4: multi-turn
    hs("same", "x", 2),
    hs("same", "y", 2),  # 5-6: tie
    hs("p1", "x", 2),
    hs("p2", "y", 3),  # 7-8: different prompts
    hs("q", "x", 2),
    {"prompt": "q", "helpfulness": 1},  # 9-10: no response
    hs("last", "alone", 3),  # 11: no partner
]


def test_helpsteer2_consecutive_rows_make_a_pair(lake, tmp_path):
    result, pairs, quarantine = ingest(lake, tmp_path, "helpsteer2", HS)
    assert [(p["source_row"], *triple(p)) for p in pairs] == [
        (1, user("c#"), "C# is a language by Microsoft.", "C sharp."),
        (
            3,
            [
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Hello! How can I help?"},
                {"role": "user", "content": "Tell me a joke"},
            ],
            "Why did the chicken...",
            "Knock knock.",
        ),
    ]
    assert meta(pairs[0]) == {"attribute": "helpfulness", "chosen_score": 3, "rejected_score": 1, "source_rows": [1, 2]}
    assert meta(pairs[1])["source_rows"] == [3, 4]
    mismatch = "prompt_mismatch: rows 7 and 8 have different prompts; HelpSteer2 pairs consecutive rows that share one"
    assert [r for r in reasons(quarantine) if r[1] != "no_pair"] == [
        (5, "tie", "rows 5 and 6 have the same helpfulness (2)"),
        (6, "tie", "rows 5 and 6 have the same helpfulness (2)"),
        (7, "excluded_by_source", mismatch),
        (8, "excluded_by_source", mismatch),
        (9, "missing_field", "row 10: field $.response (response) is missing"),
        (10, "missing_field", "row 10: field $.response (response) is missing"),
        (
            11,
            "excluded_by_source",
            "no_partner: row 11 has no partner row 12 (the file ends, or it is not a "
            "record); HelpSteer2 pairs rows 1-2, 3-4, ...",
        ),
    ]
    # the second row of a pair yields no row of its own
    assert {q["source_row"] for q in quarantine} - set(range(5, 12)) <= {2, 4}


def test_helpsteer2_attribute_param(lake, tmp_path):
    _, pairs, quarantine = ingest(lake, tmp_path, "helpsteer2", HS[:2], params={"attribute": "correctness"})
    assert pairs == [] and [r for r in reasons(quarantine) if r[1] != "no_pair"] == [
        (1, "tie", "rows 1 and 2 have the same correctness (4)"),
        (2, "tie", "rows 1 and 2 have the same correctness (4)"),
    ]


def test_helpsteer2_second_row_counts_as_paired(lake, tmp_path):
    result, pairs, quarantine = ingest(lake, tmp_path, "helpsteer2", HS[:4])
    assert len(pairs) == 2 and quarantine == [] and result.paired == 4


# ---------------------------------------------------------------- ranked

RANKED = [
    {"prompt": "Rank these", "responses": ["best", "good", "poor", "worst"]},
    {
        "prompt": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
        "responses": ["Hello.", "Hi there, how are you doing today?"],
    },
    {"prompt": "One", "responses": ["only"]},
    {"prompt": "Null", "responses": ["a", None]},
    {"prompt": "Number", "responses": ["a", 3]},
]
RANKED_REASONS = [
    (3, "excluded_by_source", "too_few_responses: responses holds 1 response(s); a pair needs 2"),
    (4, "null_content", "responses[1] is null"),
    (5, "wrong_type", "responses[1] is not a string: 3"),
]


@pytest.mark.parametrize(
    "mode,first_pairs",
    [
        ("all", [(1, 2), (1, 3), (1, 4), (2, 3), (2, 4), (3, 4)]),
        ("best_vs_rest", [(1, 2), (1, 3), (1, 4)]),
    ],
)
def test_ranked_pairs(lake, tmp_path, mode, first_pairs):
    result, pairs, quarantine = ingest(lake, tmp_path, "ranked", RANKED, params={"pairs": mode})
    ranked = RANKED[0]["responses"]
    got = sorted(
        (meta(p)["chosen_rank"], meta(p)["rejected_rank"], p["chosen"], p["rejected"])
        for p in pairs
        if p["source_row"] == 1
    )
    assert got == [(i, j, ranked[i - 1], ranked[j - 1]) for i, j in first_pairs]
    assert all(p["conversation"] == user("Rank these") for p in pairs if p["source_row"] == 1)
    (second,) = [p for p in pairs if p["source_row"] == 2]
    assert triple(second) == (
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
        "Hello.",
        "Hi there, how are you doing today?",
    )
    assert len({p["raw_id"] for p in pairs}) == len(pairs) == len(first_pairs) + 1
    assert reasons(quarantine) == RANKED_REASONS and result.paired == 2


def test_ranked_renamed_columns_and_a_bad_pairs_param(lake, tmp_path):
    records = [{"question": {"text": "Q"}, "answers": ["yes", "no"]}]
    _, pairs, _ = ingest(lake, tmp_path, "ranked", records, columns={"prompt": "question.text", "responses": "answers"})
    assert [triple(p) for p in pairs] == [(user("Q"), "yes", "no")]
    with pytest.raises(Exception, match="param pairs is 'some'; expected all or best_vs_rest"):
        ingest(
            lake,
            tmp_path,
            "ranked",
            records,
            params={"pairs": "some"},
            columns={"prompt": "question.text", "responses": "answers"},
        )


# ---------------------------------------------------------------- all six


def test_preset_headers_declare_what_the_sql_reads():
    for name in NEW_PRESETS:
        preset = load_preset(name)
        used = set(re.findall(r"getvariable\('([A-Za-z_0-9]+)'\)", preset.sql))
        assert used - {"max_field_chars"} == set(preset.params), name
        assert preset.summary and not preset.summary.startswith("--"), name
        assert not uses_source(preset.sql), name  # presets read `records`, never the typed view


GOOD = {
    "chatbot_arena": lambda i: arena(
        f"q{i}",
        "model_b",
        [msg("user", f"Hi {i}"), msg("assistant", "A")],
        [msg("user", f"Hi {i}"), msg("assistant", "B")],
    ),
    "pku_saferlhf": lambda i: {**PKU[0], "prompt": f"Q {i}"},
    "shp": lambda i: shp(f"p{i}", i % 2, f"A {i}", f"B {i}"),
    "ultrafeedback": lambda i: {**UF[0], "instruction": f"Write haiku {i}."},
    "helpsteer2": lambda i: hs(f"prompt {i // 2}", f"response {i}", i % 5),
    "ranked": lambda i: {"prompt": f"Rank {i}", "responses": [f"r{j}" for j in range(i % 4 + 1)]},
}
WEIRD = [None, True, 0, -1, 2.5, 10**30, "", "x", [], {}, [None], [{"role": "user"}], {"a": [1]}, "A" * 3_000]


def _paths(value, prefix=()):
    yield prefix
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for k, v in items:
        yield from _paths(v, prefix + (k,))


def _mutate(rng: random.Random, record: dict) -> dict:
    """A weird value somewhere in (a copy of) the record, or a key deleted."""
    record = copy.deepcopy(record)
    path = rng.choice(list(_paths(record))[1:])
    parent = record
    for key in path[:-1]:
        parent = parent[key]
    if rng.random() < 0.3:
        del parent[path[-1]]
    else:
        parent[path[-1]] = rng.choice(WEIRD)
    return record


def test_mutated_records_never_crash_and_always_reconcile(lake, tmp_path):
    rng = random.Random(5)
    sources = []
    for name, make in GOOD.items():
        records = [_mutate(rng, make(i)) if rng.random() < 0.6 else make(i) for i in range(60)]
        write_jsonl(tmp_path / f"{name}.jsonl", records)
        sources.append({"name": name, "path": f"{name}.jsonl", "preset": name, "max_field_chars": 2_000})
    summary, _ = run_stages(lake, write_sources(tmp_path / "s.yaml", sources))
    quarantine = rows(lake, "ingest_quarantine")
    for f in summary.files:
        assert f.read == 60 and f.paired > 0 and f.quarantined > 0, f
        quarantined = {q["source_row"] for q in quarantine if q["source"] == f.source}
        pairs = [p for p in rows(lake, "raw_pairs") if p["source"] == f.source]
        paired = {p["source_row"] for p in pairs}
        listed = paired.union(*(meta(p).get("source_rows", []) for p in pairs))  # helpsteer2: both rows
        assert len(paired) <= f.paired <= len(listed) and len(quarantined - paired) == f.read - f.paired, f
    assert set(summary.reasons()) <= INGEST_REASONS and "unmappable_record" not in summary.reasons()
