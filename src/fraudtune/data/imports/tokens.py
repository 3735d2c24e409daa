"""Card numbers as keyed, irreversible tokens: HMAC-SHA256 under a secret key that never sits beside the data.

Without the key nobody can link a token back to a card, not even by hashing every possible card number (a plain
hash of a 16-digit number is reversed by enumeration in hours). The same key gives the same token in every import,
so two imports of one issuer can be joined; another key gives unrelated tokens.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from pathlib import Path

from fraudtune.errors import FraudtuneError

MIN_KEY_BYTES = 16
TOKEN_PREFIX = "K-"
TOKEN_HEX = 20  # 80 bits: no collision to expect among a billion cards
_SEPARATORS = re.compile(r"[\s./-]")  # 4111 1111 ..., 4111-1111-..., 4111.1111..., 4111/1111...


def load_key(key_file: Path | None, key_env: str, out_dir: Path, where: str) -> tuple[bytes, str]:
    """The token key and a description of where it came from (for the report; never the key itself).

    A key file wins over the environment variable. `where` names the mapping key for the one-line error."""
    if key_file is not None:
        key_file = Path(key_file)
        if key_file.resolve().is_relative_to(Path(out_dir).resolve()):
            raise FraudtuneError(
                f"{key_file}: the token key file is inside the output folder {out_dir}; keep the key away from the data"
            )
        try:
            key = key_file.read_bytes().strip()
        except OSError as exc:
            raise FraudtuneError(f"{key_file}: cannot read the token key file ({exc.strerror})") from exc
        source = f"key file {key_file.name}"
    else:
        key = os.environ.get(key_env, "").strip().encode()
        if not key:
            raise FraudtuneError(
                f"{where}: the card column is turned into keyed tokens and no key was given; set the environment "
                f"variable {key_env} (e.g. export {key_env}=$(openssl rand -hex 32)) or pass --key-file PATH"
            )
        source = f"environment variable {key_env}"
    if len(key) < MIN_KEY_BYTES:
        raise FraudtuneError(
            f"{where}: the token key from the {source} has {len(key)} bytes; use at least {MIN_KEY_BYTES} random "
            "bytes (openssl rand -hex 32)"
        )
    return key, source


def card_token(key: bytes, card: str) -> str:
    """K- and 20 hex digits of HMAC-SHA256(key, card number without its separators: spaces, dashes, dots, slashes)."""
    digest = hmac.new(key, _SEPARATORS.sub("", card).encode("utf-8"), hashlib.sha256).hexdigest()
    return TOKEN_PREFIX + digest[:TOKEN_HEX]


def key_id(key: bytes) -> str:
    """A short fingerprint that tells two imports made with the same key apart from others, and reveals no key."""
    return hmac.new(key, b"fraudtune token key id", hashlib.sha256).hexdigest()[:12]
