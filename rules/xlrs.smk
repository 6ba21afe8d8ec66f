rule xlrs:
    input:
        model=by_path(model_input),
        run=by_path(f"{R}/runs/{{run}}/run.json"),
    output:
        f"{R}/runs/{{run}}/xlrs/{{lang}}-{{digest}}.tsv",
    params:
        spec=lambda w: spec_json(STUDY.xlrs_spec(run_of(w), w.lang), w.digest),
        model=MODEL_ARGS,
        run_dir=lambda w: f"{R}/runs/{w.run}",
    resources:
        gpu=1,
    conda:
        "../envs/pipeline.yaml"
    log:
        f"{R}/logs/xlrs/{{run}}/{{lang}}-{{digest}}.log",
    shell:
        "python -m workflow_scripts.xlrs --spec {params.spec:q} --run-dir {params.run_dir:q}"
        " {params.model} --out {output:q} > {log:q} 2>&1"
