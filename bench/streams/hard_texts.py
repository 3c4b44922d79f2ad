"""The hard stream's topic and incident-report texts: news sections and forum boards whose
texts carry a minority of a neighbouring label's keywords, and one ticket format asked two
questions, severity and component (`hard.py` has the stream)."""

from __future__ import annotations

from synlearner.daemon.tools.demo import Rng, cap

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
    return [cap(s) for s in out]


def news_sample(rng: Rng, label: str) -> str:
    words = _keywords(rng, label, NEWS_SECTIONS)
    title = cap(rng.choice(_NEWS_TITLES).format(k=words[0]))
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
    title = cap(rng.choice(_REPORT_TITLES).format(x=title_x))
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
    head = [f"{cap(rng.choice(_SCOPE[scope]))}.", f"{cap(rng.choice(_IMPACT[impact]))}.",
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

