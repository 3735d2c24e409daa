"""The synthetic world the generator draws from: merchants, countries, and which channel/code fits which category.

Everything here is fixed data (no randomness), so a merchant keeps its id and category across runs and seeds.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass

from fraudtune.data.schema import CATEGORIES

# local hour is 0-23; 0-4 is "unusual" in the demo profile, so normal traffic is weighted to the day
DAY_HOUR_WEIGHTS = {
    5: 1,
    6: 2,
    7: 4,
    8: 6,
    9: 7,
    10: 8,
    11: 9,
    12: 10,
    13: 9,
    14: 8,
    15: 8,
    16: 8,
    17: 9,
    18: 10,
    19: 9,
    20: 8,
    21: 6,
    22: 4,
    23: 2,
}
HOME_COUNTRY_WEIGHTS = {
    "US": 50,
    "CA": 8,
    "GB": 8,
    "DE": 6,
    "FR": 5,
    "AU": 4,
    "ES": 3,
    "IT": 3,
    "NL": 3,
    "JP": 3,
    "MX": 3,
    "IE": 2,
    "BR": 2,
}
# destinations of ordinary travel and cross-border shopping (none is on the demo profile's high-risk list)
FOREIGN_COUNTRIES = (
    "FR",
    "IT",
    "ES",
    "GB",
    "DE",
    "MX",
    "JP",
    "TH",
    "TR",
    "AE",
    "PT",
    "GR",
    "CA",
    "US",
    "CN",
    "SG",
    "ZA",
    "BR",
    "AU",
    "NL",
    "CH",
    "IN",
    "KR",
    "HK",
)

# code -> channel (SPEC 3.2 names the codes); an ATM withdrawal is chip and PIN (TC-01) on the atm channel
CHANNEL_OF_CODE = {
    "TC-01": "in_person",
    "TC-05": "in_person",
    "TC-07": "in_person",
    "TC-33": "in_person",
    "TC-12": "recurring",
    "TC-20": "online",
    "TC-21": "online",
    "TC-44": "online",
}
CHANNELS_OF_CATEGORY = {
    "grocery": {"in_person": 8, "online": 2},
    "restaurant": {"in_person": 8, "online": 2},
    "gas": {"in_person": 1},
    "pharmacy": {"in_person": 8, "online": 2},
    "utilities": {"recurring": 6, "online": 4},
    "subscription": {"recurring": 7, "online": 3},
    "travel": {"online": 7, "in_person": 3},
    "hotel": {"in_person": 5, "online": 5},
    "clothing": {"in_person": 6, "online": 4},
    "entertainment": {"in_person": 5, "online": 3, "recurring": 2},
    "online_marketplace": {"online": 1},
    "electronics": {"in_person": 5, "online": 5},
    "jewelry": {"in_person": 8, "online": 2},
    "gift_cards": {"in_person": 4, "online": 6},
    "crypto_exchange": {"online": 1},
    "money_transfer": {"online": 7, "in_person": 3},
    "atm_cash": {"atm": 1},
}
FORCE_POST_CATEGORIES = (
    "grocery",
    "restaurant",
    "gas",
    "hotel",
    "travel",
    "clothing",
    "electronics",
    "jewelry",
    "entertainment",
)
FUNDING_CATEGORIES = ("crypto_exchange", "money_transfer")
# typical customer average spend by category: (low, high) of a log-uniform draw
AVG_AMOUNT_RANGE = {
    "grocery": (8, 150),
    "restaurant": (6, 120),
    "gas": (15, 90),
    "pharmacy": (5, 80),
    "utilities": (30, 300),
    "subscription": (3, 60),
    "travel": (150, 1500),
    "hotel": (100, 800),
    "clothing": (15, 250),
    "entertainment": (5, 120),
    "online_marketplace": (8, 250),
    "electronics": (40, 900),
    "jewelry": (80, 2000),
    "gift_cards": (10, 200),
    "crypto_exchange": (50, 2000),
    "money_transfer": (50, 1500),
    "atm_cash": (40, 400),
}

_ABBREV = {
    "grocery": "GROC",
    "restaurant": "REST",
    "gas": "FUEL",
    "pharmacy": "PHAR",
    "utilities": "UTIL",
    "subscription": "SUBS",
    "travel": "TRVL",
    "hotel": "HOTL",
    "clothing": "CLTH",
    "entertainment": "ENTM",
    "online_marketplace": "MKTP",
    "electronics": "ELEC",
    "jewelry": "JEWL",
    "gift_cards": "GIFT",
    "crypto_exchange": "CRYP",
    "money_transfer": "XFER",
    "atm_cash": "ATM",
}
_NAMES = {
    "grocery": ("FreshMart Grocers", "GreenLeaf Market", "Corner Pantry", "Harvest Basket", "Valley Foods Co-op"),
    "restaurant": ("Harbor Grill", "Luigi's Trattoria", "Golden Wok", "The Daily Bagel", "Sakura Sushi Bar"),
    "gas": ("QuickStop Fuel", "Sunrise Gas & Go", "Highway 9 Fuel", "PetroPoint", "Maple Service Center"),
    "pharmacy": ("CareWell Pharmacy", "HealthFirst Drugs", "Main Street Apothecary", "MediQuick", "Family Rx"),
    "utilities": (
        "City Power & Light",
        "BlueWater Utilities",
        "Metro Gas Company",
        "ClearLine Telecom",
        "Northside Broadband",
    ),
    "subscription": ("StreamBox Premium", "CloudVault Storage", "DailyNews Digital", "FitTrack Plus", "MusicWave"),
    "travel": ("SkyBridge Airlines", "EuroRail Tickets", "Compass Travel Agency", "CityCab Rides", "Atlas Car Rental"),
    "hotel": ("Grand Plaza Hotel", "Seaside Inn", "Metro Suites", "Alpine Lodge", "Riverside Resort"),
    "clothing": ("Urban Threads", "Denim & Co", "Northwind Outfitters", "Velvet Boutique", "StepUp Shoes"),
    "entertainment": ("Starlight Cinemas", "Bowl-o-Rama", "City Arena Tickets", "GameZone Arcade", "Lakeside Theater"),
    "online_marketplace": ("ShopSphere", "BazaarHub", "MarketNest", "TradePost Online", "DealDock"),
    "electronics": ("TechNova Electronics", "Circuit Outlet", "PixelPoint", "GadgetGarage", "VoltHouse"),
    "jewelry": ("Diamond Lane Jewelers", "Goldsmith & Sons", "Silver Crest", "Timepiece Gallery", "Luna Gems"),
    "gift_cards": ("GiftCardMall", "CardCentral Gifts", "PrepaidPlus", "eGift Express", "GiftHub"),
    "crypto_exchange": ("CoinHarbor", "BitBridge Exchange", "BlockVault", "SatoshiSquare", "CryptoNest"),
    "money_transfer": ("SendWave Transfers", "GlobeRemit", "PayBridge Money", "QuickWire", "RemitEasy"),
    "atm_cash": (
        "FirstBank ATM",
        "Citywide ATM Network",
        "Allpoint Cash",
        "Harbor Savings ATM",
        "Metro Credit Union ATM",
    ),
}
# merchants of the fraud ring behind the demo profile's historical FRAUD_RING_MERCHANT pattern: innocuous names
_RING = (
    ("M-QXSHOP", "QX Shopping Hub", "online_marketplace"),
    ("M-QXELEC", "QX Digital Outlet", "electronics"),
    ("M-QXGIFT", "QX Gift Depot", "gift_cards"),
    ("M-QXLUX", "QX Luxe Goods", "jewelry"),
    ("M-QXWEAR", "QX Apparel", "clothing"),
    ("M-QXTRIP", "QX Travel Deals", "travel"),
)
# how a listed merchant id (e.g. a blacklist entry) hints at its category
_ID_HINTS = (
    ("GIFT", "gift_cards"),
    ("TOPUP", "money_transfer"),
    ("PAY", "money_transfer"),
    ("WATCH", "jewelry"),
    ("LUX", "jewelry"),
    ("CRYPTO", "crypto_exchange"),
    ("COIN", "crypto_exchange"),
    ("PHARMA", "pharmacy"),
    ("FUEL", "gas"),
    ("DEAL", "online_marketplace"),
    ("SHOP", "online_marketplace"),
    ("ELEC", "electronics"),
)


@dataclass(frozen=True)
class Merchant:
    id: str
    name: str
    category: str


def _number(name: str) -> str:
    """A stable 4-digit id suffix from the name (same merchant, same id, every run)."""
    return f"{int(hashlib.sha1(name.encode()).hexdigest(), 16) % 10_000:04d}"


MERCHANTS: dict[str, tuple[Merchant, ...]] = {
    cat: tuple(Merchant(f"M-{_ABBREV[cat]}-{_number(name)}", name, cat) for name in _NAMES[cat]) for cat in CATEGORIES
}
RING_MERCHANTS = tuple(Merchant(f"{prefix}-{_number(name)}", name, cat) for prefix, name, cat in _RING)


def merchant_for_id(merchant_id: str, fallback_category: str) -> Merchant:
    """A merchant for an id a profile lists (blacklist): a readable name and a category hinted by the id."""
    for m in RING_MERCHANTS + tuple(m for ms in MERCHANTS.values() for m in ms):
        if m.id == merchant_id:
            return m
    stem = merchant_id.removeprefix("M-").rsplit("-", 1)[0]
    category = next((cat for hint, cat in _ID_HINTS if hint in stem.upper()), fallback_category)
    return Merchant(merchant_id, stem.title().replace("-", " "), category)


def lookalike_id(merchant_id: str, listed: list[str], rng: random.Random) -> str:
    """Another merchant id with the same stem and a different number (M-QUICKGIFT-0007 -> M-QUICKGIFT-0417):
    a listed id is learnt exactly, not by its name."""
    stem, _, number = merchant_id.rpartition("-")
    if not stem or not number.isdigit():
        stem, number = merchant_id, "0000"
    while True:
        candidate = f"{stem}-{rng.randrange(10 ** len(number)):0{len(number)}d}"
        if candidate != merchant_id and candidate not in listed:
            return candidate


def compatible(category: str, txn_code: str, channel: str) -> bool:
    """Does this code/channel make sense for this category (atm only for atm_cash, TC-44 only for funding...)?"""
    if category == "atm_cash" or channel == "atm":
        return category == "atm_cash" and channel == "atm" and txn_code == "TC-01"
    if CHANNEL_OF_CODE.get(txn_code) != channel or channel not in CHANNELS_OF_CATEGORY[category]:
        return False
    if txn_code == "TC-44":
        return category in FUNDING_CATEGORIES
    if txn_code == "TC-33":
        return category in FORCE_POST_CATEGORIES
    return True


def codes_for(category: str, channel: str) -> dict[str, float]:
    """Plausible codes and their weights for ordinary traffic of one category on one channel."""
    weights = {
        "in_person": {"TC-01": 45, "TC-05": 45, "TC-07": 4, "TC-33": 6},
        "online": {"TC-20": 55, "TC-21": 40, "TC-44": 30},
        "recurring": {"TC-12": 1},
        "atm": {"TC-01": 1},
    }[channel]
    return {code: w for code, w in weights.items() if compatible(category, code, channel)}
