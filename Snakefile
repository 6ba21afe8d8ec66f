# Zero-shot cross-lingual generation: fine-tune on one or two source languages, measure XLRS over
# training, decode and score every target language, select checkpoints without target dev data.
# Paper: Li & Murray, "Why Does Zero-Shot Cross-Lingual Generation Fail?". Stages: README.md.

report: "report/workflow.rst"


# `--configfile` replaces the demo config instead of being merged into it; `--config key=value` alone edits it.
if not workflow.overwrite_configfiles:

    configfile: "config.yaml"



include: "rules/common.smk"


wildcard_constraints:
    task="[a-z0-9_]+",
    lang="[A-Za-z0-9-]+",
    digest="[0-9a-f]{10}",
    run="[^/]+",
    split="dev|test",  # what is decoded and scored
    data_split="train|dev|test",


include: "rules/data.smk"
include: "rules/model.smk"
include: "rules/finetune.smk"
include: "rules/xlrs.smk"
include: "rules/decode.smk"
include: "rules/score.smk"
include: "rules/select.smk"
include: "rules/aggregate.smk"


rule all:
    input:
        STUDY.final_outputs(),
        # every table, not only the README the tables rule writes last, so that one deleted by hand is made again
        expand(rules.tables.output, digest=STUDY.summary_digest),
    default_target: True
