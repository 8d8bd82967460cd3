"""Stable hashes: of texts (which vectors a text has), and short ones of JSON-able values (fingerprints)."""

import hashlib
import json


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def digest(*values, length: int = 16) -> str:
    """A short hash of `values` as JSON (dict keys sorted, other types as text): equal values, equal digests."""
    return hashlib.sha256(json.dumps(values, default=str, sort_keys=True).encode()).hexdigest()[:length]
