"""Generate ``long_conversations.json``: a hard, deterministic retrieval set.

Long multi-session chats between ten invented users and Clara, built to tell
retrieval designs apart the way real months of conversation do (issue 14):

- 18 dated sessions per user, ~25 turns each (450 turns per user), both speakers;
- a third of the turns are short generic ones ("What was it like?", "That's
  awesome!") that answer no question but sit close to every question in
  embedding space;
- recurring topics in near-duplicate phrasing (the weekly run, the same
  friends, cooking again), so ten similar turns compete for the top 10;
- events told in two turns: the fact ("I just got back from Porto with Tomas")
  and, after Clara's generic follow-up, the detail that only makes sense in
  context ("We surfed every morning and the grilled sardines were unreal");
- names, places and dates that a question repeats (lexical pull).

Questions (>= 800, gold = turn ids) in four categories:

- ``single-hop``: answered by one turn, paraphrased;
- ``multi-hop``: needs two turns (the event and its detail, or two events);
- ``temporal``: asks *when*, or is anchored in time ("in May 2025", "last
  May", "three months ago") among same-topic events of other months;
- ``open-domain``: asks about tastes or habits with little word overlap.

Every question is asked after the last session (``asked_at``), so the time
expressions resolve against that clock.  No LLM, no network: templates and a
seeded ``random.Random``, so the same file comes out on every machine.

``python bench/datasets/make_long_conversations.py [--out PATH] [--seed 14]``
"""

from __future__ import annotations

import argparse
import json
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

OUT = Path(__file__).with_name("long_conversations.json")
SEED = 14
SESSIONS = 18
ASKED_AT = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
FIRST_SESSION = datetime(2025, 3, 3, 19, 0, tzinfo=UTC)

USERS = [
    ("maya", "she", "her"),
    ("omar", "he", "his"),
    ("ingrid", "she", "her"),
    ("kenji", "he", "his"),
    ("lucia", "she", "her"),
    ("tobias", "he", "his"),
    ("amara", "she", "her"),
    ("rafael", "he", "his"),
    ("sienna", "she", "her"),
    ("dmitri", "he", "his"),
]

