"""The hard stream's graded reviews: the label counts the favourable judgments among a fixed
number, each worded plainly, implicitly, negated or reversed (`hard.py` has the stream)."""

from __future__ import annotations

from dataclasses import dataclass, field

from synlearner.daemon.tools.demo import Gen, Rng, cap

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
        return f"{cap(aspect)} {be} {right}."
    if form == "negated":
        return f"{cap(aspect)} {be} {rng.choice(_H_NEGATORS)} {wrong}."
    if form == "expected":
        return f"I expected {aspect} to be {wrong}, but {it} {be} {right}."
    if form == "seemed":
        seemed = rng.choice(["looked", "sounded", "seemed"])
        return f"{cap(aspect)} {seemed} {wrong} at first, yet {it} turned out {right}."
    if form == "nobody":
        return f"Nobody could call {aspect} {wrong}."
    implicit = rng.choice(dom.implicit_good if good else dom.implicit_bad)
    return cap(implicit.format(a=aspect, be=be, s="" if plural else "s")) + "."


def _outside(rng: Rng, dom: ReviewDomain) -> str:
    thing, adj = rng.choice(dom.outside), rng.choice(_H_GOOD + _H_BAD)
    return rng.choice([f"{cap(thing)} was {adj}, but that is not what this review is about.",
                       f"Unrelated, but {thing} was {adj}.",
                       f"{cap(thing)} was {adj}, which has nothing to do with my score."])


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

