# The flow stage: TV-L1 optical flow between consecutive frames of each clip.


rule optical_flow:
    input:
        clips=views_of(clip_path(FLOW["clip"])),
    output:
        views_of(flow_path()),
    log:
        f"{RESULTS}/logs/optical_flow/{RECORDING_STEM}.log",
    benchmark:
        f"{RESULTS}/benchmarks/optical_flow/{RECORDING_STEM}.tsv"
    conda:
        "../envs/flow.yaml"
    threads: FLOW["threads"]
    resources:
        gpu=1 if FLOW["backend"] == "torch" and FLOW["device"] == "cuda" else 0,
        mem_mb=6000,
        runtime=480,
    params:
        settings=stage_settings("flow", "clip", "threads"),
    shell:
        "python -m cprcoach.flow extract {input.clips:q} --out {output:q} --settings {params.settings:q}"
        " --threads {threads} > {log:q} 2>&1"


rule flow_figure:
    input:
        clips=per_video(clip_path(FLOW["clip"]), SHOWCASE_FIRST_VIEW),
        flows=per_video(flow_path(), SHOWCASE_FIRST_VIEW),
    output:
        report(
            f"{RESULTS}/plots/flow.png",
            caption="../workflow/report/flow.rst",
            category="Optical flow",
        ),
    log:
        f"{RESULTS}/logs/flow_figure.log",
    benchmark:
        f"{RESULTS}/benchmarks/flow_figure.tsv"
    conda:
        "../envs/flow.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=5,
    shell:
        "python -m cprcoach.flow plot --clips {input.clips:q} --flows {input.flows:q} --out {output:q} > {log:q} 2>&1"