FRIENDS = [
    "Tomas", "Priya", "Jonah", "Elena", "Marcus", "Hana", "Felix", "Zoe", "Arjun",
    "Clara-Mae", "Noor", "Oskar", "Bea", "Samir", "Lotte", "Diego", "Yuki", "Ravi",
]  # fmt: skip
CITIES = [
    "Porto", "Lisbon", "Kyoto", "Edinburgh", "Valencia", "Krakow", "Reykjavik",
    "Marrakesh", "Split", "Bergen", "Seville", "Hanoi", "Tallinn", "Naples", "Ghent",
    "Ljubljana", "Cork", "Lyon", "Bruges", "Oaxaca",
]  # fmt: skip
TRIP_ACTIVITY = [
    "surfed every morning", "hiked up to the old fortress", "rented bikes and rode along the coast",
    "did a cooking class", "took a boat out to the islands", "went to three museums in one day",
    "walked the whole old town at night", "swam in a freezing lake",
]  # fmt: skip
TRIP_FOOD = [
    "grilled sardines", "ramen", "pastel de nata", "paella", "pierogi", "lamb tagine",
    "seafood risotto", "pho", "fresh oysters", "wood-fired pizza", "smoked salmon",
]  # fmt: skip
BOOKS = [
    ("The Overstory", "Richard Powers", "trees and the people who fight for them"),
    ("Piranesi", "Susanna Clarke", "a man living in an endless house of statues"),
    ("Project Hail Mary", "Andy Weir", "a teacher who wakes up alone on a spaceship"),
    ("Pachinko", "Min Jin Lee", "four generations of a Korean family in Japan"),
    ("Circe", "Madeline Miller", "the witch from the Odyssey telling her own story"),
    ("Educated", "Tara Westover", "a girl from a survivalist family who ends up at Cambridge"),
    ("The Remains of the Day", "Kazuo Ishiguro", "an old butler looking back on his life"),
    ("Sapiens", "Yuval Noah Harari", "how humans came to run the planet"),
    ("Station Eleven", "Emily St. John Mandel", "a travelling theatre after a pandemic"),
    ("Klara and the Sun", "Kazuo Ishiguro", "a robot friend watching a sick girl"),
    ("Braiding Sweetgrass", "Robin Wall Kimmerer", "plants, science and Indigenous wisdom"),
    ("The Name of the Wind", "Patrick Rothfuss", "a legendary wizard telling his life story"),
]  # fmt: skip
DISHES = [
    "a lemon drizzle cake", "homemade gnocchi", "a Thai green curry", "beef bourguignon",
    "sourdough bread", "vegetable dumplings", "a shakshuka", "a key lime pie",
    "mushroom risotto", "banana pancakes", "a lasagne", "chicken katsu",
]  # fmt: skip
BANDS = [
    ("Khruangbin", "the Roundhouse"), ("Phoebe Bridgers", "the O2 Academy"),
    ("Arctic Monkeys", "the Apollo"), ("Bonobo", "the Barbican"), ("Fontaines D.C.", "the Forum"),
    ("Little Simz", "the Brixton Academy"), ("The National", "the Royal Albert Hall"),
    ("Self Esteem", "the Usher Hall"), ("Jungle", "the Albert Hall"), ("Wet Leg", "the Leadmill"),
]  # fmt: skip
PURCHASES = [
    ("a second-hand road bike", "a shop near the canal"), ("a standing desk", "an office clearance sale"),
    ("a film camera", "a market stall"), ("a cast-iron pan", "the kitchen shop on the high street"),
    ("noise-cancelling headphones", "the airport"), ("a vintage record player", "a charity shop"),
    ("hiking boots", "the outdoor store"), ("a sewing machine", "a neighbour who was moving"),
    ("an e-reader", "a tech sale"), ("a houseplant the size of a small tree", "the garden centre"),
]  # fmt: skip
INJURIES = [
    ("ankle", "playing five-a-side football"), ("wrist", "at the climbing wall"),
    ("back", "moving a sofa"), ("knee", "on a long trail run"), ("shoulder", "at a volleyball game"),
    ("thumb", "chopping onions"), ("calf", "sprinting for a bus"),
]  # fmt: skip
WORK_PROJECTS = [
    "the new booking system", "a migration to the cloud", "the spring product launch",
    "a hospital scheduling app", "the annual budget report", "a redesign of the company website",
    "a warehouse inventory tool", "the customer survey analysis",
]  # fmt: skip
MANAGERS = ["Greta", "Howard", "Ines", "Pavel", "Suki", "Walter", "Rosa", "Bilal"]
COMPANIES = ["Spotify", "a small architecture firm", "the city council", "a biotech startup",
             "an animation studio", "a hospital", "a shipping company", "a university lab"]  # fmt: skip
COURSES = [
    ("pottery", "the community arts centre"), ("salsa", "a dance studio downtown"),
    ("Italian", "the language school"), ("life drawing", "the old library"),
    ("bouldering", "the climbing gym"), ("jazz piano", "a music school"),
    ("woodworking", "a makerspace"), ("swimming", "the leisure centre"),
]  # fmt: skip
PETS = [
    ("kitten", "Miso"), ("puppy", "Biscuit"), ("rabbit", "Clover"), ("parrot", "Mango"),
    ("tortoise", "Sheldon"), ("kitten", "Pepper"), ("puppy", "Juniper"), ("hamster", "Nugget"),
]  # fmt: skip
WEEKDAYS = ["Mondays", "Tuesdays", "Wednesdays", "Thursdays", "Saturdays"]

# Generic turns: they answer nothing, but they are a third of a real chat.
CLARA_FOLLOWUPS = [
    "What was it like?", "How did it go?", "Oh nice, tell me more!", "How was it?",
    "Wait, really? What happened?", "Ooh, how did that feel?", "And? How was it?",
]  # fmt: skip
CLARA_REACTIONS = [
    "That's awesome!", "That sounds amazing.", "Love that for you.", "Haha, classic.",
    "That's so lovely.", "Oh no, that sounds rough.", "Wow!", "That's great to hear.",
    "Sounds like a good time.", "I'm glad you enjoyed it.",
]  # fmt: skip
USER_SMALLTALK = [
    "Hey Clara!", "Hi again.", "Morning!", "Not much, just tired honestly.", "Pretty good, thanks.",
    "Haha yeah.", "Yeah, exactly.", "Anyway, I should get going.", "Talk later!", "Same as always.",
    "It's been a long week.", "Ok, good night!", "Thanks, you too.", "lol", "True.",
]  # fmt: skip
CLARA_SMALLTALK = [
    "Hey! How are you doing today?", "Good to hear from you. How's your week been?",
    "Hi! What's new?", "Night! Talk soon.", "Take care!", "Always here if you want to chat.",
    "Ha, fair enough.", "Makes sense.",
]  # fmt: skip

