"""Worked problems, math and coding: (prompt, better, worse), the worse answer making a typical slip."""

from __future__ import annotations

from synpref.demo.people import CITIES, FIRST_NAMES


def _money(cents: int) -> str:
    return f"${cents // 100}.{cents % 100:02d}"


def _change_problem(rng):
    buyer, item = rng.choice(FIRST_NAMES), rng.choice(("notebooks", "coffees", "bus tickets", "loaves of bread",
                                                       "packs of seeds", "pens", "bottles of juice"))
    n, price = rng.randint(2, 9), rng.randrange(125, 1000, 25)
    total = n * price
    note = next(v for v in (1000, 2000, 5000, 10000) if v >= total)
    short = total - price  # the slip: one item left out
    body = (f"{buyer} buys {n} {item} at {_money(price)} each and pays with a {_money(note)} note. "
            f"How much change should {buyer} get?")
    better = (f"First the total: {n} × {_money(price)} = {_money(total)}. The change is {_money(note)} − "
              f"{_money(total)} = {_money(note - total)}. So {buyer} should get {_money(note - total)} back.")
    worse = f"{n} × {_money(price)} is {_money(short)}, so the change is {_money(note - short)}."
    return body, better, worse


def _travel_problem(rng):
    vehicle, low, high = rng.choice((("train", 60, 160), ("bus", 40, 90), ("car", 50, 120), ("ferry", 20, 45)))
    speed, minutes = rng.randrange(low, high + 1, 5), rng.randrange(36, 361, 12)
    distance = speed * minutes // 60  # exact: speed is a multiple of 5, minutes of 12
    hours = minutes / 60
    h, m = divmod(minutes, 60)
    # The classic slip: reading the decimal part of the hours as minutes.
    wrong_m = round((hours - h) * 100) if m else 30
    body = (f"A {vehicle} travels {distance} km at a steady {speed} km/h. "
            f"How long does the trip take, in hours and minutes?")
    better = (f"Time = distance ÷ speed = {distance} ÷ {speed} = {hours:g} hours. "
              f"That is {h} h plus {hours - h:.1f} × 60 = {m} minutes, so the trip takes {h} h {m} min.")
    worse = f"{distance} ÷ {speed} = {hours:g}, so the trip takes {h} h {wrong_m} min."
    return body, better, worse


def _discount_problem(rng):
    item = rng.choice(("jacket", "pair of boots", "desk lamp", "backpack", "blender", "rug", "bike helmet"))
    price = rng.randrange(20, 401, 5)
    price += 5 if price == 100 else 0  # at $100 the slip below happens to give the right answer
    pct = rng.choice((10, 15, 20, 25, 30, 40))
    body = f"A {item} normally costs ${price}. It's on sale at {pct}% off. What is the sale price?"
    better = (f"{pct}% of {_money(price * 100)} is {_money(price * pct)}, so the sale price is "
              f"{_money(price * 100)} − {_money(price * pct)} = {_money(price * (100 - pct))}.")
    worse = f"Take {pct} off {price}: the sale price is {_money((price - pct) * 100)}."
    return body, better, worse


def _sharing_problem(rng):
    name, things = rng.choice(FIRST_NAMES), rng.choice(("stickers", "marbles", "cookies", "seedlings", "cards"))
    friends, each = rng.randint(2, 9), rng.randint(2, 12)
    total = friends * each + rng.randint(5, 300)
    given, left = friends * each, total - friends * each
    body = (f"{name} has {total} {things} and gives {each} to each of {friends} friends. "
            f"How many {things} are left?")
    better = (f"{name} gives away {friends} × {each} = {given} {things}. "
              f"{total} − {given} = {left}, so {left} {things} are left.")
    worse = f"{total} − {(friends - 1) * each} = {total - (friends - 1) * each} {things} are left."
    return body, better, worse


