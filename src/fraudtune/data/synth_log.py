"""`fraudtune data synth-log`: a synthetic card-transaction log in the shape of the common public one, for tests and
benchmarks of `data import`.

Columns: trans_date_trans_time, cc_num, merchant, category, amt, first, last, gender, street, city, state, zip, lat,
long, city_pop, job, dob, trans_num, unix_time, merch_lat, merch_long, is_fraud. Every personal column holds a
realistic-looking fake value (Luhn-valid card numbers, names, streets, birth dates), so that an import which lets
one through is caught. The rows are in time order; the same seed and n give the same file.

Cards buy at their usual merchants and categories, mostly by day. About 1% of the rows are fraud, in bursts: an
online spree (shopping_net, misc_net: high amounts, mostly at night, minutes apart), an in-store run (grocery_pos,
shopping_pos: a few hundred dollars) or card testing (tiny amounts in quick succession). No single column tells the
labels apart: legitimate rows also buy big, late, or twice in an hour.
"""

from __future__ import annotations

import csv
import heapq
import itertools
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from fraudtune.errors import FraudtuneError
from fraudtune.files import progress

COLUMNS = (
    "trans_date_trans_time", "cc_num", "merchant", "category", "amt", "first", "last", "gender", "street", "city",
    "state", "zip", "lat", "long", "city_pop", "job", "dob", "trans_num", "unix_time", "merch_lat", "merch_long",
    "is_fraud",
)  # fmt: skip
PERSONAL = (
    "cc_num",
    "first",
    "last",
    "gender",
    "street",
    "city",
    "state",
    "zip",
    "lat",
    "long",
    "city_pop",
    "job",
    "dob",
)
START = datetime(2025, 1, 1)
ROWS_PER_CARD = 500
PARQUET_BATCH_ROWS = 50_000  # rows per Parquet row group
BURST_CHANCE = 0.0025  # per legitimate transaction: the card is compromised right after it
# category: (share of legitimate rows, median amount, spread of log amount, merchant suffixes)
CATEGORIES: dict[str, tuple[float, float, float, tuple[str, ...]]] = {
    "gas_transport": (10.0, 55, 0.45, ("Fuel", "Gas & Go", "Transit")),
    "grocery_pos": (9.5, 90, 0.55, ("Market", "Grocers", "Foods")),
    "home": (9.5, 45, 0.9, ("Home Center", "Hardware", "Furnishings")),
    "shopping_pos": (9.0, 55, 1.0, ("Outfitters", "Department Store", "Boutique")),
    "kids_pets": (8.7, 45, 0.9, ("Pet Supply", "Toys", "Kids Corner")),
    "shopping_net": (7.5, 60, 1.05, ("Online Store", "Web Outlet", "Direct")),
    "entertainment": (7.2, 40, 1.0, ("Cinema", "Arcade", "Tickets")),
    "food_dining": (7.0, 35, 0.9, ("Diner", "Grill", "Bistro")),
    "personal_care": (7.0, 30, 1.0, ("Salon", "Spa", "Barbers")),
    "health_fitness": (6.6, 40, 0.8, ("Fitness", "Pharmacy", "Gym")),
    "misc_pos": (6.1, 40, 1.0, ("General Store", "Variety", "Supply")),
    "misc_net": (4.9, 40, 1.1, ("Digital", "Online Services", "Web Goods")),
    "grocery_net": (3.5, 50, 0.5, ("Fresh Online", "Grocery Delivery", "Pantry Online")),
    "travel": (3.1, 90, 1.6, ("Travel", "Airlines", "Tours")),
}
MERCHANT_STEMS = (
    "Blue Heron", "Northgate", "Summit", "Riverbend", "Oakline", "Brightwater", "Copperfield", "Stonebridge",
    "Silverlake", "Redwood", "Harborview", "Pinecrest", "Fairhaven", "Westbrook", "Meadowlark", "Ironwood",
)  # fmt: skip
# fraud bursts: (share, categories, median amount, spread, night chance, length range, minutes between)
BURSTS = (
    (0.55, ("shopping_net", "misc_net"), 700, 0.45, 0.7, (2, 6), (3, 40)),
    (0.25, ("grocery_pos", "shopping_pos"), 300, 0.4, 0.4, (2, 4), (10, 60)),
    (0.20, ("gas_transport", "misc_net"), 6, 0.6, 0.5, (3, 6), (1, 10)),
)
FIRST = {
    "F": ("Jennifer", "Stephanie", "Brittany", "Kimberly", "Rebecca", "Vanessa", "Danielle", "Yolanda", "Priscilla"),
    "M": ("Christopher", "Jonathan", "Brandon", "Gregory", "Timothy", "Dwayne", "Reginald", "Terrence", "Nathaniel"),
}
LAST = (
    "Hernandez", "Okafor", "Whitfield", "Delgado", "Castellanos", "Nakamura", "Abernathy", "Pruitt", "Vasquez",
    "Lindqvist", "Oyelaran", "Fitzgerald", "Kowalczyk", "Thibodeaux", "Haverford", "Mcallister",
)  # fmt: skip
STREETS = ("Maple Ridge Rd", "Willow Creek Dr", "Hawthorne Ave", "Juniper Ct", "Larkspur Ln", "Foxglove Way",
           "Quarry Hill Rd", "Birchwood Pkwy", "Kestrel Point", "Tamarack Trl")  # fmt: skip
