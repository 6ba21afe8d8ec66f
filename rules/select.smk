rule select:
    input:
        unpack(by_path(select_inputs)),
    output:
        f"{R}/runs/{{run}}/select/{{lang}}-{{digest}}.json",
    params:
        spec=lambda w: spec_json(STUDY.select_spec(run_of(w), w.lang), w.digest),
        xlrs=lambda w, input: f"--xlrs {quoted(input.xlrs)}" if "xlrs" in input.keys() else "",
    # Under a second per job, reading a few small TSVs: on a cluster it runs beside Snakemake instead of waiting in
    # SLURM's queue (a study has one per run and target language).
    localrule: True
    conda:
        "../envs/pipeline.yaml"
    log:
        f"{R}/logs/select/{{run}}/{{lang}}-{{digest}}.log",
    shell:
        "python -m workflow_scripts.select --spec {params.spec:q} --source-dev {input.source_dev:q}"
        " --target-dev {input.target_dev:q} {params.xlrs} --out {output:q} > {log:q} 2>&1"
