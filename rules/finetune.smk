rule finetune:
    input:
        model=by_path(model_input),
        data=by_path(lambda w: [STUDY.cast_path(run_of(w).task, lang, "train") for lang in run_of(w).sources]),
    # checkpoints/ and resume/ are written beside these but are not outputs: Snakemake deletes the outputs
    # of an interrupted job, and a restarted one resumes from them. run.json, written last, marks completion.
    output:
        log_table=f"{R}/runs/{{run}}/train_log.tsv",
        meta=f"{R}/runs/{{run}}/run.json",
    params:
        spec=lambda w: spec_json(run_of(w).spec),
        model=MODEL_ARGS,
        data=lambda w, input: quoted(*[f"{lang}={path}" for lang, path in zip(run_of(w).sources, input.data)]),
        out_dir=lambda w: f"{R}/runs/{w.run}",
    threads: 2
    resources:
        gpu=1,
    conda:
        "../envs/pipeline.yaml"
    log:
        f"{R}/logs/finetune/{{run}}.log",
    # exec: the shell becomes the training process. A SIGTERM (a time limit, preemption, Ctrl-C) reaches it
    # directly, and no bash wrapper dies of it first, which would end the job before the resume state is saved.
    shell:
        "exec python -m workflow_scripts.finetune --spec {params.spec:q} --run-id {wildcards.run:q}"
        " {params.model} --data {params.data} --out-dir {params.out_dir:q} > {log:q} 2>&1"