# Recurring topics in near-duplicate phrasing: distractors for each other.
RUN_TURNS = [
    "Went for a run again this morning, about {k}k along the river.",
    "Did my usual {k}k run before work today.",
    "Ran {k}k this morning, legs are dead.",
    "Another {k}k run done, slowly getting faster.",
]  # fmt: skip
WEATHER_TURNS = [
    "It's been raining nonstop here all week.", "Finally some sun today!",
    "So cold this morning, I had to scrape the car.", "Really humid and sticky today.",
]  # fmt: skip
COOK_AGAIN = [
    "Made pasta again tonight, nothing fancy.", "Cooked a big batch of soup for the week.",
    "Just made a quick stir-fry for dinner.", "Ordered takeaway, couldn't be bothered to cook.",
]  # fmt: skip

# Clara echoing the key noun: a short turn that shares the name with the question
# but answers nothing (half of the follow-ups).
ECHO = {
    "trip": "{city}! How was it?",
    "book": "Ooh, {book}! Is it good?",
    "cook": "{dish}? Ambitious! Did it work?",
    "concert": "{band}! Were they good live?",
    "purchase": "Nice, {item}! Why that one?",
    "injury": "Oh no, your {part}! Are you ok?",
    "work": "{project}? That sounds like a big deal.",
    "friend_move": "{friend} is leaving? How do you feel?",
    "course": "{course}! How was the first class?",
    "pet": "A {animal}!! What's it like?",
}
# Later callbacks to an earlier event: they repeat the names a question uses
# (the event's key, or the name the single-hop question asks by) without the answer.
CALLBACKS = {
    "trip": ("Still thinking about {city}, I want to go back.", "{friend} finally sent me the photos."),
    "book": ("{book} is still on my nightstand.", "I want to read more {author}."),
    "cook": ("Everyone still talks about {dish}.", "{friend} is already planning next year's party."),
    "concert": ("Still humming {band} songs.", "{venue} has awful acoustics upstairs though."),
    "purchase": ("Still getting used to {item}.", "Walked past {shop} again today."),
    "injury": ("My {part} is still stiff in the mornings.", "No more {how_short} for a while."),
    "work": ("{project} is eating my evenings.", "{manager} scheduled yet another all-hands."),
    "friend_move": ("Video-called {friend} today.", "Looked at flights to {city} for a visit."),
    "course": ("Missed {course} this week, too tired.", "{place} is closed for renovations."),
    "pet": ("{petname} knocked a glass off the table.", "Bought a new bed for the {animal}."),
}  # fmt: skip

MONTHS = [
    "January", "February", "March", "April", "May", "June", "July", "August", "September",
    "October", "November", "December",
]  # fmt: skip


@dataclass
class Turn:
    id: str
    session: int
    at: datetime
    speaker: str
    text: str

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "session": self.session,
            "at": self.at.isoformat(),
            "speaker": self.speaker,
            "text": self.text,
        }


@dataclass
class Event:
    kind: str
    session: int
    at: datetime
    fact: str  # turn id of the fact
    detail: str  # turn id of the detail (after Clara's follow-up)
    slots: dict[str, str]


@dataclass
class UserBuilder:
    uid: str
    name: str
    subj: str
    poss: str
    rng: random.Random
    turns: list[Turn] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    questions: list[dict[str, Any]] = field(default_factory=list)

    def say(self, session: int, at: datetime, speaker: str, text: str) -> str:
        tid = f"{self.uid}-s{session:02d}-t{len(self.turns):03d}"
        self.turns.append(Turn(tid, session, at, speaker, text))
        return tid


