rule prepare:
    output:
        multiext(f"{R}/data/{{task}}/{{lang}}-{{digest}}/", "train.jsonl", "dev.jsonl", "test.jsonl", "meta.json"),
    params:
        spec=lambda w: spec_json(STUDY.data_spec(w.task, w.lang), w.digest),
        out_dir=lambda w, output: os.path.dirname(output[0]),
    conda:
        "../envs/pipeline.yaml"
    log:
        f"{R}/logs/prepare/{{task}}/{{lang}}-{{digest}}.log",
    shell:
        "python -m workflow_scripts.prepare --spec {params.spec:q} --out-dir {params.out_dir:q} > {log:q} 2>&1"


rule cast:
    input:
        lambda w: [f"{STUDY.data_dir(w.task, w.lang)}/{split}.jsonl" for split in ("train", "dev", "test")],
    output:
        multiext(f"{R}/cast/{{task}}/{{lang}}-{{digest}}/", "train.jsonl", "dev.jsonl", "test.jsonl", "meta.json"),
    params:
        spec=lambda w: spec_json(STUDY.cast_spec(w.task, w.lang), w.digest),
        in_dir=lambda w, input: os.path.dirname(input[0]),
        out_dir=lambda w, output: os.path.dirname(output[0]),
    conda:
        "../envs/pipeline.yaml"
    log:
        f"{R}/logs/cast/{{task}}/{{lang}}-{{digest}}.log",
    shell:
        "python -m workflow_scripts.cast --spec {params.spec:q} --in-dir {params.in_dir:q}"
        " --out-dir {params.out_dir:q} > {log:q} 2>&1"
