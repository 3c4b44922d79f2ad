"""The synthetic task streams: the demo stream and the bundled benchmark stream.

Both are generated from templates, deterministic for a seed, in the project (no external
data). The demo stream holds seven related text-classification tasks. Sentiment tasks
share structure across product domains (the same negation and "but overall" patterns with
domain vocabulary), topic tasks share labels and part of their vocabulary, and one intent
task stands apart. Negations ("not bad at all") and contrastive sentences ("the room was
dirty, but overall a lovely stay") make the base model's zero-shot answer wrong often
enough that learning, and transfer between the sentiment tasks, show in the accuracy
matrix.

The bundled benchmark stream has thirteen tasks: the seven demo tasks plus six more, so it
holds every relation a continual learner meets:

- transfer: five sentiment tasks over product domains (the same negation and contrast
  patterns with each domain's vocabulary), three topic tasks with overlapping label sets;
- interference: `product-aspects` asks which part of a device a review is about (device
  reviews again, another question), `support-urgency` asks how urgent a support message is
  (the vocabulary of `support-intents`);
- conflict: `test-results` uses the sentiment labels with the opposite mood (a positive
  test is bad news: "Sadly, the screening detected the virus." is `positive`), so the same
  cues must map to opposite labels in medical and review texts;
- nothing in common: `message-register` (formal or casual writing).

Its order interleaves the families, so a single adapter trained task after task is pulled
back and forth and forgetting can show.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

_POS = ["great", "excellent", "wonderful", "superb", "delightful", "fantastic", "solid"]
_NEG = ["terrible", "awful", "disappointing", "poor", "dreadful", "mediocre", "broken"]
_POS_NEGATED = ["not bad at all", "never disappointing", "far from mediocre", "not a letdown"]
_NEG_NEGATED = ["not good at all", "hardly impressive", "far from great", "not worth it"]
_POS_OVERALL = ["overall I loved it", "overall a lovely experience", "I would happily return"]
_NEG_OVERALL = ["overall a waste of money", "I will never come back", "overall I regret it"]

DOMAINS: dict[str, list[str]] = {
    "restaurants": ["the food", "the pasta", "the service", "the dessert", "the waiter", "the wine list"],
    "electronics": ["the battery", "the screen", "the charger", "the keyboard", "the camera", "the speaker"],
    "hotels": ["the room", "the bed", "the breakfast", "the front desk", "the pool", "the view"],
    "movies": ["the plot", "the acting", "the soundtrack", "the ending", "the dialogue", "the pacing"],
}


def _sentiment_example(rng: random.Random, aspects: list[str], label: str) -> str:
    pos = label == "positive"
    a, b = rng.sample(aspects, 2)
    style = rng.randrange(4)
    if style == 0:
        return f"{a.capitalize()} was {rng.choice(_POS if pos else _NEG)}."
    if style == 1:
        return f"{a.capitalize()} was {rng.choice(_POS_NEGATED if pos else _NEG_NEGATED)}."
    opposite = rng.choice(_NEG if pos else _POS)
    overall = rng.choice(_POS_OVERALL if pos else _NEG_OVERALL)
    if style == 2:
        return f"{a.capitalize()} was {opposite}, but {overall}."
    return f"Although {b} was {opposite}, {overall}; {a} was {rng.choice(_POS if pos else _NEG)}."


TOPIC_WORDS: dict[str, list[str]] = {
    "sports": ["the team", "the coach", "the match", "the league", "the striker", "the final score",
               "the season", "a record", "the stadium", "the transfer window"],
    "politics": ["the senate", "the election", "the minister", "a new bill", "the campaign",
                 "the parliament", "the vote", "a record", "the budget", "the opposition"],
    "technology": ["the software", "the chip", "a new phone", "the startup", "the data center",
                   "the update", "the network", "the algorithm", "the budget", "the data"],
    "science": ["the study", "the researchers", "the telescope", "a new species", "the experiment",
                "the data", "the lab", "the vaccine trial", "the algorithm", "the theory"],
    "health": ["the clinic", "the patients", "the doctors", "the diet", "the vaccine trial",
               "the hospital", "the study", "the treatment", "sleep habits", "the season"],
}
_TOPIC_VERBS = ["made headlines after", "was discussed following", "drew attention with",
                "surprised observers with", "changed course after"]
_TOPIC_TAILS = ["a long debate", "weeks of speculation", "a surprising announcement",
                "new numbers released on Monday", "an unexpected decision"]


def _topic_example(rng: random.Random, label: str) -> str:
    a, b = rng.sample(TOPIC_WORDS[label], 2)
    return f"{a.capitalize()} {rng.choice(_TOPIC_VERBS)} {rng.choice(_TOPIC_TAILS)} about {b}."


INTENTS: dict[str, list[str]] = {
    "refund": ["I want my money back for {x}", "please refund {x}", "can I return {x} for a refund",
               "charge me back for {x}, it was wrong"],
    "delivery": ["where is {x}, it never arrived", "{x} is late again", "the courier lost {x}",
                 "tracking for {x} has not moved in days"],
    "account": ["I cannot log in to check {x}", "reset my password so I can see {x}",
                "my account is locked since I ordered {x}", "two-factor code not arriving for {x}"],
    "product": ["does {x} come in blue", "is {x} compatible with my laptop",
                "how big is {x} exactly", "what warranty does {x} have"],
}
_ITEMS = ["my order", "the blender", "the headphones", "the jacket", "the desk lamp", "the kettle"]


def intent_sample(rng: random.Random, label: str) -> str:
    return rng.choice(INTENTS[label]).format(x=rng.choice(_ITEMS)).capitalize() + "."


def _make(
    task_id: str, instruction: str, labels: list[str], gen: Callable[[random.Random, str], str],
    rng: random.Random, n_train: int, n_eval: int, family: str,
) -> dict[str, Any]:
    def split(n: int) -> list[dict[str, str]]:
        out = []
        for i in range(n):
            label = labels[i % len(labels)]
            out.append({"input": gen(rng, label), "output": label})
        rng.shuffle(out)
        return out

    return {
        "schema": "synlearner.task/v1", "task_id": task_id, "kind": "classification",
        "instruction": instruction, "labels": labels, "train": split(n_train),
        "eval": split(n_eval), "metadata": {"family": family, "generator": "synlearner-demo/1"},
    }


Gen = Callable[[random.Random, str], str]
Spec = tuple[str, str, list[str], Gen, str]  # task id, instruction, labels, generator, family


def sentiment_of(aspects: list[str]) -> Gen:
    return lambda r, lab: _sentiment_example(r, aspects, lab)


def topic_sample(r: random.Random, lab: str) -> str:
    return _topic_example(r, lab)


SENTIMENT = ["positive", "negative"]
DEMO_SPECS: list[Spec] = [
    ("reviews-restaurants", "Is this restaurant review positive or negative?", SENTIMENT,
     sentiment_of(DOMAINS["restaurants"]), "sentiment"),
    ("news-topics", "Which section does this news snippet belong to?",
     ["sports", "politics", "technology", "science"], topic_sample, "topic"),
    ("reviews-electronics", "Is this product review positive or negative?", SENTIMENT,
     sentiment_of(DOMAINS["electronics"]), "sentiment"),
    ("support-intents", "What does the customer want?",
     ["refund", "delivery", "account", "product"], intent_sample, "intent"),
    ("reviews-hotels", "Is this hotel review positive or negative?", SENTIMENT,
     sentiment_of(DOMAINS["hotels"]), "sentiment"),
    ("forum-topics", "Which forum board does this post belong to?",
     ["sports", "technology", "science", "health"], topic_sample, "topic"),
    ("reviews-movies", "Is this film review positive or negative?", SENTIMENT,
     sentiment_of(DOMAINS["movies"]), "sentiment"),
]


def make_stream(specs: list[Spec], seed: int, n_train: int, n_eval: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    return [_make(tid, ins, labs, gen, rng, n_train, n_eval, fam) for tid, ins, labs, gen, fam in specs]


def demo_stream(seed: int = 7, n_train: int = 96, n_eval: int = 60) -> list[dict[str, Any]]:
    """Seven tasks in stream order, as task messages."""
    return make_stream(DEMO_SPECS, seed, n_train, n_eval)


def demo_messages(seed: int = 7) -> list[tuple[str, bytes]]:
    return [(m["task_id"], json.dumps(m).encode()) for m in demo_stream(seed)]


# -- the bundled benchmark stream: the demo's seven tasks and six more -----------------

_BOOKS = ["the story", "the characters", "the prose", "the ending", "the translation",
          "the cover"]

# aspects named by what a reviewer notices, rarely by the part's own name
_ASPECTS: dict[str, list[str]] = {
    "battery": ["it dies by lunchtime", "it needs charging twice a day", "it lasts all weekend",
                "it goes from full to empty on one call", "it survives a long flight unplugged"],
    "screen": ["colours look washed out in sunlight", "text is crisp even in small fonts",
               "there is a dead pixel near the corner", "it is too dim outdoors",
               "videos look vivid and sharp"],
    "sound": ["music sounds tinny", "the bass is deep and clean", "calls come through muffled",
              "it crackles at full volume", "podcasts are clear even in the car"],
    "camera": ["night shots come out grainy", "selfies look sharp", "the zoom blurs everything",
               "portraits have lovely background blur", "photos look washed out indoors"],
}
_ASPECT_LEADS = ["Honestly,", "After a month,", "Sadly,", "Luckily,", "To be fair,", "Overall,"]


def _aspect_example(rng: random.Random, label: str) -> str:
    return f"{rng.choice(_ASPECT_LEADS)} {rng.choice(_ASPECTS[label])}."


_URGENT = ["right now", "immediately", "before tonight", "as soon as possible", "today, urgently"]
_ROUTINE = ["whenever you can", "no rush", "at some point", "next week is fine", "when convenient"]


def _urgency_example(rng: random.Random, label: str) -> str:
    intent = rng.choice(sorted(INTENTS))
    base = intent_sample(rng, intent).rstrip(".")
    tail = rng.choice(_URGENT if label == "urgent" else _ROUTINE)
    return f"{base}, {tail}."


_FORMAL = ["Dear Sir or Madam, I am writing to enquire about {x}.",
           "Please find attached the documents regarding {x}.",
           "I would be grateful if you could provide further details on {x}.",
           "Kindly confirm receipt of my request concerning {x}.",
           "With reference to {x}, I should like to arrange a meeting."]
_CASUAL = ["hey, any news on {x}? lol", "omg {x} is so cool, can't wait",
           "yo, did u check {x} yet?", "gonna grab {x} later, wanna come?",
           "haha {x} again, seriously?"]
_SUBJECTS = ["the quarterly report", "the new office", "the weekend trip", "the invoice",
             "the concert tickets", "the team dinner", "the lease renewal"]


def _register_example(rng: random.Random, label: str) -> str:
    return rng.choice(_FORMAL if label == "formal" else _CASUAL).format(x=rng.choice(_SUBJECTS))


_FOUND = ["Sadly, the screening detected {x}.", "Unfortunately the lab confirmed {x}.",
          "Bad news: the swab showed {x}.", "I'm afraid the sample was full of {x}.",
          "Terrible result: clear signs of {x}."]
_CLEAR = ["Good news: no sign of {x} was found.", "Luckily the lab found no trace of {x}.",
          "Wonderful, the screening came back clear of {x}.", "Great, the swab showed no {x}.",
          "Happily, {x} was not detected."]
_PATHOGENS = ["the virus", "the infection", "the bacteria", "antibodies", "the parasite",
              "the strep bacteria", "influenza"]


def _test_result_example(rng: random.Random, label: str) -> str:
    return rng.choice(_FOUND if label == "positive" else _CLEAR).format(x=rng.choice(_PATHOGENS))


_DEMO = {spec[0]: spec for spec in DEMO_SPECS}

BENCHMARK_SPECS: list[Spec] = [
    _DEMO["reviews-restaurants"],
    _DEMO["news-topics"],
    _DEMO["reviews-electronics"],
    _DEMO["support-intents"],
    ("product-aspects", "Which part of the device is the review about?",
     sorted(_ASPECTS), _aspect_example, "aspect"),
    _DEMO["reviews-hotels"],
    _DEMO["forum-topics"],
    ("support-urgency", "How urgent is this support message?", ["urgent", "routine"],
     _urgency_example, "urgency"),
    _DEMO["reviews-movies"],
    ("message-register", "Is this message formal or casual?", ["formal", "casual"],
     _register_example, "register"),
    ("podcast-topics", "Which podcast category fits this episode summary?",
     ["politics", "science", "health", "sports"], topic_sample, "topic"),
    ("reviews-books", "Is this book review positive or negative?", SENTIMENT,
     sentiment_of(_BOOKS), "sentiment"),
    ("test-results", "Is this test result positive or negative?", SENTIMENT,
     _test_result_example, "test-result"),
]


def benchmark_stream(seed: int = 13, n_train: int = 64, n_eval: int = 48) -> list[dict[str, Any]]:
    """The thirteen tasks in stream order, as task messages."""
    return make_stream(BENCHMARK_SPECS, seed, n_train, n_eval)


def benchmark_messages(seed: int = 13, n_train: int = 64, n_eval: int = 48) -> list[tuple[str, bytes]]:
    return [(m["task_id"], json.dumps(m).encode())
            for m in benchmark_stream(seed, n_train, n_eval)]


# -- the hard benchmark stream ---------------------------------------------------------
# Eleven tasks; see `hard_stream` for the list and the rule that decides each label, and
# the module docstring for what the stream is for.

Rng = random.Random


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


# -- graded reviews: the label counts the favourable judgments among a fixed number -----
_H_GOOD = ["excellent", "superb", "wonderful", "impressive", "lovely", "first-rate",
           "outstanding", "great", "fantastic", "spot on"]
_H_BAD = ["awful", "disappointing", "dreadful", "poor", "frustrating", "terrible", "shoddy",
          "subpar", "a letdown", "a mess"]
_H_NEGATORS = ["anything but", "far from", "not at all", "by no means", "never"]
RATINGS = ["1 star", "2 stars", "3 stars", "4 stars", "5 stars"]
MOODS = ["negative", "mixed", "positive"]


@dataclass(frozen=True)
class ReviewDomain:
    """The vocabulary of one review domain; `{a}` in the implicit judgments is the aspect."""

    aspects: list[str]
    implicit_good: list[str]
    implicit_bad: list[str]
    fillers: list[str]  # neutral sentences
    outside: list[str]  # things that are not the reviewed item (their praise does not count)
    tail: list[str] = field(default_factory=list)  # neutral padding for long reviews


_SHARED_GOOD = ["I have nothing but praise for {a}", "{a} {be} worth every penny"]
_SHARED_BAD = ["{a} {be} not worth half the price", "we complained about {a} twice"]

HOTEL = ReviewDomain(
    aspects=["the room", "the bed", "the breakfast", "the front desk", "the pool", "the wifi",
             "the location", "the shower", "the parking", "the restaurant downstairs",
             "the housekeeping", "the view"],
    implicit_good=[*_SHARED_GOOD, "we would book {a} again without a second thought",
                   "{a} made the whole stay feel effortless"],
    implicit_bad=[*_SHARED_BAD, "{a} is the reason we checked out early",
                  "I would warn anyone about {a}"],
    fillers=["We stayed for three nights in early spring.", "I travelled with my sister.",
             "The hotel is a short walk from the main station.",
             "We arrived on a Tuesday afternoon.", "Our room was on the fourth floor.",
             "The building used to be a textile warehouse.",
             "We booked through the hotel's own website.",
             "Most guests seemed to be on business trips.",
             "We paid for the room in advance.",
             "The tram stop is right outside the entrance."],
    outside=["the flight there", "the weather", "the taxi from the airport",
             "the museum we visited", "the train home", "the city's traffic"],
    tail=["On the first day we walked along the river and visited the cathedral.",
          "The old town has narrow streets, small squares and a covered market.",
          "We spent one afternoon at the botanical garden on the north side of the city.",
          "My sister wanted to see the modern art museum, so we queued for about an hour.",
          "In the evenings we usually looked for a quiet place to eat near the harbour.",
          "The city is easy to explore on foot, although some of the hills are steep.",
          "There is a ferry to the islands every morning at nine and every afternoon at four.",
          "We bought a three-day transport card, which covered the trams and the buses.",
          "On the second day it rained, so we stayed indoors and read for most of the morning.",
          "Our friends had recommended a walking tour that starts at the clock tower.",
          "We took a day trip to a village in the hills, about an hour away by bus.",
          "The local market sells cheese, olives, honey and bread from the region.",
          "We left on the last morning after an early coffee at the station.",
          "Next year we are thinking of visiting the coast further to the south.",
          "I kept a short diary of the trip, which is where most of these notes come from.",
          "Prices in the centre are higher than in the neighbourhoods across the river."],
)
RESTAURANT = ReviewDomain(
    aspects=["the starter", "the main course", "the dessert", "the waiter", "the wine list",
             "the bread", "the portions", "the music", "the table", "the coffee", "the bill",
             "the booking process"],
    implicit_good=[*_SHARED_GOOD, "I would order {a} again tomorrow", "{a} made the evening"],
    implicit_bad=[*_SHARED_BAD, "I sent {a} back to the kitchen", "{a} nearly ruined the evening"],
    fillers=["We went on a Friday evening.", "We were a group of four.",
             "The place opened last autumn.", "It sits on a corner near the river.",
             "We had booked a table a week ahead.", "The menu changes with the seasons.",
             "We took the tram there.", "It was my cousin's birthday."],
    outside=["the traffic on the way", "the weather", "the cinema afterwards",
             "the parking garage next door", "the concert we went to later"],
)
APP = ReviewDomain(
    aspects=["the interface", "the sync", "the notifications", "the battery use",
             "the search", "the offline mode", "the dark theme", "the customer support",
             "the subscription price", "the widgets", "the login", "the backups"],
    implicit_good=[*_SHARED_GOOD, "{a} save{s} me time every day", "I would pay for {a} twice over"],
    implicit_bad=[*_SHARED_BAD, "{a} waste{s} my time every day",
                  "I uninstalled it once because of {a}"],
    fillers=["I use it on my phone and my tablet.", "I have had it since version two.",
             "I mostly use it on the commute.", "My whole team switched to it last year.",
             "I installed it after a friend's advice.", "The latest update came out on Monday."],
    outside=["my phone's camera", "my mobile network", "the weather app", "my old laptop",
             "the app store itself"],
)
GADGET = ReviewDomain(
    aspects=["the battery", "the screen", "the speaker", "the camera", "the charger",
             "the keyboard", "the hinge", "the fan", "the trackpad", "the microphone"],
    implicit_good=[*_SHARED_GOOD, "I would buy it again just for {a}"],
    implicit_bad=[*_SHARED_BAD, "I nearly returned it because of {a}"],
    fillers=["I bought it for work.", "It arrived two days after I ordered it.",
             "I have used it for about a month.", "It replaced a five-year-old model."],
    outside=["the delivery van", "my old phone", "the shop's website", "my desk lamp"],
)


# how a judgment is worded: plainly, implicitly (no judging adjective), or with both a
# favourable and an unfavourable word where the wording decides (negation, a reversal)
_FORMS = ["plain", "implicit", "negated", "expected", "seemed", "nobody"]
_FORM_WEIGHTS = [40, 20, 15, 10, 10, 5]


def judgment(rng: Rng, dom: ReviewDomain, aspect: str, good: bool) -> str:
    """One sentence that judges `aspect` favourably (`good`) or not: plainly, as a negated
    opposite, as a reversed expectation, or implicitly (no judging adjective)."""
    yes, no = rng.choice(_H_GOOD), rng.choice(_H_BAD)
    right, wrong = (yes, no) if good else (no, yes)
    plural = aspect.endswith("s")
    be, it = ("were", "they") if plural else ("was", "it")
    form = rng.choices(_FORMS, _FORM_WEIGHTS)[0]
    if form == "plain":
        return f"{_cap(aspect)} {be} {right}."
    if form == "negated":
        return f"{_cap(aspect)} {be} {rng.choice(_H_NEGATORS)} {wrong}."
    if form == "expected":
        return f"I expected {aspect} to be {wrong}, but {it} {be} {right}."
    if form == "seemed":
        seemed = rng.choice(["looked", "sounded", "seemed"])
        return f"{_cap(aspect)} {seemed} {wrong} at first, yet {it} turned out {right}."
    if form == "nobody":
        return f"Nobody could call {aspect} {wrong}."
    implicit = rng.choice(dom.implicit_good if good else dom.implicit_bad)
    return _cap(implicit.format(a=aspect, be=be, s="" if plural else "s")) + "."


def _outside(rng: Rng, dom: ReviewDomain) -> str:
    thing, adj = rng.choice(dom.outside), rng.choice(_H_GOOD + _H_BAD)
    return rng.choice([f"{_cap(thing)} was {adj}, but that is not what this review is about.",
                       f"Unrelated, but {thing} was {adj}.",
                       f"{_cap(thing)} was {adj}, which has nothing to do with my score."])


def review_sentences(rng: Rng, dom: ReviewDomain, n_good: int, n: int, fillers: int) -> list[str]:
    """`n` judgments of different aspects (`n_good` favourable), `fillers` neutral sentences
    and, in some reviews, one judgment of something outside the item, in random order."""
    aspects = rng.sample(dom.aspects, n)
    marks = [True] * n_good + [False] * (n - n_good)
    rng.shuffle(marks)
    parts = [judgment(rng, dom, a, g) for a, g in zip(aspects, marks, strict=True)]
    parts += rng.sample(dom.fillers, fillers)
    if rng.random() < 0.25:
        parts.append(_outside(rng, dom))
    rng.shuffle(parts)
    return parts


# a closing verdict, graded like the judgments it sums up (the same in every domain; `{x}`
# is the domain's word for what was reviewed); neighbouring grades share their words
_VERDICTS = [
    ["Avoid this {x}.", "The worst {x} I have had in years.", "A complete waste of money.",
     "I would not go back, not even for free."],
    ["Mostly a disappointment.", "On balance I would not go back.", "Below what I hoped for.",
     "More bad than good."],
    ["Half good, half bad.", "A mixed bag.", "Good in parts, poor in others.",
     "Neither good nor bad."],
    ["Mostly a pleasure.", "On balance I would go back.", "Better than I hoped for.",
     "More good than bad."],
    ["Do not miss this {x}.", "The best {x} I have had in years.", "Worth every penny.",
     "I would go back, even at twice the price."],
]


def rating_of(dom: ReviewDomain, noun: str, fillers: tuple[int, int], verdict: float,
              long_tail: bool = False) -> Gen:
    """`k stars`: k - 1 of four judgments are favourable; a share (`verdict`) of the reviews
    also close with a verdict of that grade."""
    def gen(rng: Rng, label: str) -> str:
        grade = RATINGS.index(label)
        parts = review_sentences(rng, dom, grade, 4, rng.randint(*fillers))
        if rng.random() < verdict:
            parts.append(rng.choice(_VERDICTS[grade]).format(x=noun))
        if long_tail:  # the story of the trip: neutral, after the judgments
            parts += rng.sample(dom.tail, rng.randint(9, 12))
        return " ".join(parts)
    return gen


def mood_of(dom: ReviewDomain, noun: str, verdict: float) -> Gen:
    """`negative`: none of three judgments is favourable; `positive`: all; `mixed`: the rest;
    a share (`verdict`) of the reviews close with a verdict that says so."""
    def gen(rng: Rng, label: str) -> str:
        n_good = {"negative": 0, "positive": 3}.get(label, rng.choice([1, 2]))
        parts = review_sentences(rng, dom, n_good, 3, rng.randint(0, 1))
        if rng.random() < verdict:
            parts.append(rng.choice(_VERDICTS[2 * MOODS.index(label)]).format(x=noun))
        return " ".join(parts)
    return gen


# -- topics: the section with the most keywords wins (three against at most two) --------
TOPIC_BANK: dict[str, list[str]] = {
    "sports": ["the striker", "the coach", "the league table", "a penalty shootout",
               "the transfer window", "the stadium", "the championship", "the goalkeeper",
               "the relay team", "the marathon", "the referee", "the season opener"],
    "politics": ["the senate", "the coalition", "the minister", "the ballot", "a new bill",
                 "the opposition leader", "the campaign", "the parliament", "a referendum",
                 "the governor", "the cabinet", "the budget"],
    "business": ["the quarterly earnings", "the merger", "the shareholders", "the stock price",
                 "the central bank", "the supply chain", "the retail sales", "a takeover bid",
                 "the profit warning", "the interest rates", "the chief executive", "the budget"],
    "technology": ["the software update", "the smartphone", "the chip maker", "the data centre",
                   "a security patch", "the app store", "the cloud service", "the operating system",
                   "the search engine", "the broadband network", "a cyberattack", "the data"],
    "science": ["the telescope", "the researchers", "a new species", "the particle accelerator",
                "the fossil", "the peer review", "the laboratory", "the genome", "the experiment",
                "the comet", "the microscope", "the data"],
    "health": ["the hospital", "the vaccine", "the nurses", "the clinical trial", "the flu season",
               "the patients", "the diet", "the surgeon", "the waiting lists", "the pharmacy",
               "the blood pressure", "the doctors"],
    "travel": ["the airline", "the passport queue", "the cruise ship", "the tourists",
               "the beach resort", "the rail pass", "the boutique hotel", "the flight delays",
               "the visa rules", "the backpackers", "the old town", "the ski resort"],
    "food": ["the chef", "the recipe", "the bakery", "the tasting menu", "the farmers market",
             "the vineyard", "the street food", "the sourdough", "the olive oil", "the cookbook",
             "the food critic", "the festival"],
    "arts": ["the gallery", "the orchestra", "the novelist", "the exhibition", "the film festival",
             "the theatre", "the sculptor", "the opera", "the poetry prize", "the ballet",
             "the museum", "the festival"],
    "education": ["the teachers", "the curriculum", "the university", "the exam results",
                  "the school board", "the students", "the tuition fees", "the kindergarten",
                  "the scholarship", "the classroom", "the graduates", "the budget"],
    "environment": ["the wildfire", "the emissions", "the rainforest", "the coral reef",
                    "the recycling scheme", "the solar farm", "the drought", "the glacier",
                    "the national park", "the air pollution", "the wind turbines", "the floods"],
    "crime": ["the police", "the detectives", "the burglary", "the court", "the suspect",
              "the jury", "the robbery", "the fraud case", "the prison", "the witness",
              "the arrest", "the smuggling ring"],
    "gaming": ["the console", "the boss fight", "the patch notes", "the speedrun",
               "the multiplayer lobby", "the controller", "the loot boxes", "the open-world map",
               "the esports final", "the save file", "the graphics card", "the game studio"],
    "parenting": ["the toddler", "the nap schedule", "the school run", "the baby monitor",
                  "the teething", "the playdate", "the pushchair", "the bedtime routine",
                  "the nursery", "the packed lunches", "the screen time rules", "the babysitter"],
    "cars": ["the gearbox", "the tyres", "the electric car", "the dashboard light",
             "the mechanic", "the test drive", "the brake pads", "the fuel economy",
             "the roof rack", "the car insurance", "the clutch", "the oil change"],
}
# the sections whose keywords turn up as a minority in another section's texts
TOPIC_NEIGHBOURS: dict[str, list[str]] = {
    "sports": ["business", "health", "travel"], "politics": ["crime", "education", "business"],
    "business": ["technology", "politics", "food"], "technology": ["science", "business", "gaming"],
    "science": ["health", "environment", "technology"], "health": ["science", "food", "parenting"],
    "travel": ["environment", "food", "sports"], "food": ["travel", "health", "arts"],
    "arts": ["education", "food", "travel"], "education": ["politics", "arts", "parenting"],
    "environment": ["science", "politics", "travel"], "crime": ["politics", "business", "cars"],
    "gaming": ["technology", "arts", "parenting"], "parenting": ["health", "education", "food"],
    "cars": ["technology", "environment", "travel"],
}
NEWS_SECTIONS = ["sports", "politics", "business", "technology", "science", "health", "travel",
                 "food", "arts", "education", "environment", "crime"]
FORUM_BOARDS = ["sports", "technology", "health", "food", "travel", "gaming", "parenting", "cars"]

_NEWS_TITLES = ["{k}: what we know so far", "Why {k} matters now", "The week in review: {k}",
                "{k} under scrutiny", "Inside {k}", "Five questions about {k}",
                "{k} and the months ahead", "A closer look at {k}"]
_NEWS_LINES = ["{k} was at the centre of attention this week.",
               "Reports about {k} drew strong reactions.", "Critics compared {k} with {j}.",
               "A spokesperson said {k} would be reviewed.",
               "Questions remain over {k} and {j}.", "{k} made headlines again on {day}.",
               "Few expected {k} to change so quickly.", "Analysts linked {k} to {j}.",
               "Readers wrote in about {k}.", "The debate over {k} is far from settled.",
               "Officials met on {day} to discuss {k} and {j}."]
_FORUM_LINES = ["anyone else dealing with {k} lately?", "quick question about {k} and {j}.",
                "rant incoming: {k} again.", "so {k} finally happened, thoughts?",
                "need advice on {k}, and also {j}.", "update on {k}: still no luck.",
                "is it just me or is {k} getting worse?", "shoutout to everyone who helped with {k}.",
                "been reading about {k} all {day}.", "tips for {k} welcome!"]
_DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]


def _keywords(rng: Rng, label: str, labels: list[str]) -> list[str]:
    """Three keywords of `label` and two of a neighbouring section, shuffled."""
    own = rng.sample(TOPIC_BANK[label], 3)
    near = [n for n in TOPIC_NEIGHBOURS[label] if n != label]
    other = rng.choice(near)
    bank = [k for k in TOPIC_BANK[other] if k not in TOPIC_BANK[label]]
    words = own + rng.sample(bank, 2)
    rng.shuffle(words)
    return words


def _fill_lines(rng: Rng, lines: list[str], words: list[str]) -> list[str]:
    out, i = [], 0
    while i < len(words):
        line = rng.choice(lines)
        pair = "{j}" in line and i + 1 < len(words)
        if "{j}" in line and not pair:
            continue
        out.append(line.format(k=words[i], j=words[i + 1] if pair else "", day=rng.choice(_DAYS)))
        i += 2 if pair else 1
    return [_cap(s) for s in out]


def news_sample(rng: Rng, label: str) -> str:
    words = _keywords(rng, label, NEWS_SECTIONS)
    title = _cap(rng.choice(_NEWS_TITLES).format(k=words[0]))
    return f"Title: {title} Text: " + " ".join(_fill_lines(rng, _NEWS_LINES, words[1:]))


def forum_sample(rng: Rng, label: str) -> str:
    words = _keywords(rng, label, FORUM_BOARDS)
    return " ".join(_fill_lines(rng, _FORUM_LINES, words)).lower()


# -- incident reports: one report format, two questions ----------------------------------
COMPONENTS = ["database", "network", "payments", "login", "email", "storage", "search",
              "mobile app"]
# what an engineer finds as the cause (named by its parts, rarely by the component's name)
_CAUSES: dict[str, list[str]] = {
    "database": ["a schema migration that locked the orders table",
                 "the primary replica running out of connections",
                 "replication lag between the primary and its replicas",
                 "a slow query that did a full table scan"],
    "network": ["a misconfigured firewall rule", "packet loss on a core switch",
                "a DNS record that pointed at the old load balancer",
                "a routing change at the upstream provider"],
    "payments": ["an expired key for the card processor", "the payment gateway rejecting refunds",
                 "a currency rounding bug in the invoicing job",
                 "the fraud filter flagging every card"],
    "login": ["the single sign-on certificate expiring", "a bug in password reset tokens",
              "the session service dropping cookies", "two-factor codes being sent twice"],
    "email": ["the mail relay being put on a spam blocklist", "a full outbound mail queue",
              "a broken template for newsletters", "bounced messages not being retried"],
    "storage": ["a disk filling up on the file servers", "an object bucket with wrong permissions",
                "the backup job deleting old snapshots early", "a corrupted volume after a reboot"],
    "search": ["a stale search index", "the indexer crashing on long product titles",
               "a ranking change that buried new items", "the autocomplete cache never expiring"],
    "mobile app": ["an app release with a crash on older phones",
                   "push notifications failing on the new app version",
                   "the app store build pointing at a test server",
                   "the offline cache of the app growing without limit"],
}
# what users see (it may point at another component than the cause)
_SYMPTOMS: dict[str, list[str]] = {
    "database": ["order history pages time out", "saved carts come back empty"],
    "network": ["requests drop now and then", "pages load halfway and stop"],
    "payments": ["card payments are declined", "refunds do not go through"],
    "login": ["people cannot sign in", "users are logged out every few minutes"],
    "email": ["order confirmations never arrive", "newsletters go out blank"],
    "storage": ["uploaded files disappear", "profile pictures do not load"],
    "search": ["search shows items that are sold out", "the search box returns nothing"],
    "mobile app": ["the phone app closes on start", "the app shows yesterday's prices"],
}
_CAUSE_LEADS = ["The cause was traced to {c}.", "After some digging we found {c}.",
                "Root cause: {c}.", "The investigation pointed to {c}.",
                "It turned out to be {c}."]
_SYMPTOM_LEADS = ["Users report that {s}.", "Since this morning {s}.", "Support says {s}.",
                  "We also see that {s}."]
# severity: who is affected (0-2) plus how badly (0-3); 0-1 low, 2 medium, 3 high, 4-5 critical
SEVERITIES = ["low", "medium", "high", "critical"]
_SCOPE = [["a single user reported it", "it affects one test account", "only one customer saw it"],
          ["one office is affected", "a single team is affected", "customers in one region see it"],
          ["every customer is affected", "all users in all regions see it",
           "the whole customer base is hit"]]
_IMPACT = [["it is a cosmetic glitch with a misaligned label", "a tooltip shows a typo",
            "the colours of one button are wrong"],
           ["pages are slower than usual but work", "some requests need a retry",
            "it works, with a delay of a few seconds"],
           ["the feature does not work at all", "nobody can complete the action",
            "the page is completely unavailable"],
           ["customer data was lost", "private data was exposed to other users",
            "records were deleted and cannot be restored"]]
_SEVERITY_SCORES = {"low": [(0, 0), (0, 1), (1, 0)], "medium": [(0, 2), (1, 1), (2, 0)],
                    "high": [(0, 3), (1, 2), (2, 1)], "critical": [(1, 3), (2, 2), (2, 3)]}
_REPORT_TITLES = ["Problem with {x}", "Ticket about {x}", "Incident: {x}", "Report on {x}",
                  "Follow-up on {x}", "{x} issue"]
_REPORT_FILLERS = ["The on-call engineer was paged at 09:40.", "The ticket was opened by support.",
                   "Nothing was deployed in the hour before.", "The dashboards were checked first.",
                   "A status page entry is being drafted.", "The team lead has been informed."]
_REPORT_TAIL = [
    "Environment: production, cluster eu-west-2, build {n}.",
    "Timeline: first alert at 09:{m}, acknowledged at 09:{m2}, mitigation started at 10:{m}.",
    "Log excerpt: WARN worker-{n} retrying job {n2} after timeout (attempt 3 of 5).",
    "Log excerpt: INFO scheduler-{n} heartbeat ok, queue depth {n2}.",
    "Steps tried so far: restarted two worker pods, cleared the local cache, re-ran the smoke tests.",
    "Monitoring links were added to the ticket for the last twenty-four hours of metrics.",
    "Related tickets from the same week were linked for reference.",
    "The runbook for this service was followed up to step four.",
    "A post-incident review will be scheduled within five working days.",
    "Please keep updates in this ticket rather than in chat, so the timeline stays complete.",
    "Attached: two screenshots, the browser console output and a network trace.",
    "The affected service runs on {n} replicas behind the shared load balancer.",
    "Configuration was compared with the last known good release and no drift was found.",
    "Next update expected within the hour or sooner if anything changes.",
]


def _report(rng: Rng, title_x: str, head: list[str]) -> str:
    """A ticket: a title, the deciding sentences among fillers, then a long technical tail."""
    head = head + rng.sample(_REPORT_FILLERS, rng.randint(1, 2))
    rng.shuffle(head)
    tail = [t.format(n=rng.randint(10, 99), n2=rng.randint(100, 999), m=rng.randint(10, 29),
                     m2=rng.randint(30, 59)) for t in rng.sample(_REPORT_TAIL, rng.randint(8, 11))]
    title = _cap(rng.choice(_REPORT_TITLES).format(x=title_x))
    return f"Title: {title} Text: " + " ".join(head + tail)


# the reporter's own summary, in a share of the tickets: graded like the severity it sums up
_SEVERITY_SUMMARIES = [
    ["In short, a minor annoyance.", "It can wait for the next sprint.", "Nothing is blocked."],
    ["In short, it slows people down.", "It should be fixed this week.", "Work goes on, slowly."],
    ["In short, it blocks real work.", "It needs a fix today.", "Several people are stuck."],
    ["In short, this is an emergency.", "It needs everyone on it now.", "The business is at risk."],
]


def severity_sample(rng: Rng, label: str) -> str:
    """The severity matrix: who is affected (0-2) plus how badly (0-3)."""
    scope, impact = rng.choice(_SEVERITY_SCORES[label])
    comp = rng.choice(COMPONENTS)
    head = [f"{_cap(rng.choice(_SCOPE[scope]))}.", f"{_cap(rng.choice(_IMPACT[impact]))}.",
            rng.choice(_SYMPTOM_LEADS).format(s=rng.choice(_SYMPTOMS[comp]))]
    if rng.random() < 0.5:
        head.append(rng.choice(_SEVERITY_SUMMARIES[SEVERITIES.index(label)]))
    return _report(rng, rng.choice([comp, "the site", "the shop", "checkout"]), head)


def component_sample(rng: Rng, label: str) -> str:
    """The component of the cause, whatever the symptoms point at."""
    others = rng.sample([c for c in COMPONENTS if c != label], 2)
    seen = [rng.choice([label, others[0]]), others[1]]
    head = [rng.choice(_SYMPTOM_LEADS).format(s=rng.choice(_SYMPTOMS[c])) for c in seen]
    head.append(rng.choice(_CAUSE_LEADS).format(c=rng.choice(_CAUSES[label])))
    return _report(rng, rng.choice([*others, "the site", "the shop"]), head)


# -- sentence pairs: one event described twice -------------------------------------------
# Both sentences describe the same event. The second follows from the first when it only
# drops details, generalises (a hypernym, "someone", "at least N") or rewords (a synonym,
# the passive); it contradicts it when a detail the first states is changed (the number,
# the day, the place) or the event is denied; otherwise (a detail the first does not
# state, a more specific object or number) it is neither.
@dataclass(frozen=True)
class Act:
    past: str  # the past tense, also the participle
    base: str
    synonym: str  # past tense
    objects: list[tuple[str, str]]  # (plural noun, a generalisation)
    places: list[str]
    synonym_participle: str = ""  # when it differs from the past tense


@dataclass(frozen=True)
class Inventory:
    agents: list[str]
    acts: list[Act]
    times: list[str]
    counts: list[str]  # counts[i] is the number i + 2
    reasons: list[str]  # added details the first sentence never states
    someone: str


_NUMBER_WORDS = ["two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
                 "eleven", "twelve"]
EVERYDAY = Inventory(
    agents=["Maria", "Tom", "Aisha", "Kenji", "Lucia", "Omar", "Greta", "Samuel", "Priya",
            "Jonas", "Elena", "Marcus"],
    acts=[Act("bought", "buy", "purchased", [("apples", "fruit"), ("lemons", "fruit"),
                                              ("melons", "fruit")],
              ["at the market", "at the supermarket", "at the corner shop"]),
          Act("baked", "bake", "made", [("loaves of bread", "food"), ("cakes", "food"),
                                        ("pies", "food")],
              ["in the kitchen", "at the bakery", "at the village hall"]),
          Act("planted", "plant", "put in", [("rose bushes", "plants"), ("apple trees", "trees"),
                                             ("tulip bulbs", "flowers")],
              ["in the garden", "in the park", "behind the school"]),
          Act("washed", "wash", "cleaned", [("cars", "vehicles"), ("windows", "things"),
                                            ("dogs", "animals")],
              ["in the driveway", "at the community centre", "behind the shop"]),
          Act("adopted", "adopt", "took in", [("kittens", "pets"), ("puppies", "pets"),
                                              ("rabbits", "animals")],
              ["from the shelter", "from a neighbour", "from the rescue centre"], "taken in"),
          Act("repaired", "repair", "fixed", [("bicycles", "things"), ("radios", "devices"),
                                              ("laptops", "devices")],
              ["in the garage", "at the workshop", "at the library"]),
          Act("delivered", "deliver", "dropped off", [("parcels", "items"), ("letters", "mail"),
                                                      ("boxes", "items")],
              ["at the office", "at the hospital", "at the town hall"]),
          Act("cooked", "cook", "prepared", [("pots of soup", "food"), ("trays of pasta", "food"),
                                             ("pans of rice", "food")],
              ["at the camp", "at the community hall", "in the school canteen"])],
    times=["on Monday", "on Tuesday", "on Wednesday", "on Thursday", "on Friday",
           "on Saturday", "on Sunday"],
    counts=_NUMBER_WORDS,
    reasons=["for a neighbour's party", "as a birthday surprise", "because it was cheap",
             "for the first time", "with help from a friend", "before lunch"],
    someone="someone",
)
CIVIC = Inventory(
    agents=["the city council", "the mayor", "the school board", "the transport agency",
            "the health ministry", "the county", "the port authority", "the university"],
    acts=[Act("approved", "approve", "signed off on",
              [("new bus routes", "transport plans"), ("bike lanes", "transport plans"),
               ("housing projects", "building plans")],
              ["at a public meeting", "in a closed session", "in an online vote"]),
          Act("opened", "open", "inaugurated",
              [("new clinics", "facilities"), ("libraries", "facilities"),
               ("sports halls", "venues")],
              ["in the north district", "near the harbour", "in the old town"]),
          Act("hired", "hire", "took on",
              [("nurses", "staff"), ("engineers", "staff"), ("bus drivers", "workers")],
              ["for the winter", "for the new depot", "for the east side"], "taken on"),
          Act("closed", "close", "shut",
              [("post offices", "offices"), ("branch schools", "schools"),
               ("car parks", "sites")],
              ["in the suburbs", "along the river", "in the centre"]),
          Act("repaired", "repair", "fixed",
              [("bridges", "structures"), ("tram lines", "lines"), ("water mains", "pipes")],
              ["in the south district", "near the station", "across the county"]),
          Act("bought", "buy", "purchased",
              [("electric buses", "vehicles"), ("snow ploughs", "vehicles"),
               ("ambulances", "vehicles")],
              ["from a local supplier", "from a German maker", "through a joint tender"])],
    times=["in January", "in March", "in May", "in July", "in September", "in November"],
    counts=[str(n) for n in (12, 15, 18, 20, 24, 30, 36, 40, 45, 50, 60)],
    reasons=["after a long debate", "to cut waiting times", "despite protests",
             "as part of a ten-year plan", "with money from a national fund",
             "for the first time in a decade"],
    someone="the authorities",
)
WORKPLACE = Inventory(
    agents=["the manager", "Dana from accounting", "the night shift", "the new intern",
            "the sales team", "our supplier", "the IT department", "the caretaker"],
    acts=[Act("ordered", "order", "requested", [("laptops", "equipment"), ("desks", "furniture"),
                                                ("printers", "equipment")],
              ["for the second floor", "for the branch office", "for the meeting rooms"]),
          Act("cancelled", "cancel", "called off", [("meetings", "appointments"),
                                                    ("site visits", "trips"),
                                                    ("training sessions", "sessions")],
              ["in the Berlin office", "at headquarters", "for the whole region"]),
          Act("shipped", "ship", "sent out", [("pallets", "goods"), ("crates", "goods"),
                                              ("sample kits", "packages")],
              ["to the Lyon warehouse", "to a client in Oslo", "to the trade fair"]),
          Act("reviewed", "review", "went through", [("contracts", "documents"),
                                                     ("invoices", "documents"),
                                                     ("job applications", "files")],
              ["in the boardroom", "from home", "at the client's office"], "gone through"),
          Act("installed", "install", "set up", [("printers", "machines"), ("routers", "devices"),
                                                 ("coffee machines", "machines")],
              ["in the lobby", "on every floor", "in the warehouse"])],
    times=["on Monday", "on Tuesday", "on Wednesday", "on Thursday", "on Friday"],
    counts=_NUMBER_WORDS,
    reasons=["without asking anyone", "to save money", "at the last minute",
             "because of the audit", "for the new project", "on the director's orders"],
    someone="somebody",
)


@dataclass
class _Event:
    agent: str
    act: Act
    obj: tuple[str, str]
    count: int | None  # index into the inventory's counts; None: "some"
    place: str | None
    time: str | None
    generic: bool = False  # the object by its generalisation
    reason: str | None = None
    # wording only (never the meaning)
    synonym: bool = False
    passive: bool = False
    front: bool = False


def _event(rng: Rng, inv: Inventory) -> _Event:
    act = rng.choice(inv.acts)
    return _Event(rng.choice(inv.agents), act, rng.choice(act.objects),
                  rng.randrange(1, len(inv.counts)),
                  rng.choice(act.places) if rng.random() < 0.8 else None,
                  rng.choice(inv.times) if rng.random() < 0.8 else None)


def _say(inv: Inventory, ev: _Event, deny: bool = False, qty: str | None = None) -> str:
    """`ev` as one sentence (`deny`: the event did not happen); `qty` overrides the count."""
    obj = ev.obj[1] if ev.generic else ev.obj[0]
    if qty is None:
        qty = "some" if ev.count is None or ev.generic else inv.counts[ev.count]
    verb = ev.act.synonym if ev.synonym else ev.act.past
    participle = (ev.act.synonym_participle or verb) if ev.synonym else verb
    where = [x for x in (ev.place, None if ev.front else ev.time, ev.reason) if x]
    if deny:
        base = ev.act.synonym if ev.synonym else ev.act.base
        core = (f"{ev.agent} did not {base} any {obj}" if not ev.synonym
                else f"{ev.agent} never {verb} any {obj}")
    elif ev.passive and not ev.generic:
        core = f"{qty} {obj} were {participle} by {ev.agent}"
    else:
        core = f"{ev.agent} {verb} {qty} {obj}"
    text = " ".join([core, *where])
    if ev.front and ev.time:
        text = f"{ev.time}, {text}"
    return _cap(text) + "."


def _reword(rng: Rng, ev: _Event, at_least_one: bool) -> _Event:
    """A copy of `ev` worded differently: a synonym, the passive, the time in front."""
    while True:
        new = _Event(**{**ev.__dict__, "synonym": rng.random() < 0.5,
                        "passive": rng.random() < 0.35, "front": rng.random() < 0.35})
        if not at_least_one or new.synonym or new.passive or (new.front and new.time):
            return new


def _weaker(rng: Rng, inv: Inventory, ev: _Event) -> tuple[_Event, str | None]:
    """What `ev` entails: details dropped or generalised (at least one), maybe reworded."""
    while True:
        new = _reword(rng, ev, at_least_one=False)
        qty = None
        ops = rng.sample(["place", "time", "count", "object", "agent"], rng.randint(1, 2))
        changed = False
        if "place" in ops and new.place:
            new.place, changed = None, True
        if "time" in ops and new.time:
            new.time, changed = None, True
        if "count" in ops and new.count is not None:
            qty = rng.choice(["some", "several", f"at least {inv.counts[new.count - 1]}"])
            changed = True
        if "object" in ops:
            new.generic, changed = True, True
        if "agent" in ops:
            new.agent, changed = inv.someone, True
        if changed:
            return new, qty


def _add_detail(rng: Rng, inv: Inventory, ev: _Event) -> tuple[_Event, _Event]:
    """(first, second): the second states something the first does not."""
    first = _Event(**ev.__dict__)
    second = _reword(rng, ev, at_least_one=False)
    kind = rng.choices(["reason", "slot", "object", "count", "agent"], [4, 2, 2, 1, 1])[0]
    if kind == "reason":
        second.reason = rng.choice(inv.reasons)
    elif kind == "slot":
        if rng.random() < 0.5:
            first.place, second.place = None, second.place or rng.choice(ev.act.places)
        else:
            first.time, second.time = None, second.time or rng.choice(inv.times)
    elif kind == "object":
        first.generic, second.generic = True, False
    elif kind == "count":
        first.count = None
        second.count = ev.count if ev.count is not None else 1
    else:
        first.agent = inv.someone
    return first, second


def _change_detail(rng: Rng, inv: Inventory, ev: _Event) -> tuple[_Event, _Event, bool]:
    """(first, second, deny): the second changes a detail the first states, or denies it."""
    first = _Event(**ev.__dict__)
    second = _reword(rng, ev, at_least_one=False)
    kind = rng.choices(["count", "time", "place", "deny"], [2, 2, 2, 4])[0]
    if kind == "count":
        first.count = first.count if first.count is not None else 1
        second.count = rng.choice([i for i in range(len(inv.counts)) if i != first.count])
        second.generic = first.generic = False
    elif kind == "time":
        first.time = first.time or rng.choice(inv.times)
        second.time = rng.choice([t for t in inv.times if t != first.time])
    elif kind == "place":
        first.place = first.place or rng.choice(ev.act.places)
        second.place = rng.choice([p for p in ev.act.places if p != first.place])
    if kind != "deny" and rng.random() < 0.3:  # and maybe leaves another detail out
        if second.time and kind != "time":
            second.time = None
        elif second.place and kind != "place":
            second.place = None
    return first, second, kind == "deny"


def _pair(first: str, second: str) -> str:
    return f"Sentence 1: {first} Sentence 2: {second}"


def inference_of(inv: Inventory, labels: list[str]) -> Gen:
    """Three labels, named by `labels` in the order (follows, neither, contradicts)."""
    follows, _neither, contradicts = labels

    def gen(rng: Rng, label: str) -> str:
        ev = _event(rng, inv)
        if label == follows:
            second, qty = _weaker(rng, inv, ev)
            return _pair(_say(inv, ev), _say(inv, second, qty=qty))
        if label == contradicts:
            first, second, deny = _change_detail(rng, inv, ev)
            return _pair(_say(inv, first), _say(inv, second, deny=deny))
        first, second = _add_detail(rng, inv, ev)
        return _pair(_say(inv, first), _say(inv, second))
    return gen


PARAPHRASE = ["same meaning", "different meaning"]


def paraphrase_of(inv: Inventory) -> Gen:
    """`same meaning`: reworded only; `different meaning`: a detail changed, denied, left out
    or added."""
    def gen(rng: Rng, label: str) -> str:
        ev = _event(rng, inv)
        if label == PARAPHRASE[0]:
            return _pair(_say(inv, ev), _say(inv, _reword(rng, ev, at_least_one=True)))
        how = rng.random()
        if how < 0.6:
            first, second, deny = _change_detail(rng, inv, ev)
            return _pair(_say(inv, first), _say(inv, second, deny=deny))
        if how < 0.8:
            first, second = _add_detail(rng, inv, ev)
        else:
            second, qty = _weaker(rng, inv, ev)
            first = ev
            if qty is not None:
                return _pair(_say(inv, first), _say(inv, second, qty=qty))
        if rng.random() < 0.5:
            first, second = second, first
        return _pair(_say(inv, first), _say(inv, second))
    return gen


# -- the stream ----------------------------------------------------------------------------
NLI = ["entailment", "neutral", "contradiction"]
CLAIMS = ["supported", "not mentioned", "refuted"]

HARD_SPECS: list[Spec] = [
    ("hotel-ratings", "How many stars does this hotel review give?", RATINGS,
     rating_of(HOTEL, "hotel", (1, 2), 0.5, long_tail=True), "rating"),
    ("news-sections", "Which section of the paper does this article belong to?", NEWS_SECTIONS,
     news_sample, "topic"),
    ("everyday-inference", "Does the second sentence follow from the first, contradict it, or "
     "neither?", NLI, inference_of(EVERYDAY, NLI), "pair"),
    ("incident-severity", "How severe is the incident in this ticket?", SEVERITIES,
     severity_sample, "ticket"),
    ("gadget-sentiment", "Is this gadget review negative, mixed or positive?", MOODS,
     mood_of(GADGET, "gadget", 0.5), "rating"),
    ("office-paraphrase", "Do the two sentences mean the same?", PARAPHRASE,
     paraphrase_of(WORKPLACE), "pair"),
    ("restaurant-ratings", "How many stars does this restaurant review give?", RATINGS,
     rating_of(RESTAURANT, "restaurant", (1, 3), 0.5), "rating"),
    ("forum-boards", "Which board of the forum is this post for?", FORUM_BOARDS,
     forum_sample, "topic"),
    ("incident-component", "Which component caused the incident in this ticket?", COMPONENTS,
     component_sample, "ticket"),
    ("council-claims", "Is the claim in the second sentence supported by the first, refuted, "
     "or not mentioned?", CLAIMS, inference_of(CIVIC, CLAIMS), "pair"),
    ("app-ratings", "How many stars does this app review give?", RATINGS,
     rating_of(APP, "app", (0, 1), 0.5), "rating"),
]


def _make_unique(spec: Spec, rng: Rng, n_train: int, n_eval: int) -> dict[str, Any]:
    """A task message whose inputs are all different (so no eval input is a train input);
    the labels take turns, so every label has its share of both splits."""
    task_id, instruction, labels, gen, family = spec
    seen: set[str] = set()

    def split(n: int) -> list[dict[str, str]]:
        out = []
        for i in range(n):
            label = labels[i % len(labels)]
            for _ in range(1000):
                text = gen(rng, label)
                if text not in seen:
                    break
            else:
                raise ValueError(f"{task_id}: the templates ran out of distinct {label!r} inputs")
            seen.add(text)
            out.append({"input": text, "output": label})
        rng.shuffle(out)
        return out

    return {
        "schema": "synlearner.task/v1", "task_id": task_id, "kind": "classification",
        "instruction": instruction, "labels": labels, "train": split(n_train),
        "eval": split(n_eval), "metadata": {"family": family, "generator": "synlearner-hard/1"},
    }


def hard_stream(seed: int = 17, n_train: int = 600, n_eval: int = 200) -> list[dict[str, Any]]:
    """The eleven tasks of the hard benchmark stream in stream order, as task messages."""
    rng = random.Random(seed)
    return [_make_unique(spec, rng, n_train, n_eval) for spec in HARD_SPECS]


def hard_messages(seed: int = 17, n_train: int = 600, n_eval: int = 200) -> list[tuple[str, bytes]]:
    return [(m["task_id"], json.dumps(m).encode()) for m in hard_stream(seed, n_train, n_eval)]
