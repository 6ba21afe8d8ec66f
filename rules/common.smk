# Shared by every rule file: config validation, the study plan, and small helpers. No rules here.
import json
import os
import shlex
import sys

from snakemake.exceptions import WorkflowError
from snakemake.utils import min_version

min_version("9.0")

# Rules run `python -m workflow_scripts.<stage>`; make the package importable from any working directory.
sys.path.insert(0, workflow.basedir)
os.environ["PYTHONPATH"] = os.pathsep.join(
    filter(None, [workflow.basedir, os.environ.get("PYTHONPATH")])
)

from workflow_scripts.config import validate as validate_config
from workflow_scripts.digest import digest
from workflow_scripts.plan import ConfigError, Study

try:
    validate_config(config, "config")
    STUDY = Study(config)
except ConfigError as err:
    raise WorkflowError(f"invalid configuration: {err}")

R = STUDY.results

wildcard_constraints:
    task="[a-z0-9_]+",
    lang="[A-Za-z0-9-]+",
    digest="[0-9a-f]{10}",
    run="[^/]+",
    split="dev|test",


def spec_json(spec, expected_digest=None):
    """A job's spec for its --spec argument; refuses a path whose digest the current config does not give."""
    if expected_digest is not None and digest(spec) != expected_digest:
        raise WorkflowError(
            f"{expected_digest} is not the digest of the current config's {spec['stage']} spec "
            f"({digest(spec)}): this output belongs to another configuration"
        )
    return json.dumps(spec, sort_keys=True)


def run_of(wildcards):
    try:
        return STUDY.runs[wildcards.run]
    except KeyError:
        raise WorkflowError(f"run {wildcards.run!r} is not planned by the current config")


def checkpoint_dir(wildcards):
    return f"{R}/runs/{wildcards.run}/checkpoints"


def model_input(wildcards=None):
    """The built model's directory as an input; nothing when the model is loaded from the hub."""
    return [STUDY.model_ref] if STUDY.builds_model else []


def quoted(*items):
    return " ".join(shlex.quote(str(item)) for item in items)
