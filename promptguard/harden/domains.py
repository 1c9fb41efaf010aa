"""Clean worked examples (question, reasoning steps, answer) in several domains.

The attack space poisons these; the detector agent also trains on them as clean
data. Arithmetic-like domains are generated from templates with random numbers,
so there is no fixed list to memorise; sentiment and multiple-choice items are
written by hand. A user's own prompt library contributes a `user` domain: its
demonstrations are parsed with the project's parsers and their answers typed.

Everything here is promptguard's own material, not taken from ../shared.
"""

from __future__ import annotations

import datetime as _dt
import math
import random
import re
from dataclasses import dataclass
from typing import Any, Callable, Sequence

__all__ = [
    "Answer",
    "DemoItem",
    "DOMAINS",
    "ANSWER_TYPES",
    "fmt_num",
    "sample_items",
    "items_from_segments",
    "parse_answer_text",
    "domain_for_type",
]

ANSWER_TYPES = ("number", "date", "weekday", "label", "choice", "text", "sql", "yesno")
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
          "September", "October", "November", "December")


def fmt_num(x: float) -> str:
    """12.0 -> '12', 12.6000001 -> '12.6', 0.125 -> '0.13' (two decimals at most)."""
    if not math.isfinite(x):
        return str(x)
    r = round(x, 2)
    if abs(r - round(r)) < 1e-9:
        return str(int(round(r)))
    return f"{r:.2f}".rstrip("0").rstrip(".")


def fmt_date(d: _dt.date) -> str:
    return f"{MONTHS[d.month - 1]} {d.day}, {d.year}"


@dataclass(frozen=True)
class Answer:
    """A typed final answer, so that "did the backdoor step change it?" is a
    semantic question (12 == 12.0, 'March 5, 2021' == 2021-03-05)."""

    type: str
    value: Any
    unit: str | None = None
    # how a date is written ("long" March 5, 2021 | "iso" 2021-03-05)
    style: str = "long"

    def render(self) -> str:
        if self.type == "number":
            return fmt_num(float(self.value))
        if self.type == "date":
            return self.value.isoformat() if self.style == "iso" else fmt_date(self.value)
        if self.type == "weekday":
            return WEEKDAYS[int(self.value) % 7]
        return str(self.value)

    def same(self, other: "Answer") -> bool:
        if self.type != other.type:
            return False
        if self.type == "number":
            return abs(float(self.value) - float(other.value)) < 1e-6
        if self.type in ("date", "weekday"):
            return self.value == other.value
        if self.type in ("label", "yesno", "choice"):
            return str(self.value).strip().lower() == str(other.value).strip().lower()
        if self.type == "sql":
            return " ".join(str(self.value).split()) == " ".join(str(other.value).split())
        return str(self.value) == str(other.value)


@dataclass(frozen=True)
class DemoItem:
    domain: str
    question: str
    steps: tuple[str, ...]
    answer: Answer
    choices: tuple[tuple[str, str], ...] = ()
    # structured facts the backdoor steps may use (unit, the expression that made the answer)
    meta: tuple[tuple[str, Any], ...] = ()
    # how the answer line is written; `{}` is the answer ("So the answer is {}." for a user's prompt)
    answer_format: str = "The answer is {}."

    @property
    def info(self) -> dict[str, Any]:
        return dict(self.meta)

    def choices_line(self) -> str:
        if not self.choices:
            return ""
        return "Answer Choices: " + " ".join(f"({k}) {v}" for k, v in self.choices)

    def answer_line(self, answer: Answer | None = None) -> str:
        text = (answer or self.answer).render()
        line = self.answer_format.replace("{}", text, 1)
        return line.replace(";.", ";")


# -- math (grade-school word problems) ---------------------------------------------

_NAMES = ("Maya", "Tom", "Aisha", "Lukas", "Priya", "Omar", "Elena", "Kenji", "Sofia", "Noah",
          "Zara", "Ivan", "Lena", "Mateo", "Grace", "Ravi", "Chloe", "Felix", "Amara", "Jonas")
_THINGS = ("apples", "stickers", "marbles", "pencils", "cookies", "stamps", "books", "shells",
           "cards", "tulips", "eggs", "candles")