CITIES = (  # city, state, zip prefix, lat, long, population
    ("Elk Grove", "CA", "957", 38.41, -121.37, 176124),
    ("Round Rock", "TX", "786", 30.51, -97.68, 133372),
    ("Cary", "NC", "275", 35.79, -78.78, 174721),
    ("Olathe", "KS", "660", 38.88, -94.82, 141290),
    ("Gresham", "OR", "970", 45.50, -122.43, 114247),
    ("Billings", "MT", "591", 45.78, -108.50, 117116),
    ("Clarksville", "TN", "370", 36.53, -87.36, 166722),
    ("Sioux Falls", "SD", "571", 43.54, -96.73, 192517),
)
JOBS = ("Radiographer, diagnostic", "Civil engineer, contracting", "Secondary school teacher", "Paramedic",
        "Quantity surveyor", "Hydrologist", "Copywriter, advertising", "Landscape architect")  # fmt: skip


@dataclass
class Card:
    person: dict[str, Any]
    rate_per_day: float
    category_weights: list[float]
    favourites: dict[str, list[str]]


def synth_log(out: Path, n: int, seed: int, parquet: bool = False) -> dict[str, Any]:
    """Write `n` rows of a synthetic log to `out` (CSV, or Parquet with `parquet` or a .parquet name).

    Args:
        out: the file to write.
        n: number of rows.
        seed: everything random derives from it.
        parquet: write Parquet (pyarrow) instead of CSV.
    """
    if n < 1:
        raise FraudtuneError(f"--n {n}: must be at least 1")
    out = Path(out)
    parquet = parquet or out.suffix == ".parquet"
    out.parent.mkdir(parents=True, exist_ok=True)
    rows = progress(_rows(n, random.Random(seed)), total=n, desc="synth-log", unit="row")
    written, frauds = (_write_parquet if parquet else _write_csv)(out, iter(rows))
    return {
        "out": str(out),
        "format": "parquet" if parquet else "csv",
        "rows": written,
        "fraud_rows": frauds,
        "seed": seed,
    }