def _pick(rng: random.Random, pool: list[Any], used: set[Any]) -> Any:
    fresh = [p for p in pool if p not in used]
    choice = rng.choice(fresh or pool)
    used.add(choice)
    return choice


def event_texts(kind: str, s: dict[str, str]) -> tuple[str, str]:
    """(fact, detail) turns of an event: the detail never repeats the key noun."""
    if kind == "trip":
        return (
            f"I just got back from {s['city']}! Went with {s['friend']} for {s['days']} days.",
            f"We {s['activity']}, and the {s['food']} there was unreal.",
        )
    if kind == "book":
        return (
            f"I started reading {s['book']} by {s['author']}.",
            f"It's about {s['topic']}. I stayed up way too late with it.",
        )
    if kind == "cook":
        return (
            f"I made {s['dish']} for {s['friend']}'s birthday dinner.",
            f"It took {s['hours']} hours and I nearly burned it, but everyone had seconds.",
        )
    if kind == "concert":
        return (
            f"Went to see {s['band']} at {s['venue']} last night with {s['friend']}.",
            "They played for almost two hours and the crowd was singing every word.",
        )
    if kind == "purchase":
        return (
            f"I finally bought {s['item']}, got it from {s['shop']}.",
            f"Paid {s['price']} pounds, which felt like a steal. I use it every day now.",
        )
    if kind == "injury":
        return (
            f"I hurt my {s['part']} {s['how']}.",
            f"The physio said {s['weeks']} weeks of rest, which is driving me mad.",
        )
    if kind == "work":
        return (
            f"My manager {s['manager']} put me in charge of {s['project']} at work.",
            f"It's a lot of pressure, the deadline is in {s['weeks']} weeks and the team is tiny.",
        )
    if kind == "friend_move":
        return (
            f"{s['friend']} is moving to {s['city']} for a job at {s['company']}.",
            "I'm happy for them but I'll really miss our Sunday walks.",
        )
    if kind == "course":
        return (
            f"I signed up for a {s['course']} class at {s['place']} on {s['weekday']}.",
            f"First lesson was hilarious, I was the worst one there but the teacher, {s['teacher']}, was so patient.",
        )
    if kind == "pet":
        return (
            f"We adopted a {s['animal']}! We named it {s['petname']}.",
            "It already sleeps on my feet every night and chews every cable it finds.",
        )
    raise ValueError(kind)


KINDS = [
    "trip", "book", "cook", "concert", "purchase", "injury", "work", "friend_move", "course", "pet",
]  # fmt: skip


def make_slots(kind: str, rng: random.Random, used: dict[str, set[Any]]) -> dict[str, str]:
    def pick(name: str, pool: list[Any]) -> Any:
        return _pick(rng, pool, used.setdefault(name, set()))

    friend = rng.choice(FRIENDS)
    if kind == "trip":
        return {
            "city": pick("city", CITIES),
            "friend": friend,
            "days": str(rng.randint(3, 10)),
            "activity": rng.choice(TRIP_ACTIVITY),
            "food": pick("food", TRIP_FOOD),
        }
    if kind == "book":
        book, author, topic = pick("book", BOOKS)
        return {"book": book, "author": author, "topic": topic}
    if kind == "cook":
        return {"dish": pick("dish", DISHES), "friend": friend, "hours": str(rng.randint(2, 6))}
    if kind == "concert":
        band, venue = pick("band", BANDS)
        return {"band": band, "venue": venue, "friend": friend}
    if kind == "purchase":
        item, shop = pick("purchase", PURCHASES)
        return {"item": item, "shop": shop, "price": str(rng.randrange(20, 400, 5))}
    if kind == "injury":
        part, how = pick("injury", INJURIES)
        return {"part": part, "how": how, "weeks": str(rng.randint(2, 8))}
    if kind == "work":
        return {
            "manager": rng.choice(MANAGERS),
            "project": pick("project", WORK_PROJECTS),
            "weeks": str(rng.randint(3, 12)),
        }
    if kind == "friend_move":
        return {
            "friend": pick("mover", FRIENDS),
            "city": pick("city", CITIES),
            "company": rng.choice(COMPANIES),
        }
    if kind == "course":
        course, place = pick("course", COURSES)
        return {
            "course": course,
            "place": place,
            "weekday": rng.choice(WEEKDAYS),
            "teacher": rng.choice(MANAGERS),
        }
    if kind == "pet":
        animal, petname = pick("pet", PETS)
        return {"animal": animal, "petname": petname}
    raise ValueError(kind)


