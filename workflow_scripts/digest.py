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


def fingerprint(path: str) -> str:
    """What stands in a spec for the content of a user's own file, directory or glob pattern (a local model, a
    dataset, the LID model): each file's name, size and modification time, as Snakemake itself judges files.
    Replacing such a file then gives new paths instead of reusing results computed from the old one; hashing
    gigabytes of weights every time the workflow starts would cost more than it protects."""
    import glob
    from pathlib import Path

    stats = []
    for match in sorted(glob.glob(path)) if glob.has_magic(path) else [path]:
        root = Path(match)
        files = sorted(f for f in root.rglob("*") if f.is_file()) if root.is_dir() else [root]
        stats += [[str(f), f.stat().st_size, f.stat().st_mtime_ns] for f in files if f.is_file()]
    return digest(stats)
