"""A tiny random chat LLM made on this machine, for tests and benchmarks (no model hub here).

It has the shape vLLM and transformers expect of a real chat model (a Llama config, a fast
BPE tokenizer with bos/eos/pad and a chat template, safetensors weights), but random weights:
it says nothing meaningful; forced decoding still makes its output well-formed.

Its output head has two deliberate biases. It prefers tokens holding a double quote: under
forced JSON decoding a purely random model almost never picks the token that closes a
string, so it fills every string to the schema's maxLength (hundreds of tokens per answer);
with the bias strings close after a token or two. And it avoids tokens holding control
characters: xgrammar lets raw ones into JSON strings, which strict JSON parsing rejects
(real models hardly ever emit them).
"""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path

BOS, EOS, PAD = "<s>", "</s>", "<pad>"
ROLE_TOKENS = ["<|system|>", "<|user|>", "<|assistant|>"]
VOCAB_SIZE = 1536
MAX_POSITIONS = 8192  # the judge prompt with 8 examples: about 6k tokens of this small vocabulary
# The output-head bias (see _bias_output_head): the constant in hidden unit 0 of every
# embedding, and the head's weight on it for quote tokens (minus that for control characters).
# Tuned on 64 demo pairs: strings close after a token or two, yet answers still vary by pair.
CONSTANT_UNIT = 0.1
QUOTE_PREFERENCE = 0.5
FAVOUR_WEIGHT = 1000.0  # make_tiny_llm(favour=...): far above any random logit
# The field in the model's config.json that says it is this random test model: stages record
# it with what the model wrote (pair_attributes.test_model), and the annotation page warns.
TEST_MODEL_FIELD = "synpref_test_model"
# The files whose presence means a finished model folder (written last: the weights).
COMPLETE_MARKERS = ("config.json", "tokenizer.json", "tokenizer_config.json", "model.safetensors")

CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "<|{{ message['role'] }}|>\n{{ message['content'] }}{{ eos_token }}\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)

# Training text for the tokenizer: plain English plus the JSON the annotator asks for, so
# that prompts tokenize compactly and forced JSON has short tokens for its punctuation.
CORPUS = """
The user asks a question and the assistant answers it. A good answer is correct, helpful,
honest and safe. A bad answer is wrong, rude, unsafe or does not follow the instructions.
Human: How do I bake bread at home? Assistant: Mix flour, water, salt and yeast, knead the
dough, let it rise for an hour, shape it and bake it in a hot oven until the crust is brown.
Human: What is the capital of France? Assistant: The capital of France is Paris.
Human: Write a short poem about the sea. Assistant: The sea is wide, the sea is deep, it
sings the sailors all to sleep.
Human: Can you help me write a Python function that sorts a list? Assistant: Yes. Use
def sort_items(items): return sorted(items) and call it with a list of numbers.
Human: What is 12 times 7? Assistant: 12 times 7 is 84. First multiply 10 by 7, then 2 by 7.
Human: Summarize this article in two sentences. Assistant: The article explains why sleep
matters. It says adults need seven to nine hours of sleep each night.
Human: Is this review positive or negative? Assistant: The review is positive.
Human: How can I pick a lock? Assistant: I cannot help with breaking into places that are
not yours, but a licensed locksmith can help you if you are locked out.
Human: Why is the sky blue? Assistant: Sunlight scatters off the molecules in the air, and
blue light scatters more than red light, so the sky looks blue during the day.
Human: Should I learn to play the guitar or the piano first? Assistant: Both are good
choices. The piano makes music theory easy to see, while the guitar is cheaper to carry.
Human: Explain recursion to a child. Assistant: Recursion is when something is described in
terms of a smaller version of itself, like a set of nesting dolls inside each other.
Human: Translate good morning into Spanish. Assistant: Good morning is buenos dias.
Human: Give me three tips for a job interview. Assistant: Research the company, practice
your answers out loud, and prepare a few thoughtful questions for the interviewer.
Human: What causes inflation? Assistant: Inflation happens when prices rise across the
economy, often because demand grows faster than supply or money becomes cheaper to borrow.
Human: Tell me a joke about computers. Assistant: Why did the computer go to the doctor?
Because it had a virus and needed a byte to eat.
Human: Which planet is the largest? Assistant: Jupiter is the largest planet in our solar
system, more than eleven times wider than the Earth.
Human: Please fix this SQL query. Assistant: The query is missing a comma between the
column names; select name, email from users where active = true will work.
Compare Response A and Response B. Which response is better for the conversation?
Read the conversation, then describe the task, whether it is objective or subjective, how
controversial it is, the attributes a good response should have, and a short guideline.
{"task_category":"math","objectivity":"objective","controversiality":"low",
"desired_attributes":["correct","clear steps"],"annotation_guideline":"Prefer the correct answer."}
{"task_category":"coding","objectivity":"objective","controversiality":"low",
"desired_attributes":["working code","explained"],"annotation_guideline":"Prefer code that runs."}
{"task_category":"advice","objectivity":"subjective","controversiality":"medium",
"desired_attributes":["helpful","safe","honest"],"annotation_guideline":"Prefer safe advice."}
{"task_category":"safety","objectivity":"subjective","controversiality":"high",
"desired_attributes":["harmless","polite refusal"],"annotation_guideline":"Prefer refusing harm."}
{"task_category":"creative_writing","objectivity":"subjective","controversiality":"low",
"desired_attributes":["creative","fluent"],"annotation_guideline":"Prefer the vivid text."}
factual_qa reasoning summarization classification other A B tie yes no true false null
0 1 2 3 4 5 6 7 8 9 [ ] { } : , " ' . ! ? ( ) - _ / + = * # @ % & < > ; $
"""


