"""Content addresses: a short digest of everything that determines an output."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

DIGEST_LENGTH = 10


def canonical_json(obj) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def digest(obj) -> str:
    """Same inputs, same digest, in any process and on any machine (no hash() randomisation)."""
    return hashlib.sha256(canonical_json(obj).encode("utf-8")).hexdigest()[:DIGEST_LENGTH]


def visible_files(directory: Path):
    """(directory, file names) of a directory tree, following linked directories, without hidden files or
    directories (names starting with a dot)."""
    import os

    for top, directories, names in os.walk(directory, followlinks=True):
        directories[:] = [name for name in directories if not name.startswith(".")]
        yield top, [name for name in names if not name.startswith(".")]


class FileHashes:
    """The content of a user's own files (a local model, dataset files, the LID model) for the digests: the
    sha256 of each file (and of each column of a parallel table), kept in a JSON file by path, size and modification
    time, so that a file is read again only after it changed or was copied, and a copy with the same bytes keeps
    its results."""

    def __init__(self, cache: Path):
        self.cache = cache
        try:
            self.known = json.loads(cache.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            self.known = {}
        self.stale: set[str] = set()  # files hashed since the cache was last written

    def fingerprint(self, pattern: str) -> str:
        """The digest of every file a path, directory or glob pattern names: names relative to what matched,
        and contents. A pattern that matches nothing has a fingerprint too, so it is never an error here.
        In a directory (a local model), hidden files and directories are left out: from_pretrained reads none, and
        `hf download --local-dir` rewrites its .cache/huggingface/download/*.metadata (a timestamp) on every run,
        as a git clone's .git changes on `git status`."""
        import glob

        files = []
        matches = sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]
        for match in map(Path, matches):
            if match.is_dir():  # os.walk, unlike Path.rglob, follows a linked directory (HF caches link files)
                files += sorted((Path(top) / name, (Path(top) / name).relative_to(match).as_posix())
                                for top, names in visible_files(match) for name in names)
            elif match.is_file():
                files.append((match, match.name))
        found = digest([[name, self.sha256(path)] for path, name in files])
        if self.stale:  # one write per pattern, not per file
            self.save()
        return found

    def sha256(self, path: Path) -> str:
        stat, key = path.stat(), str(path.resolve())
        if self.known.get(key, [None, None])[:2] == [stat.st_size, stat.st_mtime_ns]:
            return self.known[key][2]
        self.stale.add(key)
        content = hashlib.sha256()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 24), b""):
                content.update(block)
        self.known[key] = [stat.st_size, stat.st_mtime_ns, content.hexdigest()]
        return self.known[key][2]

    def column_hashes(self, path: Path, read_rows) -> dict[str, str]:
        """The sha256 of each column of a table file, by column name: its sentences with their row numbers, which
        draw XLRS's sample (xlrs.load_parallel), empty cells left out. A parallel table's XLRS job is known by its
        own languages' columns, so a new language's column, or a row appended for it alone, moves no other job;
        `read_rows` (the loader's reader) runs once per size and modification time, as sha256 does, not once for
        each of a study's hundreds of XLRS specs."""
        stat, key = path.stat(), f"sentences by row:{path.resolve()}"  # beside the file's sha256
        if self.known.get(key, [None, None])[:2] == [stat.st_size, stat.st_mtime_ns]:
            return self.known[key][2]
        rows = read_rows(path)
        columns = {name: hashlib.sha256(json.dumps([[number, row[name]] for number, row in enumerate(rows)
                                                    if str(row.get(name) or "").strip()], ensure_ascii=False,
                                                   default=str).encode("utf-8")).hexdigest()
                   for name in dict.fromkeys(name for row in rows for name in row)}
        self.known[key] = [stat.st_size, stat.st_mtime_ns, columns]
        self.save()
        return columns

    def save(self) -> None:
        """Write the cache (whole, so jobs that plan at once never mix theirs); where it cannot be written (a
        read-only results directory) files are hashed again."""
        from workflow_scripts.files import write_json

        try:
            write_json(self.cache, self.known)
        except OSError:
            pass
        self.stale.clear()