def build_sessions(b: UserBuilder) -> None:
    rng = b.rng
    used: dict[str, set[Any]] = {}
    start = FIRST_SESSION + timedelta(days=rng.randint(0, 6))
    user = b.name.capitalize()
    # Each kind recurs in several sessions (a trip in May and another in September):
    # the temporal questions must tell them apart by date, not topic.
    plan = [k for k in KINDS for _ in range(4)] + rng.sample(KINDS, 4)
    rng.shuffle(plan)
    per_session = [plan[i::SESSIONS] for i in range(SESSIONS)]
    for s in range(SESSIONS):
        # ~3 weeks apart, evenings, a year in all.
        day = start + timedelta(days=s * 20 + rng.randint(0, 4), hours=rng.randint(0, 3))
        clock = [day]

        def at(clock: list[datetime] = clock) -> datetime:
            clock[0] += timedelta(minutes=rng.randint(1, 4))
            return clock[0]

        b.say(s, at(), "Clara", rng.choice(CLARA_SMALLTALK[:3]))
        b.say(s, at(), user, rng.choice(USER_SMALLTALK[:5]))
        b.say(s, at(), user, rng.choice(WEATHER_TURNS))
        b.say(s, at(), "Clara", rng.choice(CLARA_REACTIONS))
        for kind in per_session[s]:
            slots = make_slots(kind, rng, used)
            fact_text, detail_text = event_texts(kind, slots)
            fact = b.say(s, at(), user, fact_text)
            echo = ECHO[kind].format(**slots)
            echo = echo[0].upper() + echo[1:]
            b.say(s, at(), "Clara", echo if rng.random() < 0.5 else rng.choice(CLARA_FOLLOWUPS))
            detail = b.say(s, at(), user, detail_text)
            b.say(s, at(), "Clara", rng.choice(CLARA_REACTIONS))
            b.say(s, at(), user, rng.choice(USER_SMALLTALK[5:]))
            b.events.append(Event(kind, s, clock[0], fact, detail, slots))
            if rng.random() < 0.6:  # near-duplicate recurring chatter between events
                b.say(s, at(), user, rng.choice(RUN_TURNS).format(k=rng.choice((5, 8, 10))))
                b.say(s, at(), "Clara", rng.choice(CLARA_REACTIONS))
            if rng.random() < 0.4:
                b.say(s, at(), user, rng.choice(COOK_AGAIN))
                b.say(s, at(), "Clara", rng.choice(CLARA_SMALLTALK[5:]))
        earlier = [e for e in b.events if e.session < s]
        for e in rng.sample(earlier, min(len(earlier), rng.choice((1, 2, 2, 3)))):
            slots = {**e.slots, "how_short": e.slots.get("how", "").split(" ", 1)[-1]}
            b.say(s, at(), user, rng.choice(CALLBACKS[e.kind]).format(**slots))
            b.say(s, at(), "Clara", rng.choice(CLARA_REACTIONS + CLARA_SMALLTALK[5:]))
        while sum(1 for t in b.turns if t.session == s) < 24:
            b.say(s, at(), user, rng.choice(USER_SMALLTALK))
            b.say(s, at(), "Clara", rng.choice(CLARA_REACTIONS + CLARA_SMALLTALK[3:]))
        b.say(s, at(), user, rng.choice(USER_SMALLTALK[7:12]))
        b.say(s, at(), "Clara", rng.choice(CLARA_SMALLTALK[3:6]))


# -- questions ------------------------------------------------------------------


def single_hop(b: UserBuilder, e: Event) -> str:
    n = b.name.capitalize()
    return {
        "trip": "Which city did {n} visit with {friend}?",
        "book": "Which book by {author} did {n} pick up?",
        "cook": "What did {n} bake or cook for {friend}'s birthday?",
        "concert": "Which band did {n} see at {venue}?",
        "purchase": "Where did {n} get {item}?",
        "injury": "How did {n} injure {p} {part}?",
        "work": "What is {n} leading at work for {manager}?",
        "friend_move": "Where is {friend} relocating to?",
        "course": "What class is {n} taking at {place}?",
        "pet": "What is the name of {n}'s {animal}?",
    }[e.kind].format(n=n, p=b.poss, **e.slots)


