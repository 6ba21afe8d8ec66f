"""What every stage's command line shares: a JSON spec argument and a clean error exit."""
from __future__ import annotations

import argparse
import errno
import json
import logging
import os
import socket
import sys
from pathlib import Path

from workflow_scripts.errors import UserError


SPEED_VARIABLE = "XLGEN_SPEED"
BATCH_SIZE_VARIABLE = "XLGEN_BATCH_SIZE"
# torch.compile's cache of compiled code (inductor's: graphs, kernels, autotuning), keyed by what it compiled, the
# device and the versions, so that a later job with the same shapes loads instead of compiling. On the H200 one
# training shape of mT5-base compiled in 82 s (benchmarks/record.json); on this project's CPU a cached compile of
# the benchmark's tiny model took 3.6 s against 41 s cold. torch's default cache is under /tmp, private to a node
# and on many clusters to a job, so the workflow sets one beside its results (rules/common.smk).
COMPILE_CACHE_VARIABLE = "TORCHINDUCTOR_CACHE_DIR"
# read when huggingface_hub (transformers' loading and saving bars) and datasets are imported, after cli.run starts
PROGRESS_BAR_VARIABLES = ("HF_HUB_DISABLE_PROGRESS_BARS", "HF_DATASETS_DISABLE_PROGRESS_BARS")
# What the machine, not the code, is at fault for, and what to do about it.
STORAGE_ADVICE = {errno.ENOSPC: "free disk space", errno.EDQUOT: "free space within your quota",
                  errno.EFBIG: "the file is over a size limit (ulimit -f)", errno.EROFS: "the file system is read-only",
                  errno.EACCES: "check the permissions", errno.EPERM: "check the permissions"}


def program() -> str | None:
    """A stage module's name as it is run (python -m workflow_scripts.xlrs), for its usage line; else argparse's."""
    module = getattr(getattr(sys.modules.get("__main__"), "__spec__", None), "name", "")
    return f"python -m {module}" if module.startswith("workflow_scripts.") else None


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=program(), description=description,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--spec", type=json.loads, required=True,
                   help="JSON object: everything that determines this output (its digest's inputs)")
    return p


def add_speed(p: argparse.ArgumentParser) -> None:
    """The GPU stages' --speed: how fast, not what (modeling.SPEED_DEFAULTS); not part of the spec or its digest.
    The workflow passes the config's `speed` section in the environment variable SPEED_VARIABLE."""
    from workflow_scripts.modeling import SPEED_DEFAULTS

    p.add_argument("--speed", type=json.loads, default=os.environ.get(SPEED_VARIABLE, "{}"),
                   help=f"JSON object overriding the speed settings {json.dumps(SPEED_DEFAULTS)} "
                        f"(default: ${SPEED_VARIABLE}, which the workflow sets from the config's speed section)")


def add_batch_size(p: argparse.ArgumentParser, section: str) -> None:
    """--batch-size of decoding and XLRS: like the speed settings, how fast, not what (padding is masked), so
    the workflow passes `decode.batch_size` and `xlrs.batch_size` in BATCH_SIZE_VARIABLE, not as params."""
    sizes = json.loads(os.environ.get(BATCH_SIZE_VARIABLE, "{}"))
    p.add_argument("--batch-size", type=int, default=sizes.get(section, 64),
                   help=f"sequences per forward pass (default: the config's {section}.batch_size, which the "
                        f"workflow passes in ${BATCH_SIZE_VARIABLE}; else 64)")


def add_model(p: argparse.ArgumentParser, role: str) -> None:
    """--model (a directory or hub id for from_pretrained) and, for a hub id, --model-revision."""
    p.add_argument("--model", required=True, help=f"{role}: a directory or hub id for from_pretrained")
    p.add_argument("--model-revision", help="the hub id's branch, tag or commit (default: the hub's main)")


def language_and_path(item: str) -> tuple[str, str]:
    """An argument LANG=PATH."""
    lang, equals, path = item.partition("=")
    if not (lang and equals and path):
        raise argparse.ArgumentTypeError(f"{item!r} is not LANG=PATH, e.g. en=results/cast/pos/en/train-1a2b3c.jsonl")
    return lang, path


def summary_parser(description: str) -> argparse.ArgumentParser:
    """The command line of the aggregation stages: the study's manifest in, a directory out."""
    p = argparse.ArgumentParser(prog=program(), description=description,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--manifest", type=Path, required=True, help="the study's manifest.json (rule manifest)")
    p.add_argument("--out-dir", type=Path, required=True, help="the summary's directory for this stage's files")
    return p


def start_line() -> str:
    """A job log's first line: where it ran, so that a cluster's job (its SLURM log, sacct) and the tool's log
    can be matched."""
    job = os.environ.get("SLURM_JOB_ID")
    where = socket.gethostname() + (f", SLURM job {job}" if job else "")
    return f"{Path(sys.argv[0]).stem} started on {where}"


def run_modules_from(checkout: str) -> None:
    """Put `checkout` first on the PYTHONPATH that the workflow's jobs inherit: each rule runs `python -m
    workflow_scripts.<stage>`, which then imports this checkout's modules whether the environment has the package
    installed (the Makefile's venv: pip install -e .) or not (a conda environment of envs/pipeline.yaml), and
    from any working directory (snakemake --directory)."""
    paths = [path for path in os.environ.get("PYTHONPATH", "").split(os.pathsep) if path and path != checkout]
    os.environ["PYTHONPATH"] = os.pathsep.join([checkout, *paths])


def run(main) -> None:
    """Call main(); turn a user's errors (bad data, config or model, a NaN loss) into one readable line and exit 1."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    if not sys.stderr.isatty():  # a job's log file, where every progress bar is one endless line
        for variable in PROGRESS_BAR_VARIABLES:
            os.environ.setdefault(variable, "1")
    if not {"-h", "--help"} & set(sys.argv):
        logging.info(start_line())
    try:
        main()
    except (UserError, FileNotFoundError, FloatingPointError) as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(1)
    except OSError as err:
        if err.errno not in STORAGE_ADVICE:
            raise
        print(f"error: {err.filename or 'a file'}: {err.strerror}; {STORAGE_ADVICE[err.errno]}; what was written "
              "before is kept", file=sys.stderr)
        sys.exit(1)
