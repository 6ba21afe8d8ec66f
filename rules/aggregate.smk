rule manifest:
    output:
        f"{R}/summary-{{digest}}/manifest.json",
    params:
        spec=lambda w: spec_json(STUDY.manifest(), w.digest),
    localrule: True
    log:
        f"{R}/logs/manifest/summary-{{digest}}.log",
    run:
        write_manifest(output[0], params.spec, log[0])


rule tables:
    input:
        by_path(STUDY.manifest_inputs()),
        manifest=by_path(f"{R}/summary-{{digest}}/manifest.json"),
    output:
        readme=f"{R}/summary-{{digest}}/tables/README.md",
        scores=report(f"{R}/summary-{{digest}}/tables/scores.csv", caption="../report/scores.rst", category="Tables"),
        language_id=report(
            f"{R}/summary-{{digest}}/tables/language_id.csv", caption="../report/language_id.rst", category="Tables"
        ),
        selection=report(
            f"{R}/summary-{{digest}}/tables/selection.csv", caption="../report/selection.rst", category="Tables"
        ),
        selection_delta=report(
            f"{R}/summary-{{digest}}/tables/selection_delta.csv",
            caption="../report/selection.rst",
            category="Tables",
        ),
        spearman=report(
            f"{R}/summary-{{digest}}/tables/spearman.csv", caption="../report/spearman.rst", category="Tables"
        ),
        label_overlap=report(
            f"{R}/summary-{{digest}}/tables/label_overlap.csv",
            caption="../report/label_overlap.rst",
            category="Tables",
        ),
        label_overlap_task=report(
            f"{R}/summary-{{digest}}/tables/label_overlap_task.csv",
            caption="../report/label_overlap.rst",
            category="Tables",
        ),
        numeric_answers=report(
            f"{R}/summary-{{digest}}/tables/numeric_answers.csv",
            caption="../report/label_overlap.rst",
            category="Tables",
        ),
    params:
        out_dir=lambda w, output: os.path.dirname(output.readme),
    conda:
        "../envs/pipeline.yaml"
    log:
        f"{R}/logs/tables/summary-{{digest}}.log",
    shell:
        "python -m workflow_scripts.aggregate --manifest {input.manifest:q} --out-dir {params.out_dir:q} > {log:q} 2>&1"


rule figures:
    input:
        by_path(STUDY.manifest_inputs()),
        manifest=by_path(f"{R}/summary-{{digest}}/manifest.json"),
    output:
        report(
            directory(f"{R}/summary-{{digest}}/figures"),
            patterns=["{name}.png"],
            caption="../report/figures.rst",
            category="Figures",
        ),
    conda:
        "../envs/pipeline.yaml"
    log:
        f"{R}/logs/figures/summary-{{digest}}.log",
    shell:
        "python -m workflow_scripts.figures --manifest {input.manifest:q} --out-dir {output:q} > {log:q} 2>&1"