def _pron(name: str) -> str:
    return "She" if name in ("Maya", "Aisha", "Priya", "Elena", "Sofia", "Zara", "Lena",
                            "Grace", "Chloe", "Amara") else "He"


def _math(rng: random.Random) -> DemoItem:
    t = rng.randrange(6)
    n = rng.choice(_NAMES)
    p = _pron(n)
    th = rng.choice(_THINGS)
    if t == 0:
        a, b = rng.randint(8, 60), rng.randint(2, 30)
        c = rng.randint(1, a + b)
        r = a + b - c
        q = f"{n} has {a} {th}. {p} buys {b} more and then gives {c} to a friend. How many {th} does {n} have now?"
        steps = (f"{n} starts with {a} {th}.", f"After buying {b} more, {n} has {a} + {b} = {a + b}.",
                 f"After giving away {c}, {n} has {a + b} - {c} = {r}.")
        return DemoItem("math", q, steps, Answer("number", r, th), meta=(("unit", th),))
    if t == 1:
        a, b, c = rng.randint(2, 9), rng.randint(3, 12), rng.randint(2, 8)
        q = f"A box holds {a} rows of {b} {th}. How many {th} are there in {c} boxes?"
        steps = (f"One box holds {a} * {b} = {a * b} {th}.", f"So {c} boxes hold {a * b} * {c} = {a * b * c}.")
        return DemoItem("math", q, steps, Answer("number", a * b * c, th), meta=(("unit", th),))
    if t == 2:
        a, b, c = rng.randint(5, 40), rng.randint(2, 9), rng.randint(3, 30)
        q = f"{n} reads {a} pages a day for {b} days and then {c} more pages. How many pages did {n} read in total?"
        steps = (f"In {b} days {n} reads {a} * {b} = {a * b} pages.", f"Adding the last {c} pages gives {a * b} + {c} = {a * b + c}.")
        return DemoItem("math", q, steps, Answer("number", a * b + c, "pages"), meta=(("unit", "pages"),))
    if t == 3:
        a, b, c = rng.randint(3, 40), rng.randint(3, 40), rng.randint(2, 15)
        q = f"A shop sold {a} {th} in the morning and {b} in the afternoon. Each one costs {c} dollars. How much money did the shop make?"
        steps = (f"The shop sold {a} + {b} = {a + b} {th}.", f"At {c} dollars each, that is {a + b} * {c} = {(a + b) * c} dollars.")
        return DemoItem("math", q, steps, Answer("number", (a + b) * c, "dollars"), meta=(("unit", "dollars"),))
    if t == 4:
        b, c = rng.randint(2, 30), rng.randint(2, 30)
        a = b + c + rng.randint(0, 50)
        q = f"{n} had {a} dollars. {p} spent {b} dollars on lunch and {c} dollars on a book. How much money does {n} have left?"
        steps = (f"{n} spent {b} + {c} = {b + c} dollars.", f"{p} has {a} - {b + c} = {a - b - c} dollars left.")
        return DemoItem("math", q, steps, Answer("number", a - b - c, "dollars"), meta=(("unit", "dollars"),))
    k, b = rng.randint(2, 9), rng.randint(2, 8)
    a = k * b
    q = f"There are {a} students split equally into {b} teams. How many students are in each team?"
    steps = (f"There are {a} students and {b} teams.", f"Each team has {a} / {b} = {k} students.")
    return DemoItem("math", q, steps, Answer("number", k, "students"), meta=(("unit", "students"),))


# -- dosage (clinical arithmetic) ---------------------------------------------------

_DRUGS = ("amoxicillin", "paracetamol", "ibuprofen", "cefalexin", "metformin", "gabapentin",
          "azithromycin", "ondansetron")