def _rows(n: int, rng: random.Random) -> Iterator[list[Any]]:
    """The log in time order: a heap of each card's next transaction (bursts of fraud pushed in as they start)."""
    merchants = {
        c: [f"{stem} {suffix}" for stem in MERCHANT_STEMS for suffix in spec[3]] for c, spec in CATEGORIES.items()
    }
    cards = [_card(rng, merchants) for _ in range(max(8, n // ROWS_PER_CARD))]
    heap: list[tuple[float, int, int, tuple | None]] = []
    seq = 0
    for index, card in enumerate(cards):
        heap.append((rng.expovariate(card.rate_per_day) * 86400, seq := seq + 1, index, None))
    heapq.heapify(heap)
    for _ in range(n):
        seconds, _, index, fraud = heapq.heappop(heap)
        card = cards[index]
        if fraud is None:
            gap = _daytime(seconds + rng.expovariate(card.rate_per_day) * 86400, rng) - seconds
            heapq.heappush(heap, (seconds + gap, seq := seq + 1, index, None))
            if rng.random() < BURST_CHANCE:
                for when, burst in _burst(seconds, rng):
                    heapq.heappush(heap, (when, seq := seq + 1, index, burst))
        yield _row(seconds, card, fraud, merchants, rng)


def _card(rng: random.Random, merchants: dict[str, list[str]]) -> Card:
    gender = rng.choice("FM")
    city, state, zip_prefix, lat, long, population = rng.choice(CITIES)
    person = {
        "cc_num": _card_number(rng),
        "first": rng.choice(FIRST[gender]),
        "last": rng.choice(LAST),
        "gender": gender,
        "street": f"{rng.randint(100, 9899)} {rng.choice(STREETS)}",
        "city": city,
        "state": state,
        "zip": int(f"{zip_prefix}{rng.randint(10, 99)}"),
        "lat": round(lat + rng.uniform(-0.2, 0.2), 4),
        "long": round(long + rng.uniform(-0.2, 0.2), 4),
        "city_pop": population,
        "job": rng.choice(JOBS),
        "dob": (datetime(1945, 1, 1) + timedelta(days=rng.randint(0, 21_000))).strftime("%Y-%m-%d"),
    }
    weights = [spec[0] * rng.lognormvariate(0, 0.6) for spec in CATEGORIES.values()]
    favourites = {c: rng.sample(pool, 3) for c, pool in merchants.items()}
    return Card(person, rng.lognormvariate(math.log(1.5), 0.5), weights, favourites)


def _card_number(rng: random.Random) -> int:
    """16 digits with a valid Luhn check digit, like a real card number."""
    digits = [rng.choice((4, 5))] + [rng.randint(0, 9) for _ in range(14)]
    total = sum(d if i % 2 else (d * 2 - 9 if d > 4 else d * 2) for i, d in enumerate(reversed(digits)))
    return int("".join(map(str, digits)) + str((10 - total % 10) % 10))


def _daytime(seconds: float, rng: random.Random) -> float:
    """Most legitimate buying happens by day: a time before 6 am usually moves to the morning."""
    hour = (seconds % 86400) / 3600
    if hour < 6 and rng.random() < 0.7:
        seconds += (6 - hour) * 3600 + rng.uniform(0, 4 * 3600)
    return seconds


def _burst(after: float, rng: random.Random) -> list[tuple[float, tuple]]:
    """Times and (category, amount) of one fraud burst starting soon after `after`."""
    _, categories, median, spread, night, (low, high), (gap_low, gap_high) = rng.choices(
        BURSTS, weights=[b[0] for b in BURSTS]
    )[0]
    start = after + rng.uniform(600, 2 * 86400)
    if rng.random() < night:  # that night or the next, between 22:00 and 04:00, never before `after`
        start = start - start % 86400 + 22 * 3600 + rng.uniform(0, 6 * 3600)
        start += 86400 if start <= after else 0
    events, when = [], start
    for _ in range(rng.randint(low, high)):
        amount = max(1.0, rng.lognormvariate(math.log(median), spread))
        events.append((when, (rng.choice(categories), round(amount, 2))))
        when += rng.uniform(gap_low, gap_high) * 60
    return events


def _row(seconds: float, card: Card, fraud: tuple | None, merchants: dict[str, list[str]], rng: random.Random) -> list:
    when = START + timedelta(seconds=int(seconds))
    if fraud is None:
        category = rng.choices(list(CATEGORIES), weights=card.category_weights)[0]
        _, median, spread, _ = CATEGORIES[category]
        amount = round(max(1.0, rng.lognormvariate(math.log(median), spread)), 2)
        pool = card.favourites[category] if rng.random() < 0.7 else merchants[category]
    else:
        category, amount = fraud
        pool = merchants[category]
    p = card.person
    return [
        when.strftime("%Y-%m-%d %H:%M:%S"), p["cc_num"], rng.choice(pool), category, amount, p["first"], p["last"],
        p["gender"], p["street"], p["city"], p["state"], p["zip"], p["lat"], p["long"], p["city_pop"], p["job"],
        p["dob"], f"{rng.getrandbits(128):032x}", int((when - datetime(1970, 1, 1)).total_seconds()),
        round(p["lat"] + rng.uniform(-1, 1), 6), round(p["long"] + rng.uniform(-1, 1), 6), int(fraud is not None),
    ]  # fmt: skip


def _write_csv(out: Path, rows: Iterator[list[Any]]) -> tuple[int, int]:
    """(rows written, fraud rows)."""
    written = frauds = 0
    with open(out, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        for row in rows:
            row[4] = f"{row[4]:.2f}"
            written, frauds = written + 1, frauds + row[-1]
            writer.writerow(row)
    return written, frauds


def _write_parquet(out: Path, rows: Iterator[list[Any]]) -> tuple[int, int]:
    """(rows written, fraud rows); `rows` is one iterator, drawn PARQUET_BATCH_ROWS at a time."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    types = {"cc_num": pa.int64(), "amt": pa.float64(), "zip": pa.int64(), "lat": pa.float64(), "long": pa.float64(),
             "city_pop": pa.int64(), "unix_time": pa.int64(), "merch_lat": pa.float64(), "merch_long": pa.float64(),
             "is_fraud": pa.int64()}  # fmt: skip
    schema = pa.schema([(name, types.get(name, pa.string())) for name in COLUMNS])
    written = frauds = 0
    with pq.ParquetWriter(out, schema) as writer:
        while batch := list(itertools.islice(rows, PARQUET_BATCH_ROWS)):
            written, frauds = written + len(batch), frauds + sum(row[-1] for row in batch)
            columns = [pa.array([row[i] for row in batch], type=schema.field(i).type) for i in range(len(COLUMNS))]
            writer.write_table(pa.Table.from_arrays(columns, schema=schema))
    return written, frauds
