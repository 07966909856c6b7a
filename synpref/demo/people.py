"""Who asks: names, cities and jobs, and the personas that make every fresh pair unique."""

from __future__ import annotations

import math
import random

FIRST_NAMES = (
    "Amara", "Ines", "Kofi", "Mei", "Lars", "Priya", "Diego", "Yuki", "Fatima", "Tomasz", "Aisha", "Mateo",
    "Hana", "Olu", "Sven", "Leila", "Ravi", "Chloe", "Jonas", "Nadia", "Emeka", "Sofia", "Kenji", "Zara",
    "Bruno", "Anika", "Malik", "Elena", "Tariq", "Freya", "Jamal", "Lucia", "Arjun", "Ingrid", "Kwame",
    "Rosa", "Dmitri", "Ayesha", "Felix", "Noor", "Paolo", "Sakura", "Idris", "Maren", "Hugo", "Thandi",
    "Omar", "Greta", "Vikram", "Lina", "Chidi", "Astrid", "Rafael", "Mira", "Sami", "Elif", "Nikolai",
    "Zainab", "Oscar", "Adaeze", "Luca", "Min-jun", "Esther", "Karim", "Wren", "Tobias", "Yara", "Bilal",
    "Clara", "Dev", "Signe", "Andile", "Marta", "Jun", "Halima", "Ezra", "Ana", "Rohan", "Ilse", "Tunde",
)
LAST_NAMES = (
    "Okafor", "Silva", "Mensah", "Chen", "Nilsson", "Sharma", "Alvarez", "Tanaka", "Haddad", "Kowalski",
    "Bello", "Rossi", "Kim", "Adeyemi", "Larsen", "Farahani", "Iyer", "Martin", "Becker", "Petrova",
    "Eze", "Moreau", "Sato", "Hussain", "Costa", "Lindqvist", "Diallo", "Novak", "Rahman", "Fischer",
    "Osei", "Garcia", "Nakamura", "Khan", "Dubois", "Andersen", "Mwangi", "Horvat", "Yilmaz", "Murphy",
    "Nguyen", "Schmidt", "Abubakar", "Romano", "Park", "Oyelaran", "Jensen", "Mendes", "Ivanova", "Walsh",
    "Banerjee", "Lopez", "Achebe", "Weber", "Suzuki", "Karimi", "Dlamini", "Moretti", "Lee", "Boateng",
    "Svensson", "Torres", "Hoang", "Kaur", "Lambert", "Obi", "Ferreira", "Wagner", "Aziz", "Kruger",
    "Nowak", "Santos", "Ito", "Malik", "Bernard", "Haugen", "Ncube", "Vargas", "Choi", "Quinn",
)
CITIES = (
    "Porto", "Leeds", "Accra", "Osaka", "Gothenburg", "Pune", "Valencia", "Lagos", "Krakow", "Toronto",
    "Nairobi", "Lyon", "Busan", "Adelaide", "Bergen", "Tbilisi", "Cork", "Medellin", "Hamburg", "Hanoi",
    "Durban", "Bologna", "Montreal", "Izmir", "Glasgow", "Kyoto", "Rotterdam", "Cusco", "Tallinn",
    "Chennai", "Marseille", "Auckland", "Kumasi", "Seville", "Brno", "Halifax", "Kazan", "Dunedin",
    "Lisbon", "Bristol", "Mombasa", "Graz", "Cebu", "Quito", "Aarhus", "Tromso", "Bilbao", "Perth",
    "Calgary", "Sapporo",
)
OCCUPATIONS = (
    "nurse", "teacher", "carpenter", "software developer", "bus driver", "pharmacist", "chef", "librarian",
    "electrician", "student", "accountant", "graphic designer", "farmer", "paramedic", "architect",
    "barista", "journalist", "mechanic", "physiotherapist", "translator", "retired engineer", "florist",
    "data analyst", "plumber", "photographer", "social worker", "baker", "lab technician", "tour guide",
    "shop owner",
)
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


PERSONA_SPACE = len(FIRST_NAMES) * len(LAST_NAMES) * len(CITIES) * len(OCCUPATIONS)  # 9.6 million
INTROS = (
    "Hi, I'm {first} {last}, {a} {job} from {city}.",
    "{first} {last} here, {a} {job} in {city}.",
    "My name is {first} {last} and I work as {a} {job} in {city}.",
    "Hello! {first} {last} from {city} ({job}).",
)


class Personas:
    """Persona n for n < PERSONA_SPACE, all distinct: an affine permutation of the space."""

    def __init__(self, seed: int):
        rng = random.Random(f"personas/{seed}")
        self.step = rng.randrange(PERSONA_SPACE // 3, PERSONA_SPACE)
        while math.gcd(self.step, PERSONA_SPACE) != 1:
            self.step += 1
        self.offset = rng.randrange(PERSONA_SPACE)

    def intro(self, n: int, rng: random.Random) -> str:
        idx = (self.step * n + self.offset) % PERSONA_SPACE
        idx, first = divmod(idx, len(FIRST_NAMES))
        idx, last = divmod(idx, len(LAST_NAMES))
        job, city = divmod(idx, len(CITIES))
        job_name = OCCUPATIONS[job]
        return rng.choice(INTROS).format(first=FIRST_NAMES[first], last=LAST_NAMES[last], a=article(job_name),
                                         job=job_name, city=CITIES[city])
