"""Procedural problems with worked solutions: arithmetic, counting, spelling, word problems, equations.

"Models need tokens to think": every solution does the work step by step and only then states
the result, as the final line ``Answer: X`` (``pipelines.verify.format_answer``), which is what the
RL verifier and the evaluation read. Each problem also carries the Python code that computes its
answer, for tool-use traces where the model should not do the arithmetic in its head.
Everything is drawn from a ``random.Random`` the caller seeds, so generation is reproducible.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from pipelines.verify import format_answer

#: Common English words for counting/spelling tasks (shipped here: no download at run time).
WORDS = (
    "strawberry banana apple orange grape cherry lemon mango peach pineapple raspberry blueberry "
    "necessary accommodate embarrass occurrence separate definitely millennium questionnaire "
    "committee mississippi tennessee bookkeeper balloon coffee letter little bottle happiness "
    "assessment possession address success programming language computer keyboard elephant "
    "giraffe kangaroo hippopotamus crocodile butterfly dragonfly caterpillar mosquito penguin "
    "umbrella calendar library February Wednesday rhythm symmetry parallel tomorrow yesterday "
    "beautiful wonderful government environment restaurant chocolate vegetable temperature "
    "entrepreneur conscience conscious pronunciation recommendation independence Mediterranean "
    "Massachusetts Philadelphia Connecticut Cincinnati Albuquerque photosynthesis mitochondria "
    "encyclopedia onomatopoeia abbreviation alphabet triangle rectangle hexagon octopus "
    "squirrel mirror tattoo puzzle pepper scissors cinnamon broccoli spaghetti zucchini "
    "parliament lieutenant colonel bureaucracy Renaissance silhouette tomato potato carrot "
    "adventure knowledge mountain river ocean desert forest island volcano thunder lightning"
).split()

ORDINALS = {1: "ones", 2: "tens", 3: "hundreds", 4: "thousands", 5: "ten-thousands",
            6: "hundred-thousands", 7: "millions", 8: "ten-millions", 9: "hundred-millions"}


@dataclass
class Problem:
    kind: str  # arithmetic | counting | spelling | word_problem | equation
    prompt: str
    answer: str
    steps: str  # the worked solution, without the final answer line
    code: str  # Python that prints the answer (tool-use traces)

    @property
    def solution(self) -> str:
        """Work first, then the final ``Answer:`` line."""
        return f"{self.steps}\n{format_answer(self.answer)}"


def _place(i: int) -> str:
    return ORDINALS.get(i, f"10^{i - 1}")


def addition(a: int, b: int) -> Problem:
    da, db = str(a)[::-1], str(b)[::-1]
    carry, digits, lines = 0, [], [f"Add {a} and {b} column by column, starting from the ones."]
    for i in range(max(len(da), len(db))):
        x = int(da[i]) if i < len(da) else 0
        y = int(db[i]) if i < len(db) else 0
        s = x + y + carry
        extra = f" + {carry} (carry)" if carry else ""
        lines.append(f"{_place(i + 1).capitalize()}: {x} + {y}{extra} = {s}, write {s % 10}"
                     + (f", carry {s // 10}." if s >= 10 else "."))
        digits.append(s % 10)
        carry = s // 10
    if carry:
        lines.append(f"Final carry: write {carry}.")
        digits.append(carry)
    total = int("".join(map(str, digits[::-1])))
    assert total == a + b
    lines.append(f"Reading the digits from left to right: {a} + {b} = {total}.")
    return Problem("arithmetic", f"What is {a} + {b}?", str(total), "\n".join(lines), f"print({a} + {b})")


def multiplication(a: int, b: int) -> Problem:
    lines = [f"Multiply {a} by each digit of {b}, shifted by its place value, then add the parts."]
    partials = []
    for i, d in enumerate(str(b)[::-1]):
        part = a * int(d) * 10 ** i
        partials.append(part)
        lines.append(f"{a} x {d} ({_place(i + 1)}) = {a * int(d)}" + (f", shifted: {part}" if i else "") + ".")
    running = 0
    for i, part in enumerate(partials):
        if i == 0:
            running = part
            continue
        lines.append(f"{running} + {part} = {running + part}.")
        running += part
    assert running == a * b
    lines.append(f"So {a} x {b} = {running}.")
    return Problem("arithmetic", f"What is {a} * {b}?", str(running), "\n".join(lines), f"print({a} * {b})")


def count_letter(word: str, letter: str) -> Problem:
    lines = [f"Go through \"{word}\" letter by letter and count the letter \"{letter}\"."]
    n = 0
    for i, ch in enumerate(word, 1):
        hit = ch.lower() == letter
        n += hit
        lines.append(f"{i}. {ch}" + (f" -> match, count = {n}" if hit else ""))
    lines.append(f"The letter \"{letter}\" appears {n} time{'s' if n != 1 else ''} in \"{word}\".")
    noun = "phrase" if " " in word.strip() else "word"
    prompt = f"How many times does the letter \"{letter}\" appear in the {noun} \"{word}\"?"
    return Problem("counting", prompt, str(n), "\n".join(lines), f"print({word.lower()!r}.count({letter!r}))")


def spell(word: str, backwards: bool = False) -> Problem:
    letters = list(word[::-1] if backwards else word)
    what = "backwards" if backwards else "letter by letter"
    lines = [f"Take the letters of \"{word}\"" + (" from the last to the first." if backwards else " in order.")]
    lines += [f"{i}. {ch}" for i, ch in enumerate(letters, 1)]
    answer = "-".join(letters)
    lines.append(f"That is {len(letters)} letters.")
    code = f"print('-'.join({word!r}[::-1]))" if backwards else f"print('-'.join({word!r}))"
    return Problem("spelling", f"Spell the word \"{word}\" {what}, separating the letters with hyphens.",
                   answer, "\n".join(lines), code)


def count_words_letters(word: str) -> Problem:
    lines = [f"Count the letters of \"{word}\" one at a time."]
    lines += [f"{i}. {ch}" for i, ch in enumerate(word, 1)]
    lines.append(f"The last number is {len(word)}.")
    return Problem("counting", f"How many letters are in the word \"{word}\"?", str(len(word)),
                   "\n".join(lines), f"print(len({word!r}))")


_NAMES = ["Alice", "Bob", "Carmen", "Deepak", "Elena", "Farid", "Grace", "Hiro", "Ines", "Jonas"]
_ITEMS = ["apples", "pencils", "stickers", "marbles", "books", "cookies", "stamps", "coins"]


def word_problem(rng: random.Random) -> Problem:
    """A three-step story: start, buy groups, give some away (all integers, non-negative)."""
    name, item = rng.choice(_NAMES), rng.choice(_ITEMS)
    start, groups, per, away = rng.randint(5, 60), rng.randint(2, 9), rng.randint(3, 15), 0
    after_buy = start + groups * per
    away = rng.randint(1, after_buy - 1)
    final = after_buy - away
    prompt = (f"{name} has {start} {item}. {name} buys {groups} packs with {per} {item} in each pack, "
              f"then gives {away} {item} to a friend. How many {item} does {name} have now?")
    steps = "\n".join([
        f"The packs hold {groups} x {per} = {groups * per} {item}.",
        f"After buying: {start} + {groups * per} = {after_buy} {item}.",
        f"After giving {away} away: {after_buy} - {away} = {final} {item}.",
    ])
    return Problem("word_problem", prompt, str(final), steps, f"print({start} + {groups} * {per} - {away})")


def linear_equation(rng: random.Random) -> Problem:
    """``a*x + b = c`` with an integer solution."""
    x, a, b = rng.randint(-20, 20), rng.choice([i for i in range(-9, 10) if i not in (0, 1)]), rng.randint(-50, 50)
    c = a * x + b
    bs = f"+ {b}" if b >= 0 else f"- {-b}"
    prompt = f"Solve for x: {a}x {bs} = {c}."
    steps = "\n".join([
        f"Subtract {b} from both sides: {a}x = {c} - ({b}) = {c - b}.",
        f"Divide both sides by {a}: x = {c - b} / {a} = {x}.",
        f"Check: {a} * {x} {bs} = {a * x + b}, which equals {c}.",
    ])
    return Problem("equation", prompt, str(x), steps, f"print(({c} - ({b})) // {a})")


def linear_system(rng: random.Random) -> Problem:
    """Two equations ``x + y = s`` and ``x - y = d``; asks for x."""
    x, y = rng.randint(-15, 30), rng.randint(-15, 30)
    s, d = x + y, x - y
    prompt = f"If x + y = {s} and x - y = {d}, what is x?"
    steps = "\n".join([
        f"Add the two equations: (x + y) + (x - y) = {s} + ({d}), so 2x = {s + d}.",
        f"Divide by 2: x = {s + d} / 2 = {x}.",
        f"Then y = {s} - {x} = {y}; check: {x} - ({y}) = {d}.",
    ])
    return Problem("equation", prompt, str(x), steps, f"print(({s} + {d}) // 2)")


def random_arithmetic(rng: random.Random, max_digits: int = 4) -> Problem:
    if rng.random() < 0.5:
        return addition(rng.randint(10, 10 ** max_digits - 1), rng.randint(10, 10 ** max_digits - 1))
    return multiplication(rng.randint(10, 10 ** max_digits - 1), rng.randint(2, 10 ** max(1, max_digits - 1) - 1))


def random_counting(rng: random.Random) -> Problem:
    word = rng.choice(WORDS)
    if rng.random() < 0.25:
        return count_words_letters(word)
    letter = rng.choice(sorted(set(word.lower())) + ["e", "a", "r", "s", "z"])
    return count_letter(word, letter)


def random_spelling(rng: random.Random) -> Problem:
    return spell(rng.choice(WORDS), backwards=rng.random() < 0.5)


GENERATORS = {"arithmetic": random_arithmetic, "counting": random_counting, "spelling": random_spelling,
              "word_problem": word_problem, "equation": lambda rng: rng.choice([linear_equation, linear_system])(rng)}


def problems(kind: str, n: int, seed: int, namespace: str = "", max_tries_factor: int = 20) -> list[Problem]:
    """``n`` distinct problems of ``kind`` (fewer when the space is exhausted). ``namespace``
    separates the streams of different datasets (SFT vs RL) drawn with the same seed."""
    rng = random.Random(f"{namespace}{kind}:{seed}")
    out, seen = [], set()
    for _ in range(n * max_tries_factor):
        if len(out) >= n:
            break
        p = GENERATORS[kind](rng)
        if p.prompt not in seen:
            seen.add(p.prompt)
            out.append(p)
    return out