def _fencing_problem(rng):
    width, length, cost = rng.randint(3, 40), rng.randint(3, 40), rng.randint(4, 30)
    perimeter = 2 * (width + length)
    wrong = width * length * cost  # the slip: area instead of perimeter
    if wrong == perimeter * cost:
        wrong = (width + length) * cost
    body = (f"A rectangular garden is {width} m wide and {length} m long. Fencing costs ${cost} per metre. "
            f"How much does it cost to fence the whole garden?")
    better = (f"The fence runs along the perimeter: 2 × ({width} + {length}) = {perimeter} m. "
              f"At ${cost} per metre that is {perimeter} × {cost} = ${perimeter * cost}.")
    worse = f"{width} × {length} × {cost} = ${wrong}. That's the cost of the fence."
    return body, better, worse


MATH_PROBLEMS = (_change_problem, _travel_problem, _discount_problem, _sharing_problem, _fencing_problem)


def _fence(code: str) -> str:
    return f"```python\n{code}\n```"


def _sum_above(rng):
    fname = rng.choice(("sum_above", "total_over", "sum_greater_than"))
    xs, limit = [rng.randint(1, 99) for _ in range(rng.randint(4, 7))], rng.randint(10, 60)
    result = sum(x for x in xs if x > limit)
    body = (f"Can you write a Python function `{fname}(numbers, limit)` that returns the sum of all numbers "
            f"in the list greater than `limit`? For example `{fname}({xs}, {limit})` should give {result}.")
    better = (_fence(f"def {fname}(numbers, limit):\n    return sum(n for n in numbers if n > limit)")
              + f"\n\nIt keeps only the values above `limit` and adds them up, so `{fname}({xs}, {limit})` "
                f"returns {result}. An empty list gives 0.")
    worse = (_fence(f"def {fname}(numbers, limit):\n    total = 0\n    for i in range(1, len(numbers)):\n"
                    f"        if numbers[i] > limit:\n            total += numbers[i]\n    return total")
             + "\n\nThis should do it.")
    return body, better, worse


def _count_vowels(rng):
    fname = rng.choice(("count_vowels", "vowel_count", "num_vowels"))
    phrase = f"{rng.choice(FIRST_NAMES)} and {rng.choice(FIRST_NAMES)} visit {rng.choice(CITIES)}"
    right = sum(c in "aeiou" for c in phrase.lower())
    wrong = sum(c in "aeiou" for c in phrase)
    body = (f"I need a Python function `{fname}(text)` that counts the vowels (a, e, i, o, u) in a string, "
            f"ignoring case. What should `{fname}(\"{phrase}\")` return?")
    better = (_fence(f"def {fname}(text):\n    return sum(ch in \"aeiou\" for ch in text.lower())")
              + f"\n\nLower-casing first means capital vowels count too, "
                f"so `{fname}(\"{phrase}\")` returns {right}.")
    worse = (_fence(f"def {fname}(text):\n    return sum(ch in \"aeiou\" for ch in text)")
             + f"\n\nIt returns {wrong}.")
    return body, better, worse


def _average(rng):
    fname = rng.choice(("average", "mean_of", "avg"))
    xs = [rng.randint(1, 50) for _ in range(rng.randint(3, 6))]
    body = (f"Write a Python function `{fname}(values)` that returns the average of a list of numbers. "
            f"Test it on {xs}.")
    better = (_fence(f"def {fname}(values):\n    if not values:\n        raise ValueError(\"no values\")\n"
                     f"    return sum(values) / len(values)")
              + f"\n\nTrue division keeps the fraction: `{fname}({xs})` returns {sum(xs) / len(xs):.4g}. "
                f"An empty list raises an error instead of dividing by zero.")
    worse = (_fence(f"def {fname}(values):\n    return sum(values) // len(values)")
             + f"\n\n`{fname}({xs})` returns {sum(xs) // len(xs)}.")
    return body, better, worse


def _largest(rng):
    fname = rng.choice(("largest", "find_max", "max_value"))
    xs = [rng.randint(-30, -1) for _ in range(rng.randint(4, 7))]
    body = (f"Write `{fname}(values)` in Python that returns the largest value in a non-empty list "
            f"without using the built-in max. I'll use it on overnight temperatures like {xs}.")
    better = (_fence(f"def {fname}(values):\n    best = values[0]\n    for v in values[1:]:\n"
                     f"        if v > best:\n            best = v\n    return best")
              + f"\n\nStarting from the first element (not 0) makes it work for all-negative lists: "
                f"`{fname}({xs})` returns {max(xs)}.")
    worse = (_fence(f"def {fname}(values):\n    best = 0\n    for v in values:\n        if v > best:\n"
                    f"            best = v\n    return best")
             + "\n\nSimple and fast.")
    return body, better, worse


