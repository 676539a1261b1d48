"""Synthetic data for ``bench/cortex.py``: memory texts, queries, chat messages, vectors.

Texts come from templates filled with random words, so that they read like a
companion's memories (people, places, plans, feelings) and their embeddings
spread over the space the way real ones do — not random unit vectors, which
would make HNSW look better or worse than it is in production.

Embedding 200,000 texts with the local model would take ~15 minutes on two
cores, so a pool of a few thousand texts is embedded once and every row gets a
pool vector with a small random perturbation (cosine ~0.95 to the original),
re-normalised.  The content stored with a row is its pool text: rows and
vectors stay consistent, and near-duplicates occur as they do in real memory.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import numpy as np

NAMES = (
    "Ana", "Ben", "Chloe", "Dev", "Elena", "Farid", "Grace", "Hiro", "Ines", "Jamal",
    "Kasia", "Liam", "Mina", "Noah", "Olga", "Pedro", "Quinn", "Rosa", "Sami", "Tara",
    "Uma", "Viktor", "Wen", "Yara", "Zoe", "Marco", "Leila", "Oscar", "Nadia", "Theo",
)  # fmt: skip
RELATIONS = (
    "sister", "brother", "mum", "dad", "grandma", "cousin", "best friend", "partner",
    "flatmate", "manager", "colleague", "neighbour", "aunt", "uncle", "son", "daughter",
)  # fmt: skip
PLACES = (
    "Lisbon", "Leeds", "Osaka", "Montreal", "the office", "the gym", "the park", "Berlin",
    "the hospital", "my parents' place", "the library", "Glasgow", "the beach", "Kraków",
    "the climbing wall", "the market", "Toronto", "the airport", "the vet", "Dublin",
)  # fmt: skip
ACTIVITIES = (
    "went running", "played chess", "baked sourdough", "went bouldering", "watched a film",
    "painted", "went to a concert", "cleaned the flat", "went hiking", "had dinner",
    "did yoga", "went swimming", "played football", "studied", "went shopping",
    "fixed the bike", "planted tomatoes", "wrote some code", "went to a pub quiz",
)  # fmt: skip
FOODS = (
    "ramen", "sushi", "lasagne", "pho", "tacos", "curry", "pierogi", "falafel",
    "dumplings", "pancakes", "paella", "shakshuka", "pad thai", "risotto", "oat milk",
    "dark chocolate", "peanuts", "shellfish", "gluten", "spicy food",
)  # fmt: skip
FEELINGS = (
    "anxious", "excited", "exhausted", "proud", "lonely", "relieved", "stressed",
    "grateful", "frustrated", "hopeful", "nervous", "happy", "overwhelmed", "calm",
)  # fmt: skip
TOPICS = (
    "my job", "the move", "my exams", "money", "my health", "the wedding", "my thesis",
    "the new project", "my sleep", "the kids", "my back pain", "the interview",
    "my driving test", "the holiday", "my diet", "the band", "my visa", "the mortgage",
)  # fmt: skip
THINGS = (
    "guitar", "bike", "laptop", "car", "camera", "sourdough starter", "plant", "phone",
    "sewing machine", "telescope", "kayak", "piano", "coffee grinder", "tent",
)  # fmt: skip
PETS = ("dog", "cat", "rabbit", "parrot", "hamster", "tortoise")  # fmt: skip
PET_NAMES = ("Pickle", "Mochi", "Biscuit", "Luna", "Pepper", "Ziggy", "Olive", "Bean")
DAYS = (
    "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday",
    "last weekend", "yesterday", "this morning", "tonight", "next week",
)  # fmt: skip
MONTHS = (
    "January", "February", "March", "April", "May", "June", "July", "August",
    "September", "October", "November", "December",
)  # fmt: skip
WORDS = (
    "amber", "harbour", "velvet", "lantern", "orchid", "granite", "maple", "cobalt",
    "saffron", "willow", "quartz", "ember", "meadow", "falcon", "pebble", "cedar",
    "juniper", "marble", "thistle", "copper", "hazel", "indigo", "fjord", "tundra",
)  # fmt: skip

MEMORY_TEMPLATES = (
    "I {activity} with my {relation} {name} {day}.",
    "My {relation} {name} lives in {place} now.",
    "I'm allergic to {food}, so I always check the menu.",
    "I've been feeling {feeling} about {topic} lately.",
    "{name} recommended a book called The {Word} {Word2}.",
    "My {pet} {pet_name} had to go to the vet {day}.",
    "I'm saving up for a new {thing} before {month}.",
    "My favourite food is {food}, especially the one near {place}.",
    "The meeting about {topic} went badly and I felt {feeling}.",
    "I started learning the {thing} in {month} and practise on {day_plain}s.",
    "{name}'s birthday is in {month}; I want to get them something {word}.",
    "We {activity} at {place} and it was lovely, {name} came too.",
    "I can't sleep because of {topic}; I keep thinking about it.",
    "My {relation} is moving to {place} in {month}.",
    "I finally finished the {word} project at work and feel {feeling}.",
    "Remember that I don't eat {food}.",
    "I had a long talk with {name} about {topic} and felt {feeling} afterwards.",
    "My {thing} broke {day}, and fixing it will cost too much.",
    "I want to visit {place} with my {relation} in {month}.",
    "Work at {place} has been {feeling_adj} since the {word} reorganisation.",
)
QUERY_TEMPLATES = (
    "what did I do with {name}?",
    "where does my {relation} live?",
    "what am I allergic to?",
    "how have I been feeling about {topic}?",
    "what book did {name} recommend?",
    "is my {pet} okay after the vet?",
    "what am I saving up for?",
    "do you remember my favourite food?",
    "how did the meeting about {topic} go?",
    "when do I practise the {thing}?",
    "when is {name}'s birthday?",
    "who came with us to {place}?",
    "why can't I sleep these days?",
    "where is my {relation} moving?",
    "what happened with the project at work?",
    "what should I not eat?",
    "what did {name} and I talk about?",
    "what broke {day}?",
    "where do I want to travel in {month}?",
    "how is work going at {place}?",
)

# A realistic mix of what reaches Clara: about a third short social messages
# that need no lookup, the rest real content of all lengths.
SOCIAL_MESSAGES = (
    "hi", "hey clara", "hello!", "good morning", "gn", "thanks", "thank you so much!",
    "ok", "okay 👍", "cool", "lol", "hahaha", "yep", "nope", "bye", "see you", "np",
    "sounds good", "got it, thanks clara", "hmm", "nice", "wow", "k", "?", "!!!", ":)",
    "thx", "cheers", "alright", "good night clara 🌙", "yes", "no", "sure", "mhm",
)  # fmt: skip
CONTENT_MESSAGES = (
    "can you remind me what my sister said about the flat?",
    "I had a really rough day at work, my manager yelled at me in front of everyone",
    "what was the name of that ramen place in Osaka?",
    "ok so the interview is on Thursday at 10",
    "hi clara, I need help planning the trip to Lisbon",
    "thanks! also, did I tell you my cat has been sick?",
    "lol that's exactly what Ben said yesterday about the project",
    "I think I'm going to quit the band, it's too much with the new job",
    "how do I say good morning in Japanese?",
    "no, not that one, the blue one",
    "my dad's surgery went well, he's recovering at home now",
    "can you summarise what we talked about last week regarding the mortgage "
    "and the offer on the house in Didsbury?",
    "write me a short poem about autumn",
    "yes please",
    "good morning! I slept badly again, third night in a row",
    "what's the weather like in Glasgow in March usually?",
    "I'm so proud of myself, I ran 10k without stopping today!!",
    "remind me tomorrow to call the vet",
    "hmm I'm not sure, what do you think I should do about Tara?",
    "ok",
)


def memory_text(rng: random.Random) -> str:
    """One memory-like sentence from a random template."""
    return rng.choice(MEMORY_TEMPLATES).format(**_slots(rng))


# How people actually ask: the same question comes with different openings and
# endings (and this gives ~10,000 distinct queries, where the templates alone
# give a few hundred).
QUERY_OPENINGS = (
    "", "hey, ", "quick question: ", "clara, ", "sorry, remind me ", "do you know ",
    "wait, ", "I forgot, ",
)  # fmt: skip
QUERY_ENDINGS = ("", " again", " lol", " I can't remember", " 🤔", " - any idea")


def query_text(rng: random.Random) -> str:
    q = rng.choice(QUERY_TEMPLATES).format(**_slots(rng))
    ending = rng.choice(QUERY_ENDINGS)
    if ending:
        q = q.rstrip("?") + ending + "?"
    return rng.choice(QUERY_OPENINGS) + q


def _slots(rng: random.Random) -> dict[str, str]:
    word, word2 = rng.sample(WORDS, 2)
    day = rng.choice(DAYS)
    return {
        "activity": rng.choice(ACTIVITIES),
        "relation": rng.choice(RELATIONS),
        "name": rng.choice(NAMES),
        "day": day,
        "day_plain": rng.choice(DAYS[:7]),
        "place": rng.choice(PLACES),
        "food": rng.choice(FOODS),
        "feeling": rng.choice(FEELINGS),
        "feeling_adj": rng.choice(FEELINGS),
        "topic": rng.choice(TOPICS),
        "thing": rng.choice(THINGS),
        "pet": rng.choice(PETS),
        "pet_name": rng.choice(PET_NAMES),
        "month": rng.choice(MONTHS),
        "word": word,
        "Word": word.capitalize(),
        "Word2": word2.capitalize(),
    }


def distinct_texts(rng: random.Random, n: int, make=memory_text) -> list[str]:
    """``n`` different texts from ``make``; fails loudly if its space is too small."""
    seen: dict[str, None] = {}
    for _ in range(n * 50):
        seen.setdefault(make(rng), None)
        if len(seen) == n:
            return list(seen)
    raise ValueError(f"{make.__name__} made only {len(seen)} distinct texts, {n} were asked for")


def message_mix(rng: random.Random, n: int) -> list[str]:
    """``n`` chat messages: 1/3 social (rejectable), 2/3 content, shuffled."""
    out = [
        rng.choice(SOCIAL_MESSAGES) if rng.random() < 1 / 3 else rng.choice(CONTENT_MESSAGES)
        for _ in range(n)
    ]
    rng.shuffle(out)
    return out


def perturbed(pool: np.ndarray, idx: Sequence[int], rng: np.random.Generator) -> np.ndarray:
    """Pool vectors ``idx`` moved by Gaussian noise (cosine ~0.95), unit length again.

    Noise of sigma 0.016 per dimension has norm ~0.31 in 384 dimensions, i.e.
    an angle of ~17 degrees: the copies stay near their text's meaning but are
    distinct points, so the index holds 200k different vectors."""
    base = pool[np.asarray(idx)]
    noisy = base + rng.normal(0.0, 0.016, size=base.shape).astype(np.float32)
    return noisy / np.linalg.norm(noisy, axis=1, keepdims=True)
