rule score:
    input:
        model=by_path(model_input),
        decodes=by_path(lambda w: STUDY.decode_path(run_of(w), w.lang, w.split)),
    output:
        f"{R}/runs/{{run}}/scores/{{split}}/{{lang}}-{{digest}}.tsv",
    params:
        spec=lambda w: spec_json(STUDY.score_spec(run_of(w), w.lang, w.split), w.digest),
        model=MODEL_ARGS,
    conda:
        "../envs/pipeline.yaml"
    log:
        f"{R}/logs/score/{{run}}/{{split}}/{{lang}}-{{digest}}.log",
    shell:
        "python -m workflow_scripts.score --spec {params.spec:q} --decodes {input.decodes:q}"
        " {params.model} --out {output:q} > {log:q} 2>&1"