def _dosage(rng: random.Random) -> DemoItem:
    t = rng.randrange(5)
    drug = rng.choice(_DRUGS)
    if t == 0:
        w, d = rng.randint(8, 90), rng.choice((2, 5, 10, 15, 20))
        q = f"A patient weighs {w} kg and the prescribed dose of {drug} is {d} mg per kg. How many mg should the patient receive?"
        steps = (f"The dose is {d} mg for each kilogram of body weight.", f"{w} * {d} = {w * d} mg.")
        return DemoItem("dosage", q, steps, Answer("number", w * d, "mg"), meta=(("unit", "mg"),))
    if t == 1:
        s = rng.choice((125, 250, 500))
        k = rng.randint(1, 4)
        x = s * k
        q = f"One tablet of {drug} contains {s} mg. How many tablets are needed for a dose of {x} mg?"
        steps = (f"Each tablet has {s} mg.", f"{x} / {s} = {k} tablets.")
        return DemoItem("dosage", q, steps, Answer("number", k, "tablets"), meta=(("unit", "tablets"),))
    if t == 2:
        c = rng.choice((100, 125, 250))
        x = c * rng.randint(1, 4) // rng.choice((1, 2))
        ml = x * 5 / c
        q = f"A syrup has {c} mg of {drug} in every 5 mL. How many mL contain {x} mg?"
        steps = (f"{c} mg are in 5 mL.", f"{x} mg need {x} * 5 / {c} = {fmt_num(ml)} mL.")
        return DemoItem("dosage", q, steps, Answer("number", ml, "mL"), meta=(("unit", "mL"),))
    if t == 3:
        h = rng.choice((2, 4, 5, 8, 10))
        v = h * rng.choice((25, 50, 100, 125))
        q = f"An infusion of {v} mL must run over {h} hours. What is the rate in mL per hour?"
        steps = (f"The volume is {v} mL and the time is {h} hours.", f"{v} / {h} = {v // h} mL per hour.")
        return DemoItem("dosage", q, steps, Answer("number", v // h, "mL"), meta=(("unit", "mL"),))
    d, tms, n = rng.choice((100, 200, 250, 500)), rng.randint(2, 4), rng.randint(3, 10)
    q = f"A patient takes {d} mg of {drug} {tms} times a day. How many mg does the patient take in {n} days?"
    steps = (f"Each day the patient takes {d} * {tms} = {d * tms} mg.", f"Over {n} days that is {d * tms} * {n} = {d * tms * n} mg.")
    return DemoItem("dosage", q, steps, Answer("number", d * tms * n, "mg"), meta=(("unit", "mg"),))


# -- dates ---------------------------------------------------------------------------


def _dates(rng: random.Random) -> DemoItem:
    t = rng.randrange(4)
    start = _dt.date(rng.randint(2015, 2027), rng.randint(1, 12), rng.randint(1, 28))
    if t == 0:
        n = rng.randint(3, 40)
        end = start + _dt.timedelta(days=n)
        q = f"What is the date {n} days after {fmt_date(start)}?"
        steps = (f"The start date is {fmt_date(start)}.", f"Counting {n} days forward gives {fmt_date(end)}.")
        return DemoItem("dates", q, steps, Answer("date", end))
    if t == 1:
        w = rng.randint(1, 8)
        end = start + _dt.timedelta(days=7 * w)
        wk = "week" if w == 1 else "weeks"
        q = f"A project starts on {fmt_date(start)} and lasts {w} {wk}. On what date does it end?"
        steps = (f"{w} {wk} is {w} * 7 = {7 * w} days.", f"{fmt_date(start)} plus {7 * w} days is {fmt_date(end)}.")
        return DemoItem("dates", q, steps, Answer("date", end))
    if t == 2:
        n = rng.randint(2, 30)
        end = start - _dt.timedelta(days=n)
        q = f"What was the date {n} days before {fmt_date(start)}?"
        steps = (f"The reference date is {fmt_date(start)}.", f"Going back {n} days gives {fmt_date(end)}.")
        return DemoItem("dates", q, steps, Answer("date", end))
    d0 = rng.randrange(7)
    n = rng.randint(3, 60)
    q = f"Today is {WEEKDAYS[d0]}. What day of the week will it be in {n} days?"
    steps = (f"{n} days is {n // 7} week{'' if n // 7 == 1 else 's'} and {n % 7} day{'' if n % 7 == 1 else 's'}.", f"{n % 7} day{'' if n % 7 == 1 else 's'} after {WEEKDAYS[d0]} is {WEEKDAYS[(d0 + n) % 7]}.")
    return DemoItem("dates", q, steps, Answer("weekday", (d0 + n) % 7))


# -- sentiment (hand-written reviews) -------------------------------------------------

_REVIEWS = (
    ("The battery lasts two full days and the screen is bright even outdoors.", "praises the battery and the screen", "positive"),
    ("The soup arrived cold and the waiter ignored us for twenty minutes.", "complains about cold food and slow service", "negative"),
    ("I have worn these boots through three winters and they still keep my feet dry.", "says the boots are durable and waterproof", "positive"),
    ("The hotel room smelled of smoke and the air conditioner rattled all night.", "describes a smelly room and a noisy air conditioner", "negative"),
    ("Setup took five minutes and the printer has not jammed once.", "reports an easy setup and reliable printing", "positive"),
    ("The plot is predictable and the last hour drags on without purpose.", "calls the plot predictable and the ending slow", "negative"),
    ("Our guide knew every corner of the old town and made history fun for the kids.", "praises the guide's knowledge and the fun for children", "positive"),
    ("The blender leaked after a week and customer support never answered.", "reports a leak and unresponsive support", "negative"),
    ("Fresh bread every morning and the owners remembered our names.", "enjoys fresh bread and friendly owners", "positive"),
    ("The app crashes whenever I try to upload a photo.", "reports that the app keeps crashing", "negative"),
    ("The course explained recursion more clearly than any textbook I have read.", "finds the explanations very clear", "positive"),
    ("Half of the puzzle pieces were missing from a sealed box.", "complains about missing pieces", "negative"),
    ("The headphones cancel the train noise completely and feel light on the ears.", "praises the noise cancelling and comfort", "positive"),
    ("The delivery came a week late and the box was crushed.", "complains about a late, damaged delivery", "negative"),
    ("A quiet, well-lit library with plenty of outlets; I finished my thesis there.", "appreciates the quiet space and the outlets", "positive"),
    ("The instructions were wrong and two screws did not fit any hole.", "criticises wrong instructions and parts that do not fit", "negative"),
    ("The concert started on time and the sound was crisp in every row.", "praises punctuality and sound quality", "positive"),
    ("My phone case cracked the first time it fell from the table.", "says the case broke on the first drop", "negative"),
    ("The nurse was patient, explained each step and the wait was short.", "praises a patient nurse and a short wait", "positive"),
    ("The rental car had a flat tire and the agency charged us for it.", "complains about a flat tire and an unfair charge", "negative"),
    ("The coffee is rich without being bitter and the beans are roasted on site.", "likes the taste and the fresh roasting", "positive"),
    ("The seats were cramped and the film was out of focus for half an hour.", "complains about cramped seats and a blurry film", "negative"),
)


def _sentiment(rng: random.Random) -> DemoItem:
    text, evidence, label = rng.choice(_REVIEWS)
    q = f'Review: "{text}" Is the sentiment of this review positive or negative?'
    tone = "satisfaction" if label == "positive" else "dissatisfaction"
    steps = (f"The reviewer {evidence}.", f"This expresses {tone}, so the sentiment is {label}.")
    return DemoItem("sentiment", q, steps, Answer("label", label))


# -- multiple choice (commonsense, hand-written) -----------------------------------------

_MC = (
    ("Where would you keep milk so that it stays fresh?", ("oven", "refrigerator", "bookshelf", "garden", "mailbox"), "B",
     ("Milk spoils when it is warm.", "A refrigerator keeps food cold.")),
    ("What do people usually use to cut paper?", ("spoon", "hammer", "scissors", "pillow", "kettle"), "C",
     ("Cutting paper needs a sharp edge.", "Scissors have two sharp blades made for cutting.")),
    ("Where does a pilot work?", ("cockpit", "kitchen", "classroom", "barn", "library"), "A",
     ("A pilot flies an aircraft.", "The controls of an aircraft are in the cockpit.")),
    ("What would you wear to keep your hands warm in winter?", ("sandals", "gloves", "sunglasses", "belt", "scarf pin"), "B",
     ("Hands get cold in winter.", "Gloves cover the hands and keep them warm.")),
    ("Where are you likely to find a stethoscope?", ("bakery", "stadium", "beach", "doctor's office", "garage"), "D",
     ("A stethoscope is used to listen to the heart and lungs.", "Doctors use it, so it is found in a doctor's office.")),
    ("What do plants need from the sun to grow?", ("light", "noise", "salt", "plastic", "smoke"), "A",
     ("Plants make food by photosynthesis.", "Photosynthesis needs light from the sun.")),
    ("Where would you go to borrow a book for free?", ("pharmacy", "library", "bank", "airport", "bakery"), "B",
     ("Borrowing books for free is a public service.", "A library lends books to its members.")),
    ("What is a common reason to carry an umbrella?", ("sunburn only", "rain", "hunger", "boredom", "music"), "B",
     ("An umbrella shields a person from above.", "People mostly carry one to stay dry in the rain.")),
    ("If you are thirsty, what should you do?", ("sleep", "run", "drink water", "read", "shout"), "C",
     ("Thirst means the body needs fluid.", "Drinking water gives the body fluid.")),
    ("Where do you usually find a whiteboard?", ("swimming pool", "forest", "classroom", "refrigerator", "bus tire"), "C",
     ("A whiteboard is used for writing while explaining.", "Teachers use it when they teach, so it is in a classroom.")),
    ("What helps a bicycle rider stop?", ("brakes", "bell", "basket", "kickstand", "reflector"), "A",
     ("Stopping needs something that slows the wheels.", "Brakes press on the wheels to slow them down.")),
    ("Where would you store winter coats in summer?", ("freezer", "closet", "dishwasher", "bathtub", "oven"), "B",
     ("Coats are not needed in summer and should stay clean and dry.", "A closet is a dry place to store clothes.")),
    ("What do bees make?", ("milk", "honey", "silk", "wool", "paper"), "B",
     ("Bees collect nectar from flowers.", "They turn the nectar into honey.")),
    ("Which tool would you use to measure the length of a table?", ("thermometer", "scale", "tape measure", "compass", "clock"), "C",
     ("Length is measured in units such as centimetres.", "A tape measure shows length in those units.")),
    ("What happens to ice when it is left in the sun?", ("it grows", "it melts", "it hardens", "it sings", "it burns"), "B",
     ("The sun warms things up.", "Warm ice turns into water, so it melts.")),
    ("Where would you buy fresh vegetables?", ("hardware store", "market", "post office", "cinema", "gym"), "B",
     ("Fresh vegetables are sold as food.", "A market sells fresh produce.")),
    ("Why do people wear seat belts?", ("to look taller", "for safety", "to stay warm", "to play music", "to save fuel"), "B",
     ("A seat belt holds a person in place during a crash.", "That protects them, so it is for safety.")),
    ("What would you use to unlock a door?", ("spoon", "key", "leaf", "coin purse", "cup"), "B",
     ("A lock opens with the matching shape.", "A key has that shape.")),
)


def _choices(rng: random.Random) -> DemoItem:
    q, opts, ans, steps = rng.choice(_MC)
    letters = "ABCDE"
    choices = tuple((letters[i], o) for i, o in enumerate(opts))
    return DemoItem("choices", q, tuple(steps) + (f"The best option is ({ans}) {opts[letters.index(ans)]}.",),
                    Answer("choice", ans), choices=choices)


# -- string tasks ----------------------------------------------------------------------

_WORDS = ("river", "candle", "window", "pepper", "garden", "silver", "rocket", "planet", "noon",
          "level", "marble", "forest", "radar", "ticket", "orange", "bridge", "pencil", "kayak",
          "lemon", "tunnel", "castle", "falcon", "meadow", "harbor", "civic", "anchor", "velvet")


def _strings(rng: random.Random) -> DemoItem:
    t = rng.randrange(4)
    if t == 0:
        ws = rng.sample(_WORDS, 3)
        res = "".join(w[-1] for w in ws)
        q = f'Take the last letters of the words in "{" ".join(ws)}" and concatenate them.'
        steps = tuple(f'The last letter of "{w}" is "{w[-1]}".' for w in ws) + (f'Concatenating them is "{res}".',)
        return DemoItem("strings", q, steps, Answer("text", res))
    w = rng.choice(_WORDS)
    if t == 1:
        q = f'Write the word "{w}" backwards.'
        steps = (f'The letters of "{w}" are {", ".join(w)}.', f'Read from the end they spell "{w[::-1]}".')
        return DemoItem("strings", q, steps, Answer("text", w[::-1]))
    if t == 2:
        res = "".join(sorted(w))
        q = f'Sort the letters of "{w}" alphabetically.'
        steps = (f'The letters of "{w}" are {", ".join(w)}.', f'In alphabetical order they are "{res}".')
        return DemoItem("strings", q, steps, Answer("text", res))
    ws = rng.sample(_WORDS, 2)
    res = ws[0][0] + ws[1][0]
    q = f'Take the first letters of the words in "{ws[0]} {ws[1]}" and concatenate them.'
    steps = (f'The first letter of "{ws[0]}" is "{ws[0][0]}".', f'The first letter of "{ws[1]}" is "{ws[1][0]}".',
             f'Concatenating them is "{res}".')
    return DemoItem("strings", q, steps, Answer("text", res))


# -- SQL ----------------------------------------------------------------------------------

_TABLES = (
    ("employees", ("name", "salary", "dept", "age"), "salary", "dept", ("Sales", "Support", "Finance")),
    ("orders", ("id", "customer", "total", "status"), "total", "status", ("shipped", "pending", "returned")),
    ("products", ("name", "price", "stock", "category"), "price", "category", ("garden", "kitchen", "toys")),
    ("patients", ("name", "age", "ward", "doctor"), "age", "ward", ("north", "east", "west")),
)


def _sql(rng: random.Random) -> DemoItem:
    table, cols, num, cat, values = rng.choice(_TABLES)
    t = rng.randrange(3)
    if t == 0:
        v = rng.choice((18, 30, 50, 100, 250, 1000))
        col = rng.choice([c for c in cols if c != num])
        q = f"The table {table} has columns {', '.join(cols)}. Write a SQL query that lists the {col} of every row whose {num} is greater than {v}."
        ans = f"SELECT {col} FROM {table} WHERE {num} > {v};"
        steps = (f"The rows come from the table {table}.", f"The filter is {num} > {v}.", f"We only need the column {col}.")
        return DemoItem("sql", q, steps, Answer("sql", ans), meta=(("op", ">"),))
    if t == 1:
        v = rng.choice(values)
        q = f"The table {table} has columns {', '.join(cols)}. Write a SQL query that counts the rows whose {cat} is '{v}'."
        ans = f"SELECT COUNT(*) FROM {table} WHERE {cat} = '{v}';"
        steps = (f"We count rows of {table}.", f"Only rows with {cat} = '{v}' are counted.")
        return DemoItem("sql", q, steps, Answer("sql", ans), meta=(("op", "="),))
    k = rng.randint(2, 10)
    col = cols[0]
    q = f"The table {table} has columns {', '.join(cols)}. Write a SQL query that returns the {col} of the {k} rows with the highest {num}."
    ans = f"SELECT {col} FROM {table} ORDER BY {num} DESC LIMIT {k};"
    steps = (f"Sort {table} by {num} from highest to lowest.", f"Keep the first {k} rows and return {col}.")
    return DemoItem("sql", q, steps, Answer("sql", ans), meta=(("op", "limit"),))


# -- algebra (LaTeX-style, variable length) -------------------------------------------------


def _algebra(rng: random.Random) -> DemoItem:
    t = rng.randrange(3)
    if t == 0:
        a, x = rng.randint(2, 9), rng.randint(-6, 12)
        b = rng.randint(-20, 20)
        c = a * x + b
        q = f"Solve for $x$: ${a}x {'+' if b >= 0 else '-'} {abs(b)} = {c}$."
        steps = (f"Subtract ${b}$ from both sides: ${a}x = {c} - ({b}) = {c - b}$.",
                 f"Divide both sides by ${a}$: $x = \\frac{{{c - b}}}{{{a}}} = {x}$.")
        return DemoItem("algebra", q, steps, Answer("number", x), meta=(("unit", ""),))
    if t == 1:
        r1, r2 = rng.randint(-7, 7), rng.randint(-7, 7)
        b, c = -(r1 + r2), r1 * r2
        q = f"What is the sum of the roots of $x^2 {'+' if b >= 0 else '-'} {abs(b)}x {'+' if c >= 0 else '-'} {abs(c)} = 0$?"
        steps = ("For $x^2 + bx + c = 0$ the roots add up to $-b$.",
                 f"Here $b = {b}$.",
                 f"So the sum of the roots is ${-b}$.")
        return DemoItem("algebra", q, steps, Answer("number", -b), meta=(("unit", ""),))
    n = rng.randint(3, 9)
    a1, d = rng.randint(1, 10), rng.randint(2, 6)
    last = a1 + (n - 1) * d
    total = n * (a1 + last) // 2 if (n * (a1 + last)) % 2 == 0 else None
    if total is None:
        n += 1
        last = a1 + (n - 1) * d
        total = n * (a1 + last) // 2
    q = f"What is the sum of the first {n} terms of the arithmetic sequence that starts ${a1}, {a1 + d}, {a1 + 2 * d}, \\ldots$?"
    steps = (f"The common difference is ${d}$.",
             f"The {n}th term is ${a1} + ({n} - 1) \\cdot {d} = {last}$.",
             f"The sum is $\\frac{{{n}({a1} + {last})}}{{2}} = {total}$.")
    return DemoItem("algebra", q, steps, Answer("number", total), meta=(("unit", ""),))


# -- yes/no questions (hand-written) ------------------------------------------------------

_YESNO = (
    ("Can a person walk from Lisbon to Madrid?", ("Lisbon and Madrid are on the same continent, connected by land.",
     "It is far, but walking is possible."), "yes"),
    ("Would a goldfish survive a week in a dry bowl?", ("Goldfish breathe through gills and need water.",
     "Without water they die within hours."), "no"),
    ("Is a tomato botanically a fruit?", ("Botanically, a fruit develops from the flower and holds seeds.",
     "Tomatoes develop from flowers and contain seeds."), "yes"),
    ("Could a smartphone have been used during the First World War?", ("The First World War ended in 1918.",
     "Smartphones appeared in the 2000s."), "no"),
    ("Is the Sahara larger than Belgium?", ("The Sahara covers about nine million square kilometres.",
     "Belgium covers about thirty thousand square kilometres."), "yes"),
    ("Do penguins live at the North Pole?", ("Wild penguins live almost only in the Southern Hemisphere.",
     "The North Pole is in the far north."), "no"),
    ("Can sound travel through outer space?", ("Sound needs a medium such as air to travel.",
     "Space is nearly a vacuum."), "no"),
    ("Would a blue whale fit in a bathtub?", ("A blue whale is about thirty metres long.",
     "A bathtub is under two metres long."), "no"),
    ("Is ice less dense than liquid water?", ("Ice floats on water.",
     "Floating means it is less dense."), "yes"),
    ("Could a chess game end in a draw?", ("Chess has rules for stalemate and repetition.",
     "Those rules end the game as a draw."), "yes"),
    ("Is Mount Everest taller than the Eiffel Tower?", ("Mount Everest is about 8,849 metres high.",
     "The Eiffel Tower is about 330 metres high."), "yes"),
    ("Did Julius Caesar read printed books?", ("The printing press was invented around 1440.",
     "Caesar died in 44 BC."), "no"),
)


def _yesno(rng: random.Random) -> DemoItem:
    q, steps, a = rng.choice(_YESNO)
    return DemoItem("yesno", q, tuple(steps), Answer("yesno", a), answer_format="So the answer is {}.")


DOMAINS: dict[str, Callable[[random.Random], DemoItem]] = {
    "math": _math,
    "dosage": _dosage,
    "dates": _dates,
    "sentiment": _sentiment,
    "choices": _choices,
    "strings": _strings,
    "sql": _sql,
    "algebra": _algebra,
    "yesno": _yesno,
}

# which built-in domain behaves like a user domain with this answer type (the
# generator conditions its choices on it)
_TYPE_DOMAIN = {"number": "math", "date": "dates", "weekday": "dates", "label": "sentiment",
                "choice": "choices", "text": "strings", "sql": "sql", "yesno": "yesno"}


def domain_for_type(answer_type: str) -> str:
    return _TYPE_DOMAIN.get(answer_type, "strings")


def sample_items(domain: str, n: int, rng: random.Random, pool: Sequence[DemoItem] | None = None) -> list[DemoItem]:
    """`n` items with distinct questions (from `pool` when given, e.g. the user's)."""
    out: list[DemoItem] = []
    seen: set[str] = set()
    if pool is not None:
        cand = list(pool)
        rng.shuffle(cand)
        for it in cand:
            if it.question not in seen:
                seen.add(it.question)
                out.append(it)
            if len(out) == n:
                break
        return out
    gen = DOMAINS[domain]
    for _ in range(n * 20):
        it = gen(rng)
        if it.question in seen:
            continue
        seen.add(it.question)
        out.append(it)
        if len(out) == n:
            break
    return out


# -- the user's library -----------------------------------------------------------------

_NUM = re.compile(r"^([-+]?)\$?\s*(\d[\d,]*(?:\.\d+)?)\s*([A-Za-z%]*)$")
_ANS = re.compile(r"(?:answer\s+is|answer\s*[:：]|^A\s*[:：])\s*(.+)$", re.IGNORECASE)
_CHOICE = re.compile(r"^\(?([A-Ea-e])\)?(?:\s.*)?$")
_CHOICES_LINE = re.compile(r"Answer Choices\s*[:：](.*)$", re.IGNORECASE | re.DOTALL)


def parse_answer_text(line: str) -> Answer | None:
    """The typed value of an answer line ('The answer is 12.', 'A: (B)', 'yes')."""
    m = _ANS.search(line.strip())
    raw = (m.group(1) if m else line).strip().rstrip(".").strip()
    if not raw:
        return None
    low = raw.lower()
    if low in ("yes", "no"):
        return Answer("yesno", low)
    if low in ("positive", "negative", "neutral"):
        return Answer("label", low)
    nm = _NUM.match(raw)
    if nm:
        try:
            return Answer("number", float(nm.group(1) + nm.group(2).replace(",", "")), nm.group(3) or None)
        except ValueError:
            pass
    cm = _CHOICE.match(raw)
    if cm and (len(raw) <= 3 or raw.startswith("(")):
        return Answer("choice", cm.group(1).upper())
    if raw.upper().startswith("SELECT "):
        return Answer("sql", raw if raw.endswith(";") else raw + ";")
    if len(raw) <= 80 and "\n" not in raw:
        return Answer("text", raw.strip('"'))
    return None


def _answer_format(line: str, ans: Answer) -> str:
    """The user's answer line with its value replaced by `{}` (kept verbatim otherwise)."""
    line = line.strip()
    m = _ANS.search(line)
    start = m.start(1) if m else 0
    raw = line[start:].rstrip()
    core = raw.rstrip(".").rstrip()
    if not core:
        return "The answer is {}."
    return line[:start] + "{}" + raw[len(core):]


def items_from_segments(segments: Sequence[Any]) -> list[DemoItem]:
    """User-domain items from parsed demonstration segments (question, steps, answer)."""
    from ..segments import SegmentKind

    out: list[DemoItem] = []
    for s in segments:
        if s.kind is not SegmentKind.DEMONSTRATION or s.answer is None:
            continue
        steps = tuple(x.strip() for x in s.steps if x.strip())
        if not steps:
            continue
        ans = parse_answer_text(s.answer)
        if ans is None:
            continue
        q = s.question.strip()
        choices: tuple[tuple[str, str], ...] = ()
        cm = _CHOICES_LINE.search(q)
        if cm:
            q_main = q[: cm.start()].strip()
            found = re.findall(r"\(([A-Ea-e])\)\s*([^()]+?)(?=\s*\([A-Ea-e]\)|$)", cm.group(1).strip())
            choices = tuple((k.upper(), v.strip()) for k, v in found)
            q = q_main
        if "\n" in q:
            continue
        out.append(DemoItem("user", q, steps, ans, choices=choices, answer_format=_answer_format(s.answer, ans)))
    return out


__all__ += ["fmt_date", "WEEKDAYS", "MONTHS"]
