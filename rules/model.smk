rule build_model:
    output:
        directory(f"{R}/models/{{name}}-{{digest}}"),
    params:
        spec=lambda w: spec_json(STUDY.model_spec, w.digest),
    conda:
        "../envs/pipeline.yaml"
    log:
        f"{R}/logs/build_model/{{name}}-{{digest}}.log",
    shell:
        "python -m workflow_scripts.build_model --spec {params.spec:q} --out-dir {output:q} > {log:q} 2>&1"
