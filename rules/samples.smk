# The sample sheet: every raw recording with its label, error vector and split.


rule sample_sheet:
    input:
        SAMPLES["path"].tolist(),
    output:
        report(
            f"{RESULTS}/samples.tsv",
            caption="../workflow/report/samples.rst",
            category="Dataset",
        ),
    log:
        f"{RESULTS}/logs/sample_sheet.log",
    benchmark:
        f"{RESULTS}/benchmarks/sample_sheet.tsv"
    conda:
        "../envs/video.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        raw_dir=lambda wildcards: config["raw_dir"],
        pattern=lambda wildcards: config["raw_pattern"],
        views=config["views"],
        classes=(
            f"--classes {shlex.quote(str(config['classes']))}"
            if config["classes"]
            else ""
        ),
        heldout=config["split"]["heldout_participants"],
    shell:
        "python -m cprcoach.samples --raw-dir {params.raw_dir:q} --pattern {params.pattern:q}"
        " --views {params.views:q} {params.classes} --heldout {params.heldout:q}"
        " --out {output:q} > {log:q} 2>&1"
