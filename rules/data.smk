rule prepare:
    output:
        records=f"{R}/data/{{task}}/{{lang}}/{{data_split}}-{{digest}}.jsonl",
        meta=f"{R}/data/{{task}}/{{lang}}/{{data_split}}-{{digest}}.meta.json",
    params:
        spec=lambda w: spec_json(STUDY.data_spec(w.task, w.lang, w.data_split), w.digest),
    conda:
        "../envs/pipeline.yaml"
    log:
        f"{R}/logs/prepare/{{task}}/{{lang}}/{{data_split}}-{{digest}}.log",
    shell:
        "python -m workflow_scripts.prepare --spec {params.spec:q} --out {output.records:q} > {log:q} 2>&1"


rule cast:
    input:
        by_path(lambda w: STUDY.data_path(w.task, w.lang, w.data_split)),
    output:
        records=f"{R}/cast/{{task}}/{{lang}}/{{data_split}}-{{digest}}.jsonl",
        meta=f"{R}/cast/{{task}}/{{lang}}/{{data_split}}-{{digest}}.meta.json",
    params:
        spec=lambda w: spec_json(STUDY.cast_spec(w.task, w.lang, w.data_split), w.digest),
    localrule: True  # a template over one split's records: seconds, not worth a cluster job
    conda:
        "../envs/pipeline.yaml"
    log:
        f"{R}/logs/cast/{{task}}/{{lang}}/{{data_split}}-{{digest}}.log",
    shell:
        "python -m workflow_scripts.cast --spec {params.spec:q} --in {input:q} --out {output.records:q} > {log:q} 2>&1"
