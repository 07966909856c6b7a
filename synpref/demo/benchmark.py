"""The benchmark: first-turn prompts that training data must not contain."""

from __future__ import annotations

BENCHMARK_TEMPLATES = (
    "Compose an engaging travel blog post about a recent trip to {0}, highlighting cultural experiences, "
    "local food and must-see attractions, in fewer than three hundred words.",
    "Explain to a curious ten-year-old how {0} works, using one everyday analogy, avoiding technical jargon "
    "and keeping the whole explanation under five sentences.",
    "Draft a polite but firm message to a landlord requesting that they repair {0} within fourteen days, "
    "referring to the dates of your earlier requests.",
    "Imagine you are a historian in the year 2300; describe how people of that era would judge our use of {0}, "
    "and justify your view with three arguments.",
    "Write a persuasive paragraph arguing that every mid-sized town should invest in {0}, addressing the most "
    "common objection and closing with a memorable call to action.",
)
BENCHMARK_TOPICS = (
    ("Hawaii", "Marrakesh", "the Faroe Islands", "Patagonia", "Kerala", "Transylvania", "Zanzibar", "Iceland"),
    ("a rainbow", "a vaccine", "a refrigerator", "an airplane wing", "the tides", "compound interest",
     "a solar panel", "the internet"),
    ("a leaking roof", "a broken boiler", "a faulty front-door lock", "a mould problem", "a cracked window",
     "an unreliable heating system", "a flooded basement", "a noisy ventilation fan"),
    ("fossil fuels", "social media", "single-use plastics", "cars in cities", "antibiotics", "cheap flights",
     "fast fashion", "smartphones"),
    ("protected cycle lanes", "a public library", "free school meals", "urban tree planting",
     "twenty-four-hour public transport", "community solar farms", "public drinking fountains",
     "repair cafes"),
)


def benchmark_prompts() -> list[str]:
    """The fictional benchmark's 40 first-turn prompts (fixed; a benchmark does not change with the seed)."""
    return [t.format(topic) for t, topics in zip(BENCHMARK_TEMPLATES, BENCHMARK_TOPICS) for topic in topics]
