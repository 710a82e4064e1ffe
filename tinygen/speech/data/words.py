"""Word lists and phrase templates for the synthetic corpus.

Phrases are what an always-on device hears: commands, numbers and short ambient
sentences. Every word is lowercase letters and apostrophes, so every phrase spells with
``tinygen.speech.config.DEFAULT_VOCAB``; numbers are written out ("twenty three"), because the
CTC vocabulary has no digits. :func:`phrase` draws one phrase from a numpy Generator, so a
seed fixes the whole text of a corpus.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

ONES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
        "ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen",
        "eighteen", "nineteen")
TENS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")
ORDINALS = ("first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth",
            "ninth", "tenth", "eleventh", "twelfth", "fifteenth", "twentieth", "thirtieth")
DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
MONTHS = ("january", "february", "march", "april", "may", "june", "july", "august",
          "september", "october", "november", "december")
ROOMS = ("kitchen", "bedroom", "bathroom", "living room", "hallway", "garden", "office",
         "garage", "basement", "attic", "porch", "dining room", "kids' room", "guest room")
DEVICES = ("lights", "lamp", "fan", "heater", "radio", "music", "speaker", "oven",
           "kettle", "coffee machine", "air conditioner", "dishwasher", "washing machine",
           "vacuum", "camera", "alarm", "sprinkler", "humidifier", "night light", "screen")
OPENABLE = ("front door", "back door", "garage door", "window", "blinds", "curtains", "gate",
            "shutters")
COLORS = ("red", "green", "blue", "yellow", "orange", "purple", "pink", "white", "warm white",
          "cool white")
GENRES = ("jazz", "rock", "classical", "piano", "country", "relaxing", "dance", "folk", "pop",
          "quiet")
UNITS = ("seconds", "minutes", "hours")
PEOPLE = ("mom", "dad", "anna", "ben", "carol", "david", "emma", "frank", "grace", "henry",
          "isabel", "jack", "kate", "leo", "maria", "nick", "olivia", "peter", "sam", "tom",
          "grandma", "grandpa", "the doctor", "the office", "my sister", "my brother")
FOODS = ("milk", "bread", "eggs", "butter", "cheese", "apples", "bananas", "coffee", "tea",
         "rice", "pasta", "tomatoes", "onions", "potatoes", "chicken", "fish", "soup", "juice",
         "sugar", "salt", "carrots", "yogurt", "cereal", "oranges", "lemons", "pizza")
TASKS = ("water the plants", "take out the trash", "feed the cat", "walk the dog",
         "call the bank", "buy a present", "pay the bills", "charge my phone",
         "pick up the kids", "clean the kitchen", "take my medicine", "book a table",
         "check the mail", "stretch my legs", "drink some water", "lock the car")
THINGS = ("keys", "glasses", "phone", "wallet", "shoes", "umbrella", "jacket", "bag",
          "headphones", "charger", "book", "hat")
MEALS = ("soup", "pasta", "pizza", "coffee", "tea", "rice", "chicken", "dinner", "lunch",
         "breakfast", "bread", "cake")
ADJECTIVES = ("cold", "warm", "hot", "quiet", "noisy", "dark", "bright", "sunny", "windy",
              "cloudy", "lovely", "late", "early", "busy", "empty", "ready", "clean", "open",
              "closed", "broken", "fine", "great", "tired", "hungry", "happy")
WHEN = ("today", "tomorrow", "tonight", "this morning", "this afternoon", "this evening",
        "next week", "at noon", "at midnight", "later", "right now", "in a minute",
        "after lunch", "before dinner", "on the weekend")
ANIMALS = ("the cat", "the dog", "the baby", "the bird", "the kids", "our neighbor")
ACTIVITIES = ("go for a walk", "watch a movie", "have dinner", "play a game", "read a book",
              "go to bed", "make some tea", "bake a cake", "go shopping", "clean up",
              "visit grandma", "take a break", "listen to music", "go outside")
WEATHER = ("rain", "snow", "be sunny", "be windy", "get colder", "get warmer", "clear up")
SHORT = ("yes", "no", "stop", "cancel", "pause", "resume", "next", "previous", "go back",
         "okay", "thank you", "never mind", "hello", "good morning", "good night",
         "help", "repeat that", "louder", "quieter", "what time is it", "that's all",
         "i'm home", "i'm leaving", "all done", "not now", "sounds good", "wait a second")


def number(n: int) -> str:
    """0 <= n < 1,000,000 written out: 123 -> "one hundred twenty three"."""
    if not 0 <= n < 1_000_000:
        raise ValueError(f"number {n} is out of range")
    if n < 20:
        return ONES[n]
    if n < 100:
        return TENS[n // 10] + ("" if n % 10 == 0 else " " + ONES[n % 10])
    if n < 1000:
        rest = "" if n % 100 == 0 else " " + number(n % 100)
        return f"{ONES[n // 100]} hundred{rest}"
    rest = "" if n % 1000 == 0 else " " + number(n % 1000)
    return f"{number(n // 1000)} thousand{rest}"


def clock(rng: np.random.Generator) -> str:
    """A time of day as people say it: "seven", "seven thirty", "seven o'clock"."""
    hour = number(int(rng.integers(1, 13)))
    minute = int(rng.choice([0, 0, 5, 10, 15, 20, 30, 40, 45, 50]))
    if minute == 0:
        return hour + (" o'clock" if rng.random() < 0.5 else "")
    return f"{hour} {'oh ' + number(minute) if minute < 10 else number(minute)}"


def _pick(rng: np.random.Generator, words: tuple[str, ...]) -> str:
    return words[int(rng.integers(len(words)))]


def _templates() -> list[tuple[float, Callable[[np.random.Generator], str]]]:
    p = _pick
    return [
        # ------------------------------------------------------------ commands
        (3.0, lambda r: f"turn {p(r, ('on', 'off'))} the {p(r, ROOMS)} {p(r, DEVICES)}"),
        (2.0, lambda r: f"switch {p(r, ('on', 'off'))} the {p(r, DEVICES)}"),
        (2.0, lambda r: f"set a timer for {number(int(r.integers(1, 61)))} {p(r, UNITS)}"),
        (1.5, lambda r: f"set the temperature to {number(int(r.integers(15, 31)))} degrees"),
        (1.5, lambda r: f"{p(r, ('dim', 'brighten'))} the lights in the {p(r, ROOMS)}"),
        (1.0, lambda r: f"change the {p(r, ROOMS)} lights to {p(r, COLORS)}"),
        (1.5, lambda r: f"{p(r, ('open', 'close', 'lock', 'unlock'))} the {p(r, OPENABLE)}"),
        (1.5, lambda r: f"play some {p(r, GENRES)} music in the {p(r, ROOMS)}"),
        (1.0, lambda r: f"turn the volume {p(r, ('up', 'down'))}"),
        (1.0, lambda r: f"set the volume to {number(int(r.integers(0, 11)))}"),
        (1.5, lambda r: f"wake me up at {clock(r)}"),
        (1.5, lambda r: f"remind me to {p(r, TASKS)} {p(r, WHEN)}"),
        (1.0, lambda r: f"what's the weather like {p(r, WHEN)}"),
        (1.0, lambda r: f"call {p(r, PEOPLE)}"),
        (1.0, lambda r: f"add {p(r, FOODS)} to the shopping list"),
        (1.0, lambda r: f"is the {p(r, OPENABLE)} {p(r, ('open', 'closed', 'locked'))}"),
        (0.5, lambda r: f"set an alarm for {p(r, DAYS)} at {clock(r)}"),
        (2.5, lambda r: p(r, SHORT)),
        # ------------------------------------------------------------- numbers
        (1.5, lambda r: number(int(r.integers(0, 100)))),
        (1.0, lambda r: number(int(r.integers(100, 10_000)))),
        (1.0, lambda r: " ".join(ONES[int(d)] for d in r.integers(0, 10, 4))),
        (0.5, lambda r: f"{number(int(r.integers(0, 100)))} point {ONES[int(r.integers(10))]}"),
        (0.5, lambda r: f"the {p(r, ORDINALS)} of {p(r, MONTHS)}"),
        # ------------------------------------------------- ambient sentences
        (1.0, lambda r: f"{p(r, PEOPLE)} is in the {p(r, ROOMS)}"),
        (1.0, lambda r: f"the {p(r, MEALS)} is {p(r, ('ready', 'cold', 'hot', 'gone'))}"),
        (1.0, lambda r: f"it's {p(r, ADJECTIVES)} in the {p(r, ROOMS)}"),
        (1.0, lambda r: f"i'll be home at {clock(r)}"),
        (1.0, lambda r: f"don't forget your {p(r, THINGS)}"),
        (1.0, lambda r: f"where are my {p(r, THINGS)}"),
        (1.0, lambda r: f"the {p(r, DEVICES)} is {p(r, ADJECTIVES)}"),
        (1.0, lambda r: f"i think it's going to {p(r, WEATHER)} {p(r, WHEN)}"),
        (1.0, lambda r: f"let's {p(r, ACTIVITIES)} {p(r, WHEN)}"),
        (1.0, lambda r: f"{p(r, ANIMALS)} {p(r, ('is sleeping', 'is hungry', 'wants to play'))}"),
        (0.5, lambda r: f"we need more {p(r, FOODS)} and {p(r, FOODS)}"),
        (0.5, lambda r: f"see you on {p(r, DAYS)}"),
        (0.5, lambda r: f"it's {number(int(r.integers(0, 40)))} degrees outside"),
    ]


TEMPLATES = _templates()
_WEIGHTS = np.array([w for w, _ in TEMPLATES]) / sum(w for w, _ in TEMPLATES)


def phrase(rng: np.random.Generator) -> str:
    """One phrase, drawn from the templates by weight."""
    _, make = TEMPLATES[int(rng.choice(len(TEMPLATES), p=_WEIGHTS))]
    return " ".join(make(rng).split())


def vocabulary() -> set[str]:
    """Every word a phrase can contain."""
    words: set[str] = set()
    lists = (ONES, TENS, ORDINALS, DAYS, MONTHS, ROOMS, DEVICES, OPENABLE, COLORS, GENRES,
             UNITS, PEOPLE, FOODS, MEALS, TASKS, THINGS, ADJECTIVES, WHEN, ANIMALS, ACTIVITIES,
             WEATHER, SHORT)
    for items in lists:
        for item in items:
            words.update(item.split())
    rng = np.random.default_rng(0)  # the fixed words of the templates
    for _, make in TEMPLATES:
        for _ in range(20):
            words.update(make(rng).split())
    words.update(("hundred", "thousand", "o'clock", "oh", "point"))
    return words
