rule decode:
    input:
        unpack(by_path(decode_inputs)),
    output:
        f"{R}/runs/{{run}}/decode/{{split}}/{{lang}}-{{digest}}.jsonl",
    params:
        spec=lambda w: spec_json(STUDY.decode_spec(run_of(w), w.lang, w.split), w.digest),
        run_dir=lambda w: f"{R}/runs/{w.run}",
        selection=lambda w, input: f"--selection {quoted(input.selection)}" if w.split == "test" else "",
    resources:
        gpu=1,
    conda:
        "../envs/pipeline.yaml"
    log:
        f"{R}/logs/decode/{{run}}/{{split}}/{{lang}}-{{digest}}.log",
    shell:
        "python -m workflow_scripts.decode --spec {params.spec:q} --run-dir {params.run_dir:q}"
        " --data {input.data:q} {params.selection}"
        " --out {output:q} > {log:q} 2>&1"
