"""Loading a config file: YAML, validated against schemas/config.schema.yaml with defaults filled in."""
from __future__ import annotations

from pathlib import Path

import yaml

SCHEMA = Path(__file__).resolve().parent.parent / "schemas" / "config.schema.yaml"


def validate(config: dict, source: str = "config") -> dict:
    """Fill defaults and raise ConfigError naming the key and value of the first problem."""
    from snakemake.exceptions import WorkflowError
    from snakemake.utils import validate as snakemake_validate

    from workflow_scripts.plan import ConfigError, check_config

    # report's default languages are the paper's: only those a config names must be languages of its tasks
    named_report_keys = set(config.get("report") or {}) if isinstance(config, dict) else set()
    overrides = experiment_train_keys(config)
    try:
        snakemake_validate(config, str(SCHEMA), set_default=True)
    except WorkflowError as err:
        raise ConfigError(f"{source}: {schema_message(err)}") from None
    # The schema's defaults also fill experiments[i].train, which would override the top-level train section
    # with them: an experiment keeps only the keys it sets.
    for experiment, keys in zip(config["experiments"], overrides):
        if "train" in experiment:
            experiment["train"] = {key: value for key, value in experiment["train"].items() if key in keys}
    try:
        check_config(config, named_report_keys)
    except ConfigError as err:
        raise ConfigError(f"{source}: {err}") from None
    return config


def experiment_train_keys(config) -> list[set[str]]:
    experiments = config.get("experiments") if isinstance(config, dict) else None
    if not isinstance(experiments, list):
        return []
    return [set(e["train"]) if isinstance(e, dict) and isinstance(e.get("train"), dict) else set()
            for e in experiments]


def schema_message(err: Exception) -> str:
    """jsonschema's error as 'key.path: message', found in the exception chain snakemake wraps."""
    cause = err
    while cause is not None and not hasattr(cause, "absolute_path"):
        cause = cause.__cause__ or cause.__context__ or next(
            (e for e in getattr(cause, "args", ()) if isinstance(e, Exception)), None)
    if cause is None:
        return str(err).strip().splitlines()[0]
    key = ".".join(f"[{p}]" if isinstance(p, int) else str(p) for p in cause.absolute_path).replace(".[", "[")
    return f"{key or '(top level)'}: {cause.message}"


def load_config(path: str | Path) -> dict:
    from workflow_scripts.plan import ConfigError

    try:
        with open(path, encoding="utf-8") as handle:
            config = yaml.safe_load(handle) or {}
    except OSError as err:
        raise ConfigError(f"{path}: cannot read the config file ({err.strerror})") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark else ""
        raise ConfigError(f"{path}: not valid YAML, {where}{getattr(err, 'problem', None) or err}") from None
    return validate(config, str(path))
