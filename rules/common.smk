# Shared helpers of the workflow: config validation, the study plan, input functions. No rules here.
import json
import os
import shlex
import sys

from snakemake.exceptions import WorkflowError
from snakemake.utils import min_version

min_version("9.0")

# The Snakefile imports workflow_scripts from this checkout, and so do the rules' jobs (cli.run_modules_from).
sys.path.insert(0, workflow.basedir)

from workflow_scripts.cli import BATCH_SIZE_VARIABLE, COMPILE_CACHE_VARIABLE, SPEED_VARIABLE, run_modules_from
from workflow_scripts.config import read_config_file, validate as validate_config
from workflow_scripts.digest import digest
from workflow_scripts.plan import ConfigError, Study

run_modules_from(workflow.basedir)

try:
    for config_file in workflow.configfiles:  # Snakemake has read them, keeping the last of two equal keys
        read_config_file(config_file)
    given_on_command_line = ["--config"] if workflow.config_settings.config else []
    validate_config(config, " + ".join([*map(str, workflow.configfiles), *given_on_command_line]) or "config")
except ConfigError as err:
    raise WorkflowError(f"invalid configuration: {err}")
STUDY = Study(config)

R = STUDY.results
# The GPU stages read the speed settings and batch sizes from the environment, which their jobs inherit (on SLURM
# through sbatch --export=ALL), not from params: Snakemake reruns a job whose params changed, and these settings
# change how fast, not what.
os.environ[SPEED_VARIABLE] = json.dumps(config["speed"], sort_keys=True)
os.environ[BATCH_SIZE_VARIABLE] = json.dumps({stage: config[stage]["batch_size"] for stage in ("decode", "xlrs")})
# One cache of torch.compile's compiled code for the study's jobs, on any host that sees the results (a user's own
# setting wins): each length bucket is compiled once, not once per job.
os.environ.setdefault(COMPILE_CACHE_VARIABLE, STUDY.compile_cache)


# The model as the GPU stages' command lines name it: a hub id with the revision its digests were computed for.
MODEL_ARGS = f"--model {shlex.quote(STUDY.model_ref)}"
if STUDY.model_revision:
    MODEL_ARGS += f" --model-revision {shlex.quote(STUDY.model_revision)}"


def spec_json(spec, expected_digest=None):
    """A job's spec for its --spec argument; refuses a path whose digest the current config does not give."""
    if expected_digest is not None and digest(spec) != expected_digest:
        raise WorkflowError(
            f"{expected_digest} is not the digest of the current config's {spec['stage']} spec "
            f"({digest(spec)}): this output belongs to another configuration, or a local file the spec "
            "fingerprints (model directory, dataset files, score.lid_model) changed since the workflow started "
            "or differs on the host this job runs on"
        )
    return json.dumps(spec, sort_keys=True)


def by_path(inputs):
    """Inputs (a value, or an input function's result) whose modification times never rerun a job: a path holds
    the digest of everything that made its content, so a file that is newer (copied without its times, touched,
    unpacked from an archive) is the same file, and rerunning its consumers would overwrite results in place."""
    if not callable(inputs):
        return ancient(inputs)

    def flagged(wildcards):
        found = inputs(wildcards)
        return {name: ancient(value) for name, value in found.items()} if isinstance(found, dict) else ancient(found)

    return flagged


def run_of(wildcards):
    try:
        return STUDY.runs[wildcards.run]
    except KeyError:
        raise WorkflowError(f"run {wildcards.run!r} is not planned by the current config")


def model_input(wildcards):
    """The built model's directory as an input; nothing when the model is loaded from the hub."""
    return [STUDY.model_ref] if STUDY.builds_model else []


def quoted(*items):
    """Items as one shell-safe string (for params that carry several paths)."""
    return " ".join(shlex.quote(str(item)) for item in items)


def decode_inputs(w):
    return STUDY.decode_inputs(run_of(w), w.lang, w.split)


def select_inputs(w):
    return STUDY.select_inputs(run_of(w), w.lang)


def write_manifest(path, spec, log_path):
    """The summary's inputs, from the plan: written by Snakemake itself, no job process needed."""
    from workflow_scripts.files import write_json, write_text

    manifest = json.loads(spec)
    write_json(path, manifest)
    write_text(log_path, f"{path}: {len(manifest['runs'])} runs\n")
