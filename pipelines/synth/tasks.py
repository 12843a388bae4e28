"""Procedural problems with worked solutions: arithmetic, counting, spelling, word problems, equations.

"Models need tokens to think": every solution does the work step by step and only then states
the result, as the final line ``Answer: X`` (``pipelines.verify.format_answer``), which is what the
RL verifier and the evaluation read. Each problem also carries the Python code that computes its
answer, for tool-use traces where the model should not do the arithmetic in its head.
Everything is drawn from a ``random.Random`` the caller seeds, so generation is reproducible.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from decimal import Decimal
from fractions import Fraction

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

ORDINALS = {
    1: "ones",
    2: "tens",
    3: "hundreds",
    4: "thousands",
    5: "ten-thousands",
    6: "hundred-thousands",
    7: "millions",
    8: "ten-millions",
    9: "hundred-millions",
}


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
        lines.append(
            f"{_place(i + 1).capitalize()}: {x} + {y}{extra} = {s}, write {s % 10}"
            + (f", carry {s // 10}." if s >= 10 else ".")
        )
        digits.append(s % 10)
        carry = s // 10
    if carry:
        lines.append(f"Final carry: write {carry}.")
        digits.append(carry)
    total = int("".join(map(str, digits[::-1])))
    assert total == a + b
    lines.append(f"Reading the digits from left to right: {a} + {b} = {total}.")
    return Problem(
        "arithmetic", f"What is {a} + {b}?", str(total), "\n".join(lines), f"print({a} + {b})"
    )


def multiplication(a: int, b: int) -> Problem:
    lines = [f"Multiply {a} by each digit of {b}, shifted by its place value, then add the parts."]
    partials = []
    for i, d in enumerate(str(b)[::-1]):
        part = a * int(d) * 10**i
        partials.append(part)
        lines.append(
            f"{a} x {d} ({_place(i + 1)}) = {a * int(d)}"
            + (f", shifted: {part}" if i else "")
            + "."
        )
    running = 0
    for i, part in enumerate(partials):
        if i == 0:
            running = part
            continue
        lines.append(f"{running} + {part} = {running + part}.")
        running += part
    assert running == a * b
    lines.append(f"So {a} x {b} = {running}.")
    return Problem(
        "arithmetic", f"What is {a} * {b}?", str(running), "\n".join(lines), f"print({a} * {b})"
    )


def subtraction(a: int, b: int) -> Problem:
    """``a - b`` (a >= b) column by column with borrows."""
    if a < b:
        a, b = b, a
    da, db = [int(c) for c in str(a)[::-1]], [int(c) for c in str(b)[::-1]]
    lines = [f"Subtract {b} from {a} column by column, starting from the ones."]
    borrow, digits = 0, []
    for i in range(len(da)):
        x, y = da[i] - borrow, db[i] if i < len(db) else 0
        if x < y:
            lines.append(
                f"{_place(i + 1).capitalize()}: {x} is less than {y}, borrow 1: {x + 10} - {y} = {x + 10 - y}."
            )
            digits.append(x + 10 - y)
            borrow = 1
        else:
            lines.append(f"{_place(i + 1).capitalize()}: {x} - {y} = {x - y}.")
            digits.append(x - y)
            borrow = 0
    result = int("".join(map(str, digits[::-1])))
    assert result == a - b
    lines.append(f"Reading the digits from left to right: {a} - {b} = {result}.")
    return Problem(
        "arithmetic", f"What is {a} - {b}?", str(result), "\n".join(lines), f"print({a} - {b})"
    )


def division(dividend: int, divisor: int) -> Problem:
    """Long division, digit by digit; the answer is the quotient, with the remainder if any."""
    lines = [f"Divide {dividend} by {divisor} with long division, one digit at a time."]
    rem, quotient = 0, ""
    for ch in str(dividend):
        cur = rem * 10 + int(ch)
        q = cur // divisor
        quotient += str(q)
        lines.append(
            f"Bring down {ch}: {cur} / {divisor} = {q}, {q} x {divisor} = {q * divisor}, "
            f"remainder {cur - q * divisor}."
        )
        rem = cur - q * divisor
    q = int(quotient)
    assert q * divisor + rem == dividend
    lines.append(f"Check: {q} x {divisor} + {rem} = {dividend}.")
    answer = str(q) if rem == 0 else f"{q} remainder {rem}"
    prompt = f"What is {dividend} / {divisor}?" + (
        "" if rem == 0 else " Give the quotient and the remainder."
    )
    code = (
        f"print({dividend} // {divisor})"
        if rem == 0
        else f"q, r = divmod({dividend}, {divisor}); print(f'{{q}} remainder {{r}}')"
    )
    return Problem("arithmetic", prompt, answer, "\n".join(lines), code)


def _frac(f: Fraction) -> str:
    return str(f.numerator) if f.denominator == 1 else f"{f.numerator}/{f.denominator}"


def fraction_problem(a: Fraction, b: Fraction, op: str) -> Problem:
    """``a op b`` for fractions, with common denominators / cross products and simplification."""
    lines = []
    if op in "+-":
        den = a.denominator * b.denominator // __import__("math").gcd(a.denominator, b.denominator)
        na, nb = a.numerator * (den // a.denominator), b.numerator * (den // b.denominator)
        raw_num = na + nb if op == "+" else na - nb
        lines.append(
            f"The least common denominator of {a.denominator} and {b.denominator} is {den}."
        )
        lines.append(f"{_frac(a)} = {na}/{den} and {_frac(b)} = {nb}/{den}.")
        lines.append(f"{na}/{den} {op} {nb}/{den} = {raw_num}/{den}.")
        result = Fraction(raw_num, den)
    elif op == "*":
        raw = (a.numerator * b.numerator, a.denominator * b.denominator)
        lines.append(
            f"Multiply the numerators and the denominators: ({a.numerator} x {b.numerator}) / "
            f"({a.denominator} x {b.denominator}) = {raw[0]}/{raw[1]}."
        )
        result = Fraction(*raw)
    else:
        lines.append(
            f"Dividing by {_frac(b)} is multiplying by its reciprocal {b.denominator}/{b.numerator}."
        )
        raw = (a.numerator * b.denominator, a.denominator * b.numerator)
        lines.append(
            f"({a.numerator} x {b.denominator}) / ({a.denominator} x {b.numerator}) = {raw[0]}/{raw[1]}."
        )
        result = Fraction(*raw)
    lines.append(f"In lowest terms that is {_frac(result)}.")
    sym = {"+": "+", "-": "-", "*": "x", "/": "÷"}[op]
    code = (
        "from fractions import Fraction as F; "
        f"print(F({a.numerator}, {a.denominator}) {op} F({b.numerator}, {b.denominator}))"
    )
    return Problem(
        "arithmetic",
        f"What is {_frac(a)} {sym} {_frac(b)}? Give the answer as a fraction in lowest terms.",
        _frac(result),
        "\n".join(lines),
        code,
    )


def decimal_problem(a: Decimal, b: Decimal, op: str) -> Problem:
    """``a op b`` for decimals: line up the decimal points (+, -) or count decimal places (x)."""
    lines = []
    if op in "+-":
        places = max(-a.as_tuple().exponent, -b.as_tuple().exponent)
        q = Decimal(1).scaleb(-places)
        lines.append(
            f"Line up the decimal points: write both with {places} decimal places, "
            f"{a.quantize(q)} and {b.quantize(q)}."
        )
        result = a + b if op == "+" else a - b
        ia, ib = int(a.scaleb(places)), int(b.scaleb(places))
        lines.append(
            f"Without the point: {ia} {op} {ib} = {ia + ib if op == '+' else ia - ib}; "
            f"put the point back {places} places from the right: {result.quantize(q)}."
        )
    else:
        pa_, pb = -a.as_tuple().exponent, -b.as_tuple().exponent
        ia, ib = int(a.scaleb(pa_)), int(b.scaleb(pb))
        result = a * b
        lines.append(f"Ignore the decimal points: {ia} x {ib} = {ia * ib}.")
        lines.append(
            f"{a} has {pa_} decimal places and {b} has {pb}, so the product has {pa_ + pb}: "
            f"{result}."
        )
    text = format(result.normalize(), "f")
    sym = {"+": "+", "-": "-", "*": "x"}[op]
    return Problem(
        "arithmetic",
        f"What is {a} {sym} {b}?",
        text,
        "\n".join(lines),
        f"from decimal import Decimal as D; print(format((D('{a}') {op} D('{b}')).normalize(), 'f'))",
    )


_SHOP_ITEMS = [
    ("notebook", "notebooks"),
    ("pen", "pens"),
    ("sandwich", "sandwiches"),
    ("ticket", "tickets"),
    ("bag of rice", "bags of rice"),
    ("plant", "plants"),
]


def multi_step_word_problem(rng: random.Random) -> Problem:
    """Three- or four-step stories over all four operations, decimals included (money)."""
    name = rng.choice(_NAMES)
    kind = rng.randrange(3)
    if kind == 0:  # shopping with change: x, x, +, -
        (one, many), (one2, many2) = rng.sample(_SHOP_ITEMS, 2)
        n1, n2 = rng.randint(2, 6), rng.randint(2, 5)
        p1, p2 = Decimal(rng.randint(50, 900)) / 100, Decimal(rng.randint(50, 1500)) / 100
        c1, c2 = n1 * p1, n2 * p2
        total = c1 + c2
        paid = Decimal(((int(total) // 10) + 1) * 10)
        change = paid - total
        prompt = (
            f"{name} buys {n1} {many} at ${p1:.2f} each and {n2} {many2} at ${p2:.2f} each, and pays with "
            f"${paid:.0f}. How much change does {name} get, in dollars?"
        )
        steps = [
            f"{many.capitalize()}: {n1} x ${p1:.2f} = ${c1:.2f}.",
            f"{many2.capitalize()}: {n2} x ${p2:.2f} = ${c2:.2f}.",
            f"Total: ${c1:.2f} + ${c2:.2f} = ${total:.2f}.",
            f"Change: ${paid:.2f} - ${total:.2f} = ${change:.2f}.",
        ]
        return Problem(
            "word_problem",
            prompt,
            f"{change:.2f}",
            "\n".join(steps),
            f"print(f'{{{paid} - ({n1} * {p1} + {n2} * {p2}):.2f}}')",
        )
    if kind == 1:  # sharing equally: x, -, /
        boxes, per, eaten = rng.randint(2, 8), rng.randint(6, 24), rng.randint(1, 10)
        friends = rng.choice([2, 3, 4, 5, 6])
        total = boxes * per - eaten
        total -= total % friends  # keep the share whole: adjust how many were eaten
        eaten = boxes * per - total
        share = total // friends
        prompt = (
            f"{name} has {boxes} boxes of {per} cookies. {eaten} cookies are eaten, and the rest are "
            f"shared equally among {friends} friends. How many cookies does each friend get?"
        )
        steps = [
            f"Cookies at first: {boxes} x {per} = {boxes * per}.",
            f"After {eaten} are eaten: {boxes * per} - {eaten} = {total}.",
            f"Each of {friends} friends gets {total} / {friends} = {share}.",
        ]
        return Problem(
            "word_problem",
            prompt,
            str(share),
            "\n".join(steps),
            f"print(({boxes} * {per} - {eaten}) // {friends})",
        )
    speed1, h1, speed2, h2 = (
        rng.randint(30, 90),
        rng.randint(1, 4),
        rng.randint(20, 70),
        rng.randint(1, 3),
    )
    d1, d2 = speed1 * h1, speed2 * h2
    avg = Fraction(d1 + d2, h1 + h2)
    prompt = (
        f"{name} drives {h1} hours at {speed1} km/h, then {h2} hours at {speed2} km/h. What is the average "
        f"speed for the whole trip, in km/h? Give the answer as a fraction in lowest terms if it is not whole."
    )
    steps = [
        f"First part: {speed1} x {h1} = {d1} km.",
        f"Second part: {speed2} x {h2} = {d2} km.",
        f"Total distance: {d1} + {d2} = {d1 + d2} km; total time: {h1} + {h2} = {h1 + h2} hours.",
        f"Average speed: {d1 + d2} / {h1 + h2} = {_frac(avg)} km/h.",
    ]
    return Problem(
        "word_problem",
        prompt,
        _frac(avg),
        "\n".join(steps),
        f"from fractions import Fraction as F; print(F({d1 + d2}, {h1 + h2}))",
    )


def count_letter(word: str, letter: str) -> Problem:
    lines = [f'Go through "{word}" letter by letter and count the letter "{letter}".']
    n = 0
    for i, ch in enumerate(word, 1):
        hit = ch.lower() == letter
        n += hit
        lines.append(f"{i}. {ch}" + (f" -> match, count = {n}" if hit else ""))
    lines.append(f'The letter "{letter}" appears {n} time{"s" if n != 1 else ""} in "{word}".')
    noun = "phrase" if " " in word.strip() else "word"
    prompt = f'How many times does the letter "{letter}" appear in the {noun} "{word}"?'
    return Problem(
        "counting", prompt, str(n), "\n".join(lines), f"print({word.lower()!r}.count({letter!r}))"
    )


def spell(word: str, backwards: bool = False) -> Problem:
    letters = list(word[::-1] if backwards else word)
    what = "backwards" if backwards else "letter by letter"
    lines = [
        f'Take the letters of "{word}"'
        + (" from the last to the first." if backwards else " in order.")
    ]
    lines += [f"{i}. {ch}" for i, ch in enumerate(letters, 1)]
    answer = "-".join(letters)
    lines.append(f"That is {len(letters)} letters.")
    code = f"print('-'.join({word!r}[::-1]))" if backwards else f"print('-'.join({word!r}))"
    return Problem(
        "spelling",
        f'Spell the word "{word}" {what}, separating the letters with hyphens.',
        answer,
        "\n".join(lines),
        code,
    )


def count_words_letters(word: str) -> Problem:
    lines = [f'Count the letters of "{word}" one at a time.']
    lines += [f"{i}. {ch}" for i, ch in enumerate(word, 1)]
    lines.append(f"The last number is {len(word)}.")
    return Problem(
        "counting",
        f'How many letters are in the word "{word}"?',
        str(len(word)),
        "\n".join(lines),
        f"print(len({word!r}))",
    )


_NAMES = ["Alice", "Bob", "Carmen", "Deepak", "Elena", "Farid", "Grace", "Hiro", "Ines", "Jonas"]
_ITEMS = ["apples", "pencils", "stickers", "marbles", "books", "cookies", "stamps", "coins"]


def word_problem(rng: random.Random) -> Problem:
    """A three-step story: start, buy groups, give some away (all integers, non-negative)."""
    name, item = rng.choice(_NAMES), rng.choice(_ITEMS)
    start, groups, per, away = rng.randint(5, 60), rng.randint(2, 9), rng.randint(3, 15), 0
    after_buy = start + groups * per
    away = rng.randint(1, after_buy - 1)
    final = after_buy - away
    prompt = (
        f"{name} has {start} {item}. {name} buys {groups} packs with {per} {item} in each pack, "
        f"then gives {away} {item} to a friend. How many {item} does {name} have now?"
    )
    steps = "\n".join(
        [
            f"The packs hold {groups} x {per} = {groups * per} {item}.",
            f"After buying: {start} + {groups * per} = {after_buy} {item}.",
            f"After giving {away} away: {after_buy} - {away} = {final} {item}.",
        ]
    )
    return Problem(
        "word_problem", prompt, str(final), steps, f"print({start} + {groups} * {per} - {away})"
    )


def linear_equation(rng: random.Random) -> Problem:
    """``a*x + b = c`` with an integer solution."""
    x, a, b = (
        rng.randint(-20, 20),
        rng.choice([i for i in range(-9, 10) if i not in (0, 1)]),
        rng.randint(-50, 50),
    )
    c = a * x + b
    bs = f"+ {b}" if b >= 0 else f"- {-b}"
    prompt = f"Solve for x: {a}x {bs} = {c}."
    steps = "\n".join(
        [
            f"Subtract {b} from both sides: {a}x = {c} - ({b}) = {c - b}.",
            f"Divide both sides by {a}: x = {c - b} / {a} = {x}.",
            f"Check: {a} * {x} {bs} = {a * x + b}, which equals {c}.",
        ]
    )
    return Problem("equation", prompt, str(x), steps, f"print(({c} - ({b})) // {a})")


def linear_system(rng: random.Random) -> Problem:
    """Two equations ``x + y = s`` and ``x - y = d``; asks for x."""
    x, y = rng.randint(-15, 30), rng.randint(-15, 30)
    s, d = x + y, x - y
    prompt = f"If x + y = {s} and x - y = {d}, what is x?"
    steps = "\n".join(
        [
            f"Add the two equations: (x + y) + (x - y) = {s} + ({d}), so 2x = {s + d}.",
            f"Divide by 2: x = {s + d} / 2 = {x}.",
            f"Then y = {s} - {x} = {y}; check: {x} - ({y}) = {d}.",
        ]
    )
    return Problem("equation", prompt, str(x), steps, f"print(({s} + {d}) // 2)")


def _fraction(rng: random.Random) -> Fraction:
    den = rng.randint(2, 12)
    return Fraction(rng.randint(1, 2 * den), den)


def _decimal(rng: random.Random) -> Decimal:
    return Decimal(rng.randint(1, 99_999)).scaleb(-rng.randint(1, 3))


def random_arithmetic(rng: random.Random, max_digits: int = 4) -> Problem:
    """The four operations on integers, fractions and decimals, and multi-step word problems
    (all of kind ``arithmetic`` in the SFT mix)."""
    roll = rng.random()
    big = 10**max_digits - 1
    if roll < 0.15:
        p = addition(rng.randint(10, big), rng.randint(10, big))
    elif roll < 0.3:
        p = subtraction(rng.randint(10, big), rng.randint(10, big))
    elif roll < 0.45:
        p = multiplication(rng.randint(10, big), rng.randint(2, 10 ** max(1, max_digits - 1) - 1))
    elif roll < 0.58:
        divisor = rng.randint(2, 99)
        q = rng.randint(2, max(3, big // divisor))
        p = division(
            divisor * q + (rng.randint(1, divisor - 1) if rng.random() < 0.3 else 0), divisor
        )
    elif roll < 0.72:
        a, b = _fraction(rng), _fraction(rng)
        p = fraction_problem(a, b, rng.choice("+-*/"))
    elif roll < 0.85:
        p = decimal_problem(_decimal(rng), _decimal(rng), rng.choice("+-*"))
    else:
        p = multi_step_word_problem(rng)
    return replace(p, kind="arithmetic")


def random_counting(rng: random.Random) -> Problem:
    word = rng.choice(WORDS)
    if rng.random() < 0.25:
        return count_words_letters(word)
    letter = rng.choice(sorted(set(word.lower())) + ["e", "a", "r", "s", "z"])
    return count_letter(word, letter)


def random_spelling(rng: random.Random) -> Problem:
    return spell(rng.choice(WORDS), backwards=rng.random() < 0.5)


GENERATORS = {
    "arithmetic": random_arithmetic,
    "counting": random_counting,
    "spelling": random_spelling,
    "word_problem": word_problem,
    "equation": lambda rng: rng.choice([linear_equation, linear_system])(rng),
}


def problems(
    kind: str, n: int, seed: int, namespace: str = "", max_tries_factor: int = 20
) -> list[Problem]:
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