def multi_hop(b: UserBuilder, e: Event) -> str:
    """The key noun is in the fact turn, the asked detail in the next one."""
    n = b.name.capitalize()
    return {
        "trip": "What food did {n} rave about after the {city} trip?",
        "book": "What is the book by {author} that {n} started about?",
        "cook": "How long did {dish} take {n} to make?",
        "concert": "How long did {band} play for when {n} saw them?",
        "purchase": "How much did {n} pay for {item}?",
        "injury": "How long does {n} have to rest {p} {part}?",
        "work": "When is the deadline for {project} that {n} is running?",
        "friend_move": "What will {n} miss most now that {friend} is leaving?",
        "course": "Who teaches {n}'s {course} class?",
        "pet": "What does {petname} the {animal} get up to at night?",
    }[e.kind].format(n=n, p=b.poss, **e.slots)


def topic_phrase(b: UserBuilder, kind: str) -> str:
    n = b.name.capitalize()
    return {
        "trip": "Where did {n} travel",
        "book": "What book did {n} start",
        "cook": "What did {n} cook for a birthday",
        "concert": "Which concert did {n} go to",
        "purchase": "What did {n} buy",
        "injury": "What injury did {n} have",
        "work": "What work project was {n} given",
        "friend_move": "Which friend of {n} moved away",
        "course": "What class did {n} sign up for",
        "pet": "What pet did {n} adopt",
    }[kind].format(n=n)


def when_question(b: UserBuilder, e: Event) -> str:
    n = b.name.capitalize()
    return {
        "trip": "When did {n} go to {city}?",
        "book": "When did {n} start reading {book}?",
        "cook": "When did {n} make {dish}?",
        "concert": "When did {n} see {band}?",
        "purchase": "When did {n} buy {item}?",
        "injury": "When did {n} hurt {p} {part}?",
        "work": "When did {n} take over {project}?",
        "friend_move": "When did {n} hear that {friend} was moving?",
        "course": "When did {n} start the {course} class?",
        "pet": "When did {n} adopt {petname}?",
    }[e.kind].format(n=n, p=b.poss, **e.slots)


def time_anchor(rng: random.Random, at: datetime) -> str:
    """A phrase for ``at``'s month, relative to ASKED_AT or absolute."""
    months_ago = (ASKED_AT.year - at.year) * 12 + ASKED_AT.month - at.month
    style = rng.random()
    if style < 0.45:
        return f"in {MONTHS[at.month - 1]} {at.year}"
    if style < 0.7 and 1 <= months_ago < 12:
        return f"last {MONTHS[at.month - 1]}"
    if 2 <= months_ago <= 12:
        words = {2: "two", 3: "three", 4: "four", 5: "five", 6: "six", 7: "seven", 8: "eight",
                 9: "nine", 10: "ten", 11: "eleven", 12: "twelve"}  # fmt: skip
        return f"{words[months_ago]} months ago"
    return f"in {MONTHS[at.month - 1]} {at.year}"


OPEN_DOMAIN = {
    "trip": "Does {n} enjoy travelling abroad, and where has {s} been?",
    "book": "Is {n} much of a reader? What kind of stories does {s} like?",
    "cook": "Would {n} be a good person to ask for help in the kitchen?",
    "concert": "What sort of live music is {n} into?",
    "injury": "Has {n} had any health setbacks from sports or accidents?",
    "course": "What hobbies has {n} been trying to learn lately?",
    "pet": "Does {n} have any animals at home?",
    "work": "How demanding has {n}'s job been this year?",
    "purchase": "What gadgets or gear has {n} splashed out on?",
    "friend_move": "Have any of {n}'s friends left town?",
}


