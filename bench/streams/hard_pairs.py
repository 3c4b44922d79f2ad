"""The hard stream's sentence pairs: one event described twice (`hard.py` has the stream).

Both sentences describe the same event. The second follows from the first when it only
drops details, generalises (a hypernym, "someone", "at least N") or rewords (a synonym,
the passive); it contradicts it when a detail the first states is changed (the number,
the day, the place) or the event is denied; otherwise (a detail the first does not
state, a more specific object or number) it is neither.
"""

from __future__ import annotations

from dataclasses import dataclass

from synlearner.daemon.tools.demo import Gen, Rng, cap


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
    return cap(text) + "."


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


