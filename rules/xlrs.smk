rule xlrs:
    input:
        model=model_input,
        run=f"{R}/runs/{{run}}/run.json",
    output:
        f"{R}/runs/{{run}}/xlrs/{{lang}}-{{digest}}.tsv",
    params:
        spec=lambda w: spec_json(STUDY.xlrs_spec(run_of(w), w.lang), w.digest),
        model=STUDY.model_ref,
        run_dir=lambda w: f"{R}/runs/{w.run}",
        batch_size=config["xlrs"]["batch_size"],
    resources:
        gpu=1,
    conda:
        "../envs/pipeline.yaml"
    log:
        f"{R}/logs/xlrs/{{run}}/{{lang}}-{{digest}}.log",
    shell:
        "python -m workflow_scripts.xlrs --spec {params.spec:q} --run-dir {params.run_dir:q}"
        " --model {params.model:q} --batch-size {params.batch_size} --out {output:q} > {log:q} 2>&1"
