"""Reading and writing the files stages hand to each other.

Every write is atomic (a temporary file in the same directory, then os.replace) so that a job killed
at any moment never leaves a half-written file that a later stage would take for a finished one.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterable, Iterator

from workflow_scripts.errors import UserError


_UMASK = os.umask(0)
os.umask(_UMASK)


# A model directory's tokenizer: a fast tokenizer's file, the SentencePiece model one is made from, or (ByT5,
# whose bytes need no vocabulary) its config alone. The config check and modeling.load_tokenizer both read this.
TOKENIZER_FILES = ("tokenizer.json", "spiece.model", "tokenizer_config.json")


class DataError(UserError):
    """Bad input data; the message names the file and what is wrong."""


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; move it into place only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; results are meant to be shared
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except OSError as err:
        if err.filename is None or err.filename == tmp:  # a write() names no file: say which output failed
            err.filename = str(path)
        raise
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


LOW_SPACE = 1 << 30  # below this much free space, a failed write is taken for a full disk


@contextlib.contextmanager
def full_disk_named(path: str | os.PathLike) -> Iterator[None]:
    """A write into `path` that fails on a full disk names it: torch.save, safetensors and tokenizers raise
    errors of their own (RuntimeError, SafetensorError, Exception), not OSError with ENOSPC."""
    try:
        yield
    except (DataError, OSError, KeyboardInterrupt):  # cli.run names an OSError's file with its own advice
        raise
    except Exception as err:
        existing = next(p for p in (Path(path), *Path(path).absolute().parents) if p.exists())
        free = shutil.disk_usage(existing).free
        if free >= LOW_SPACE:
            raise
        raise DataError(f"{path}: cannot write ({err}); {free / 2**20:.0f} MiB left on its file system: free disk "
                        "space (or quota); what was written before is kept") from err


def write_text(path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path, obj) -> None:
    write_text(path, json.dumps(obj, indent=2, ensure_ascii=False, sort_keys=True) + "\n")


def write_jsonl(path, records: Iterable[dict]) -> int:
    lines = [json.dumps(r, ensure_ascii=False, sort_keys=True) for r in records]
    write_text(path, "".join(line + "\n" for line in lines))
    return len(lines)


def existing(path) -> Path:
    """`path`, which the reader that calls this needs: a DataError naming it where it is missing."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: file does not exist")
    return path


REWRITE = "delete it to have the job that wrote it run again"


def read_json(path, required: Iterable[str] = ()):
    """A JSON file another stage wrote; with `required`, an object holding those keys."""
    try:
        found = json.loads(existing(path).read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DataError(f"{path}: not valid UTF-8 JSON ({err}); {REWRITE}") from err
    missing = [key for key in required if not isinstance(found, dict) or key not in found]
    if missing:
        raise DataError(f"{path}: no {', '.join(map(repr, missing))} in it; {REWRITE}")
    return found


def read_jsonl(path, required: Iterable[str] = (), allow_empty: bool = False) -> list[dict]:
    """All records of a JSONL file; each must be an object holding the `required` keys."""
    path = existing(path)
    records = []
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: not UTF-8 (byte {err.start}: {err.reason})") from err
    required = tuple(required)
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise DataError(f"{path}:{number}: malformed JSON ({err.msg})") from err
        if not isinstance(record, dict):
            raise DataError(f"{path}:{number}: expected a JSON object, got {type(record).__name__}")
        missing = [key for key in required if key not in record]
        if missing:
            raise DataError(f"{path}:{number}: missing column(s) {', '.join(missing)}")
        records.append(record)
    if not records and not allow_empty:
        raise DataError(f"{path}: empty, no records")
    return records


def read_tsv(path, required: Iterable[str] = (), numbers: Iterable[str] = ()):
    """A TSV table another stage wrote, as a pandas DataFrame, holding the `required` columns and the `numbers`
    columns, which must hold finite numbers (a step, a score: a text or NaN there would be ranked or averaged
    silently, or fail far from the file)."""
    import pandas as pd

    try:
        table = pd.read_csv(existing(path), sep="\t")
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: not a readable table ({str(err).strip()}); {REWRITE}") from err
    numbers = tuple(numbers)
    missing = [column for column in dict.fromkeys([*required, *numbers]) if column not in table.columns]
    if missing:
        raise DataError(f"{path}: no column {', '.join(map(repr, missing))} (it has {', '.join(table.columns)}); "
                        f"{REWRITE}")
    for column in numbers:
        values = pd.to_numeric(table[column], errors="coerce")
        bad = values.isna() | values.isin([float("inf"), float("-inf")])
        if bad.any():
            row = int(bad.to_numpy().nonzero()[0][0])
            value = table[column].iloc[row]
            shown = repr(value) if isinstance(value, str) else value
            raise DataError(f"{path}: column {column!r} holds {shown} in row {row + 1}, not a finite number; {REWRITE}")
    return table


def write_tsv(path, frame) -> None:
    """A pandas DataFrame as TSV, atomically, with a fixed float format so reruns are byte-identical: 8
    significant digits, which keep a decayed learning rate (7e-5 x 1/4000) that fixed decimals would round to 0."""
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, sep="\t", index=False, float_format="%.8g")


def checkpoint_path(run_dir: Path, step: int, saved: bool = True) -> Path:
    """A run's checkpoint directory at `step`. saved: it must be there, as run.json says it is; a checkpoint
    deleted after its run finished is named here, not as a model that cannot be loaded."""
    path = Path(run_dir) / "checkpoints" / f"step-{step:06d}"
    if saved and not path.is_dir():
        raise DataError(f"{path}: a checkpoint of run {Path(run_dir).name} is missing (run.json lists it); delete "
                        f"{run_dir} to train the run again")
    return path
