"""Deterministic classification of mem0 memories: identity, episodic or semantic.

The spec (section 6.4) classifies with an LLM; an import of thousands of old
memories should not depend on a model being reachable, cost money, or give a
different answer on a re-run, so this is a small rule set instead:

1. **identity** — facts about who the user is, tried first because identity
   facts often look like events ("Was born in 1990", "Married to Sam").  Where
   the fact is clear an identity key and value are extracted (``name``,
   ``occupation``, ``location``, ``pronouns``, a family member's name, ...);
   "I am a …" that fits no key stays identity without one.
2. **episodic** — dated events, "today/yesterday/last week", and sentences
   that open with a past-tense verb ("Went to Porto", "Had a fight with Ana").
3. **semantic** — everything else: preferences, habits, knowledge.

mem0 writes memories without a subject ("Lives in Lisbon", "Name is Josh"),
users write them with one ("I live in Lisbon", "The user's name is Josh"):
both forms are accepted.  Only sentences *about the user* give identity keys:
"My sister Ana lives in Lisbon" names a sister, it does not move the user.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .types import MemoryType


@dataclass(frozen=True)
class Classification:
    memory_type: MemoryType
    #: Which rule decided (shown in the dry run, so an operator can judge the rules).
    rule: str
    identity_key: str | None = None
    identity_value: str | None = None


# A capitalised name or place; case-sensitive even inside IGNORECASE patterns,
# so "has a sister who is a nurse" never yields the name "a".
_CAP = r"(?-i:[A-Z\u00C0-\u017F][\w'.-]*)"
_NAME = rf"{_CAP}(?:\s+{_CAP}){{0,2}}"
_NAMES = rf"{_NAME}(?:(?:\s*,\s*|\s+and\s+|\s*&\s*){_NAME})*"
_PLACE = rf"{_CAP}(?:(?:\s+|,\s*|\s+(?:de|da|do|del|di|la|le|upon|on)\s+){_CAP}){{0,4}}"

# Optional subject of a sentence about the user, and "is"/"I am"/"I'm".
_SUBJ = r"(?:(?:the\s+)?user\s+|i\s+|he\s+|she\s+|they\s+)?"
_BE = (
    r"(?:(?:the\s+)?user\s+(?:is|was)\s+|i\s+am\s+|i'm\s+|he\s+is\s+|she\s+is\s+"
    r"|they\s+are\s+|is\s+|am\s+)"
)
_POSS = r"(?:(?:my|user's|the\s+user's|his|her|their)\s+)?"

_WEEKDAY = r"(?:monday|tuesday|wednesday|thursday|friday|saturday|sunday)"
_MONTH = (
    r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?"
    r"|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)"
)
_DAY = r"\d{1,2}(?:st|nd|rd|th)?"
_DATE_VALUE = (
    rf"(?:{_MONTH}\.?\s+{_DAY}|{_DAY}\s+(?:of\s+)?{_MONTH}|\d{{4}}-\d{{2}}-\d{{2}}"
    rf"|\d{{1,2}}/\d{{1,2}}(?:/\d{{2,4}})?)(?:,?\s+(?:19|20)\d\d)?"
)


def _re(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.IGNORECASE)


# Family members and pets: the key is the relation, normalised.
_RELATIONS = {
    "wife": "spouse",
    "husband": "spouse",
    "spouse": "spouse",
    "partner": "partner",
    "girlfriend": "partner",
    "boyfriend": "partner",
    "fiance": "partner",
    "fiancé": "partner",
    "fiancee": "partner",
    "fiancée": "partner",
    "son": "son",
    "sons": "son",
    "daughter": "daughter",
    "daughters": "daughter",
    "kid": "children",
    "kids": "children",
    "child": "children",
    "children": "children",
    "sister": "sister",
    "sisters": "sister",
    "brother": "brother",
    "brothers": "brother",
    "mother": "mother",
    "mom": "mother",
    "mum": "mother",
    "father": "father",
    "dad": "father",
    "grandmother": "grandmother",
    "grandma": "grandmother",
    "grandfather": "grandfather",
    "grandpa": "grandfather",
    "aunt": "aunt",
    "uncle": "uncle",
    "cousin": "cousin",
    "niece": "niece",
    "nephew": "nephew",
    "dog": "pet",
    "dogs": "pet",
    "cat": "pet",
    "cats": "pet",
    "pet": "pet",
    "pets": "pet",
}
#: Keys that can name several people (two daughters): an import merges their names.
MULTI_VALUED = frozenset(
    {"son", "daughter", "children", "sister", "brother", "cousin", "aunt", "uncle"}
    | {"niece", "nephew", "pet", "grandmother", "grandfather"}
)
_REL = "(?P<rel>" + "|".join(sorted(_RELATIONS, key=len, reverse=True)) + ")"
_ADJ = r"(?:(?:older|younger|little|big|baby|twin|step|grey|gray|black|white|old|new)\s+)*"
_COUNT = r"(?:a|an|one|two|three|four|five|\d+)\s+"

_JOBS = frozenset(
    [
        "engineer",
        "developer",
        "programmer",
        "designer",
        "nurse",
        "doctor",
        "physician",
        "surgeon",
        "teacher",
        "professor",
        "lecturer",
        "student",
        "researcher",
        "scientist",
        "lawyer",
        "attorney",
        "accountant",
        "architect",
        "chef",
        "cook",
        "baker",
        "barista",
        "writer",
        "author",
        "journalist",
        "editor",
        "artist",
        "musician",
        "painter",
        "photographer",
        "pharmacist",
        "dentist",
        "therapist",
        "psychologist",
        "consultant",
        "manager",
        "director",
        "analyst",
        "administrator",
        "technician",
        "mechanic",
        "electrician",
        "plumber",
        "carpenter",
        "pilot",
        "driver",
        "farmer",
        "firefighter",
        "officer",
        "soldier",
        "paramedic",
        "librarian",
        "translator",
        "entrepreneur",
        "founder",
        "freelancer",
        "intern",
        "veterinarian",
        "vet",
        "economist",
        "banker",
        "cashier",
        "clerk",
        "receptionist",
        "salesperson",
        "marketer",
        "recruiter",
        "coach",
        "trainer",
        "actor",
        "dancer",
        "singer",
        "producer",
        "streamer",
    ]
)
_DIETS = ("vegetarian", "vegan", "pescatarian", "pescetarian")
#: "Is a fan of jazz", "Is a bit tired": "a …" that says nothing about who they are.
_NOT_WHO = frozenset({"fan", "big", "huge", "bit", "little", "lot", "member", "lover"})

# -- identity rules, tried in order ---------------------------------------------------

_NAME_RULES = [
    # A lower-case name only as the last word ("my name is josh"), so "name is not
    # important" names nobody.
    (
        "name",
        _re(rf"^{_POSS}(?:full\s+|real\s+)?name\s+is\s+(?P<v>{_NAME}|[a-z][\w'-]*(?=[.!]?$))"),
    ),
    (
        "preferred_name",
        _re(rf"^{_SUBJ}(?:prefers|likes|wants)\s+to\s+be\s+called\s+(?P<v>{_NAME})"),
    ),
    ("preferred_name", _re(rf"^{_SUBJ}goes\s+by\s+(?P<v>{_NAME})")),
    ("name", _re(rf"^{_BE}called\s+(?P<v>{_NAME})")),
]
_FAMILY_RULES = [
    # "Sister's name is Ana", "My daughters' names are Mia and Zoe"
    _re(rf"^{_POSS}{_ADJ}{_REL}(?:'s|s')?\s+names?\s+(?:is|are)\s+(?P<v>{_NAMES})"),
    # "Has a daughter named Mia", "I have two kids called Mia and Leo"
    _re(
        rf"^{_SUBJ}(?:has|have)\s+(?:got\s+)?(?:{_COUNT})?{_ADJ}{_REL}\s+"
        rf"(?:named|called)\s+(?P<v>{_NAMES})"
    ),
    # "Married to Sam", "I'm happily married to Sam Reyes"
    _re(rf"^(?:{_BE})?(?:happily\s+)?(?P<rel>married)\s+to\s+(?P<v>{_NAME})"),
    # "My wife is Sam"
    _re(rf"^{_POSS}{_REL}\s+is\s+(?P<v>{_NAME})\b"),
    # "My sister Ana lives in Lisbon", "Their dog Rex …": a name right after the relation
    _re(rf"^{_POSS}{_ADJ}{_REL},?\s+(?P<v>{_NAME})\b"),
]
_SELF_RULES = [
    ("pronouns", _re(rf"^{_POSS}pronouns\s+(?:are|is)\s+(?P<v>[a-z]+/[a-z]+(?:/[a-z]+)?)")),
    ("pronouns", _re(rf"^{_SUBJ}uses?\s+(?P<v>[a-z]+/[a-z]+(?:/[a-z]+)?)\s+pronouns")),
    ("birthday", _re(rf"^{_POSS}birthday\s+is\s+(?:on\s+)?(?P<v>{_DATE_VALUE})")),
    ("birthday", _re(rf"^{_SUBJ}(?:was\s+)?born\s+on\s+(?P<v>{_DATE_VALUE})")),
    ("birth_year", _re(rf"^{_SUBJ}(?:was\s+)?born\s+in\s+(?P<v>(?:19|20)\d\d)\b")),
    (
        "birthplace",
        _re(rf"^{_SUBJ}(?:was\s+)?born\s+(?:and\s+raised\s+)?in\s+(?P<v>{_PLACE})"),
    ),
    ("age", _re(rf"^(?:{_BE})?(?P<v>\d{{1,3}})\s+years?\s+old\b")),
    (
        "location",
        _re(
            rf"^{_SUBJ}(?:currently\s+|now\s+)?(?:lives|live|living|resides|reside)\s+in\s+"
            rf"(?P<v>{_PLACE})"
        ),
    ),
    ("location", _re(rf"^(?:{_BE})?(?:currently\s+)?based\s+in\s+(?P<v>{_PLACE})")),
    ("hometown", _re(rf"^(?:{_BE}|{_SUBJ}comes?\s+)?(?:originally\s+)?from\s+(?P<v>{_PLACE})")),
    (
        "occupation",
        _re(
            rf"^{_SUBJ}(?:works|work|working)\s+as\s+(?:an?\s+)?"
            r"(?P<v>[\w' -]+?)(?=\s+(?:at|for|in)\s|[.,;!]|$)"
        ),
    ),
    (
        "employer",
        _re(rf"^{_SUBJ}(?:works|work|working)\s+(?:at|for)\s+(?:the\s+)?(?P<v>{_PLACE})"),
    ),
]
_BE_DIET = _re(rf"^{_BE}(?:an?\s+)?(?:strict\s+)?(?P<v>{'|'.join(_DIETS)})\b")
_BE_A = _re(rf"^{_BE}an?\s+(?P<v>[\w' -]+?)(?=\s+(?:at|for|in|who|and|with|of)\s|[.,;!]|$)")
# Family without names still says who the user is ("Has two kids").
_FAMILY_NO_NAME = _re(rf"^{_SUBJ}(?:has|have)\s+(?:got\s+)?{_COUNT}{_ADJ}{_REL}\b")

# -- episodic rules -------------------------------------------------------------------

_RELATIVE = _re(
    r"\b(?:today|yesterday|tonight|earlier\s+today|just\s+now|the\s+other\s+day"
    r"|this\s+(?:morning|afternoon|evening|weekend|week)"
    rf"|last\s+(?:night|week|weekend|month|year|summer|winter|spring|fall|autumn|{_WEEKDAY})"
    r"|(?:\d+|a|an|one|two|three|a\s+few|a\s+couple\s+of|few|several)\s+"
    r"(?:days?|weeks?|months?|years?)\s+ago"
    rf"|on\s+{_WEEKDAY})\b"
)
_DATE = _re(rf"\b(?:{_DATE_VALUE}|(?:in|on)\s+{_MONTH}\s+(?:19|20)\d\d|in\s+(?:19|20)\d\d)\b")
#: A date in a habit or a state is not an event ("vegetarian since 2015").
_HABITUAL = _re(r"\b(?:since|every|usually|always|each|per|until)\b")
_IRREGULAR_PAST = frozenset(
    [
        "went",
        "had",
        "met",
        "saw",
        "got",
        "bought",
        "ran",
        "won",
        "lost",
        "broke",
        "took",
        "made",
        "gave",
        "ate",
        "drank",
        "wrote",
        "felt",
        "left",
        "came",
        "began",
        "flew",
        "drove",
        "spoke",
        "told",
        "found",
        "spent",
        "sold",
        "paid",
        "caught",
        "fell",
        "forgot",
        "heard",
        "kept",
        "slept",
        "sang",
        "swam",
        "threw",
        "wore",
        "did",
        "became",
        "built",
        "brought",
        "chose",
        "fought",
        "hid",
        "hit",
        "hurt",
        "led",
        "lent",
        "quit",
        "rode",
        "rang",
        "sent",
        "shot",
        "shut",
        "sat",
        "stood",
        "stole",
        "struck",
        "taught",
        "tore",
        "understood",
        "woke",
        "wed",
    ]
)
#: Words ending in -ed that describe a state, not a one-off happening.
_STATE_ED = frozenset(
    [
        "used",
        "interested",
        "married",
        "engaged",
        "retired",
        "divorced",
        "based",
        "obsessed",
        "scared",
        "worried",
        "excited",
        "related",
        "qualified",
        "experienced",
        "skilled",
        "talented",
        "educated",
        "located",
        "employed",
        "unemployed",
        "tired",
        "bored",
        "named",
        "need",
        "feed",
        "seed",
        "speed",
        "bleed",
        "proceed",
        "succeed",
        "exceed",
        "concerned",
        "involved",
        "committed",
        "dedicated",
        "devoted",
        "attached",
        "determined",
        "convinced",
    ]
)
_OPENING_VERB = _re(
    r"^(?:(?:the\s+)?user\s+|i\s+|he\s+|she\s+|they\s+|we\s+)?"
    r"(?:just\s+|recently\s+|finally\s+|once\s+|also\s+)?(?P<verb>[a-z]+)\b"
)


def _clean(value: str) -> str:
    return value.strip().strip(".,;:!?\"'").strip()


def _is_job(phrase: str) -> bool:
    words = phrase.lower().split()
    return bool(words) and words[-1] in _JOBS


def _identity(text: str) -> Classification | None:
    for key, pattern in _NAME_RULES:
        if m := pattern.search(text):
            name = _clean(m["v"])
            name = name[:1].upper() + name[1:]
            return Classification(MemoryType.IDENTITY, key, key, name)
    for pattern in _FAMILY_RULES:
        if m := pattern.search(text):
            rel = m["rel"].lower()
            key = "spouse" if rel == "married" else _RELATIONS[rel]
            return Classification(MemoryType.IDENTITY, f"family:{key}", key, _clean(m["v"]))
    for key, pattern in _SELF_RULES:
        if m := pattern.search(text):
            return Classification(MemoryType.IDENTITY, key, key, _clean(m["v"]))
    if m := _BE_DIET.search(text):
        return Classification(MemoryType.IDENTITY, "diet", "diet", m["v"].lower())
    if m := _BE_A.search(text):
        phrase = _clean(m["v"])
        if _is_job(phrase):
            return Classification(MemoryType.IDENTITY, "occupation", "occupation", phrase)
        if phrase and phrase.split()[0].lower() not in _NOT_WHO:
            return Classification(MemoryType.IDENTITY, "i-am-a")
    if _FAMILY_NO_NAME.search(text):
        return Classification(MemoryType.IDENTITY, "family")
    return None


def _past_tense_opening(text: str) -> bool:
    m = _OPENING_VERB.search(text)
    if m is None:
        return False
    verb = m["verb"].lower()
    if verb in _IRREGULAR_PAST:
        return True
    return len(verb) > 4 and verb.endswith("ed") and verb not in _STATE_ED


def classify(text: str) -> Classification:
    """Identity, episodic or semantic for one memory text (pure, deterministic)."""
    text = " ".join(text.split()).replace("\u2019", "'")
    found = _identity(text)
    if found is not None:
        return found
    if _RELATIVE.search(text):
        return Classification(MemoryType.EPISODIC, "relative-time")
    if _DATE.search(text) and not _HABITUAL.search(text):
        return Classification(MemoryType.EPISODIC, "date")
    if _past_tense_opening(text):
        return Classification(MemoryType.EPISODIC, "past-tense")
    return Classification(MemoryType.SEMANTIC, "default")