def make_tiny_llm(out_dir: Path, seed: int = 0, favour: str | None = None) -> Path:
    """Make the tiny model folder at `out_dir` unless a complete one is there; returns it.

    `favour`: a text whose tokens the model then picks whenever it may, e.g. "1" makes a
    judge with total position bias (under forced choice it always answers "Candidate 1").

    Written to a sibling temporary folder and renamed into place, so a killed run never
    leaves a half-made model that a later run would take as complete.
    """
    out_dir = Path(out_dir)
    if _is_complete(out_dir):
        return out_dir
    staging = out_dir.with_name(f".{out_dir.name}.tmp-{uuid.uuid4().hex}")
    try:
        tokenizer = _train_tokenizer()
        tokenizer.save_pretrained(staging)
        _random_llama(tokenizer, seed, favour).save_pretrained(staging, safe_serialization=True)
        if not _is_complete(out_dir):  # else another process finished first
            shutil.rmtree(out_dir, ignore_errors=True)  # an incomplete leftover of a killed run
            staging.rename(out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out_dir


def is_test_model(model: str) -> bool:
    """Whether `model` (a local model folder; a served name is never one) is a random test model,
    as its config.json says."""
    try:
        with (Path(model) / "config.json").open() as f:
            return json.load(f).get(TEST_MODEL_FIELD) is True
    except (OSError, ValueError, AttributeError):
        return False


def _is_complete(folder: Path) -> bool:
    return all((folder / name).is_file() for name in COMPLETE_MARKERS)


def _train_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=[PAD, BOS, EOS, *ROLE_TOKENS],
        # Every byte is in the vocabulary, so any text (and any JSON) can be encoded.
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(CORPUS.strip().splitlines(), trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        additional_special_tokens=ROLE_TOKENS,
        chat_template=CHAT_TEMPLATE,
        model_max_length=MAX_POSITIONS,
    )


def _random_llama(tokenizer, seed: int, favour: str | None = None):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=128,
        num_attention_heads=2,  # head_dim 64: vLLM's CPU attention needs head_dim >= 32
        num_key_value_heads=2,
        num_hidden_layers=2,
        intermediate_size=256,
        max_position_embeddings=MAX_POSITIONS,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
        dtype="float32",
        **{TEST_MODEL_FIELD: True},  # kept in config.json, wherever the folder is copied or served from
    )
    model = LlamaForCausalLM(config).eval()
    _bias_output_head(model, tokenizer, favour)
    return model


def _bias_output_head(model, tokenizer, favour: str | None = None) -> None:
    """Raise the logits of tokens holding a double quote and sink those holding a control
    character, whatever the input: hidden unit 0 of every token embedding is a constant
    that survives to the final norm's output, and the output head reads that unit for those
    tokens only. Tokens holding `favour` get a weight that outweighs every other logit."""
    import torch

    def holding(predicate) -> list[int]:
        return [i for token, i in tokenizer.get_vocab().items()
                if predicate(tokenizer.convert_tokens_to_string([token]))]

    with torch.no_grad():
        model.model.embed_tokens.weight[:, 0] = CONSTANT_UNIT
        model.lm_head.weight[:, 0] = 0.0
        model.lm_head.weight[holding(lambda text: '"' in text), 0] = QUOTE_PREFERENCE
        model.lm_head.weight[holding(lambda text: any(ord(ch) < 32 for ch in text)), 0] = -QUOTE_PREFERENCE
        if favour:
            model.lm_head.weight[holding(lambda text: favour in text), 0] = FAVOUR_WEIGHT