PALINDROMES = ("Never odd or even", "Step on no pets", "Was it a car or a cat I saw", "No lemon, no melon",
               "Madam, in Eden, I'm Adam", "A Santa at NASA", "Top spot", "Eva, can I see bees in a cave")


def _palindrome(rng):
    fname = rng.choice(("is_palindrome", "palindrome", "reads_same_backwards"))
    phrase = rng.choice(PALINDROMES)
    body = (f"How do I write `{fname}(text)` in Python so that it ignores case, spaces and punctuation? "
            f"`{fname}(\"{phrase}\")` should be True.")
    better = (_fence(f"def {fname}(text):\n    letters = [ch.lower() for ch in text if ch.isalnum()]\n"
                     f"    return letters == letters[::-1]")
              + f"\n\nIt keeps only letters and digits, lower-cased, then compares with the reverse, "
                f"so `{fname}(\"{phrase}\")` is True.")
    worse = (_fence(f"def {fname}(text):\n    return text == text[::-1]")
             + f"\n\nThat returns True for \"{phrase}\".")
    return body, better, worse


def _reverse_words(rng):
    fname = rng.choice(("reverse_words", "flip_word_order", "words_backwards"))
    train = rng.choice(("early", "late", "slow", "night"))
    sentence = f"{rng.choice(FIRST_NAMES)} took the {train} train to {rng.choice(CITIES)}"
    body = (f"Write a Python function `{fname}(sentence)` that reverses the order of the words, "
            f"e.g. for \"{sentence}\".")
    better = (_fence(f"def {fname}(sentence):\n    return \" \".join(reversed(sentence.split()))")
              + f"\n\nFor \"{sentence}\" it returns \"{' '.join(reversed(sentence.split()))}\".")
    worse = (_fence(f"def {fname}(sentence):\n    return sentence[::-1]")
             + f"\n\nFor \"{sentence}\" it returns \"{sentence[::-1]}\".")
    return body, better, worse


def _fizz(rng):
    fname = rng.choice(("fizz_buzz", "label_numbers", "game_words"))
    w1, w2 = rng.choice((("Fizz", "Buzz"), ("Ping", "Pong"), ("Tick", "Tock")))
    a, b = rng.sample((2, 3, 5, 7), 2)
    n = rng.randint(15, 100)
    body = (f"Write `{fname}(n)` returning a list for 1..{n}: \"{w1}\" for multiples of {a}, \"{w2}\" for "
            f"multiples of {b}, \"{w1}{w2}\" for multiples of both, otherwise the number as a string.")
    better = (_fence(f"def {fname}(n):\n    out = []\n    for i in range(1, n + 1):\n"
                     f"        if i % {a * b} == 0:\n            out.append(\"{w1}{w2}\")\n"
                     f"        elif i % {a} == 0:\n            out.append(\"{w1}\")\n"
                     f"        elif i % {b} == 0:\n            out.append(\"{w2}\")\n"
                     f"        else:\n            out.append(str(i))\n    return out")
              + f"\n\nThe combined case ({a * b}) is checked first; otherwise multiples of both "
                f"would stop at \"{w1}\".")
    worse = (_fence(f"def {fname}(n):\n    out = []\n    for i in range(1, n + 1):\n"
                    f"        if i % {a} == 0:\n            out.append(\"{w1}\")\n"
                    f"        elif i % {b} == 0:\n            out.append(\"{w2}\")\n"
                    f"        elif i % {a * b} == 0:\n            out.append(\"{w1}{w2}\")\n"
                    f"        else:\n            out.append(i)\n    return out")
             + "\n\nDone.")
    return body, better, worse


CODE_PROBLEMS = (_sum_above, _count_vowels, _average, _largest, _palindrome, _reverse_words, _fizz)