def build_questions(b: UserBuilder) -> None:
    rng = b.rng
    by_kind: dict[str, list[Event]] = {}
    for e in b.events:
        by_kind.setdefault(e.kind, []).append(e)
    asked = ASKED_AT.isoformat()

    def add(kind: str, q: str, gold: list[str], **extra: Any) -> None:
        b.questions.append({"q": q, "kind": kind, "answer_turns": gold, "at": asked, **extra})

    events = list(b.events)
    rng.shuffle(events)
    for e in events[:30]:
        add("single-hop", single_hop(b, e), [e.fact])
    for e in events[30:] + events[: 22 - len(events[30:])]:
        add("multi-hop", multi_hop(b, e), [e.fact, e.detail])
    # Temporal, anchored: among the same kind's events, pick one whose month no
    # other event of that kind shares; the question names the month.
    anchored = 0
    for kind in KINDS:
        evs = by_kind.get(kind, [])
        for e in evs:
            same_month = [x for x in evs if (x.at.year, x.at.month) == (e.at.year, e.at.month)]
            if len(same_month) != 1 or anchored >= 14 or len(evs) < 2:
                continue
            anchored += 1
            add(
                "temporal",
                f"{topic_phrase(b, kind)} {time_anchor(rng, e.at)}?",
                [e.fact],
                anchor_month=e.at.strftime("%Y-%m"),
            )
    for e in rng.sample(b.events, 8):
        add("temporal", when_question(b, e), [e.fact])
    for kind in KINDS:
        evs = by_kind.get(kind, [])
        if not evs:
            continue
        text = OPEN_DOMAIN[kind].format(n=b.name.capitalize(), s=b.subj)
        # Up to three of the kind's fact turns: any one of them answers it.
        add("open-domain", text, [e.fact for e in evs[:3]])


def build_user(n: int, name: str, subj: str, poss: str, seed: int) -> dict[str, Any]:
    uid = f"lc{n:02d}-{name}"
    b = UserBuilder(uid, name, subj, poss, random.Random(f"{seed}-{uid}"))
    build_sessions(b)
    build_questions(b)
    return {
        "user_id": uid,
        "name": name.capitalize(),
        "turns": [t.to_json() for t in b.turns],
        "questions": b.questions,
    }


def generate(seed: int = SEED) -> dict[str, Any]:
    users = [build_user(i, *u, seed=seed) for i, u in enumerate(USERS)]
    return {
        "description": (
            "Long multi-session conversations (issue 14), generated by "
            "bench/datasets/make_long_conversations.py with seed "
            f"{seed}: {len(users)} invented users x {SESSIONS} sessions with Clara; "
            "questions asked at 'at' with gold turn ids, kinds single-hop, multi-hop, "
            "temporal, open-domain."
        ),
        "seed": seed,
        "asked_at": ASKED_AT.isoformat(),
        "users": users,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, default=OUT)
    p.add_argument("--seed", type=int, default=SEED)
    args = p.parse_args()
    data = generate(args.seed)
    # One turn or question per line: small diffs, still readable.
    lines = ["{", f' "description": {json.dumps(data["description"])},']
    lines += [f' "seed": {data["seed"]},', f' "asked_at": {json.dumps(data["asked_at"])},']
    lines.append(' "users": [')
    for i, u in enumerate(data["users"]):
        lines.append(f'  {{"user_id": {json.dumps(u["user_id"])}, "name": {json.dumps(u["name"])},')
        lines.append('   "turns": [')
        lines += [
            f"    {json.dumps(t)}" + ("," if j < len(u["turns"]) - 1 else "")
            for j, t in enumerate(u["turns"])
        ]
        lines.append("   ],")
        lines.append('   "questions": [')
        lines += [
            f"    {json.dumps(q)}" + ("," if j < len(u["questions"]) - 1 else "")
            for j, q in enumerate(u["questions"])
        ]
        lines.append("   ]}" + ("," if i < len(data["users"]) - 1 else ""))
    lines += [" ]", "}"]
    args.out.write_text("\n".join(lines) + "\n")
    turns = sum(len(u["turns"]) for u in data["users"])
    qs = [q for u in data["users"] for q in u["questions"]]
    kinds: dict[str, int] = {}
    for q in qs:
        kinds[q["kind"]] = kinds.get(q["kind"], 0) + 1
    print(
        f"wrote {args.out}: {len(data['users'])} users, {turns} turns, {len(qs)} questions {kinds}"
    )


if __name__ == "__main__":
    main()
