"""Content addresses: a short digest of everything that determines an output."""
from __future__ import annotations

import hashlib
import json

DIGEST_LENGTH = 10


def canonical_json(obj) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def digest(obj) -> str:
    """Same inputs, same digest, in any process and on any machine (no hash() randomisation)."""
    return hashlib.sha256(canonical_json(obj).encode("utf-8")).hexdigest()[:DIGEST_LENGTH]
