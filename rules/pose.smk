# The pose stage: the rescuer's 2D skeleton (Halpe-26) per video, its QC and overlays.


rule rescuer_pose:
    input:
        unpack(pose_inputs),
    output:
        views_of(pose_path()),
    log:
        f"{RESULTS}/logs/rescuer_pose/{RECORDING_STEM}.log",
    benchmark:
        f"{RESULTS}/benchmarks/rescuer_pose/{RECORDING_STEM}.tsv"
    conda:
        "../envs/pose.yaml"
    threads: POSE["threads"]
    resources:
        gpu=1 if POSE["backend"] == "alphapose" else 0,
        mem_mb=3000,
        runtime=240,
    params:
        settings=stage_settings("pose", "clip", "threads"),
    shell:
        "python -m cprcoach.pose estimate {input.clips:q} --probe {input.probes:q} --out {output:q}"
        " --settings {params.settings:q} --threads {threads} > {log:q} 2>&1"


rule pose_quality:
    input:
        per_video(pose_path()),
    output:
        table=report(
            f"{RESULTS}/tables/pose_quality.tsv",
            caption="../workflow/report/pose_quality.rst",
            category="Skeletons",
        ),
        plot=report(
            f"{RESULTS}/plots/pose_pck.png",
            caption="../workflow/report/pose_quality.rst",
            category="Skeletons",
        ),
    log:
        f"{RESULTS}/logs/pose_quality.log",
    benchmark:
        f"{RESULTS}/benchmarks/pose_quality.tsv"
    conda:
        "../envs/pose.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    shell:
        "python -m cprcoach.pose qc {input:q} --table {output.table:q} --plot {output.plot:q} > {log:q} 2>&1"


rule skeleton_overlay:
    input:
        clip=clip_path(POSE["clip"]),
        pose=pose_path(),
    output:
        report(
            f"{RESULTS}/plots/skeletons/{VIDEO_STEM}.png",
            caption="../workflow/report/skeletons.rst",
            category="Skeletons",
            subcategory="{participant} {view}",
        ),
    log:
        f"{RESULTS}/logs/skeleton_overlay/{VIDEO_STEM}.log",
    benchmark:
        f"{RESULTS}/benchmarks/skeleton_overlay/{VIDEO_STEM}.tsv"
    conda:
        "../envs/pose.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=5,
    shell:
        "python -m cprcoach.pose overlay {input.clip:q} --pose {input.pose:q} --out {output:q} > {log:q} 2>&1"
