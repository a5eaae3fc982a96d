# The resize stage: each raw recording decoded once into every configured clip.


rule resized_clips:
    input:
        videos=recording_videos,
    output:
        clips=[path for clip in CLIP_NAMES for path in views_of(clip_path(clip))],
        probes=views_of(probe_path()),
    log:
        f"{RESULTS}/logs/resized_clips/{RECORDING_STEM}.log",
    benchmark:
        f"{RESULTS}/benchmarks/resized_clips/{RECORDING_STEM}.tsv"
    conda:
        "../envs/video.yaml"
    threads: VIDEO["threads"]
    resources:
        nvdec=1 if VIDEO["decoder"] == "nvdec" else 0,
        mem_mb=3000,
        runtime=120,
    params:
        settings=stage_settings("video", "threads"),
    shell:
        "python -m cprcoach.video resize {input.videos:q} --probe {output.probes:q}"
        " --settings {params.settings:q} --threads {threads} > {log:q} 2>&1"


rule video_table:
    input:
        samples=f"{RESULTS}/samples.tsv",
        probes=per_video(probe_path()),
    output:
        report(
            f"{RESULTS}/tables/videos.tsv",
            caption="../workflow/report/videos.rst",
            category="Dataset",
        ),
    log:
        f"{RESULTS}/logs/video_table.log",
    benchmark:
        f"{RESULTS}/benchmarks/video_table.tsv"
    conda:
        "../envs/video.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    shell:
        "python -m cprcoach.video summary --samples {input.samples:q} --probes {input.probes:q}"
        " --out {output:q} > {log:q} 2>&1"


rule views_contact_sheet:
    input:
        per_video(clip_path(CLIP_NAMES[0]), SHOWCASE),
    output:
        report(
            f"{RESULTS}/plots/views.png",
            caption="../workflow/report/views.rst",
            category="Dataset",
        ),
    log:
        f"{RESULTS}/logs/views_contact_sheet.log",
    benchmark:
        f"{RESULTS}/benchmarks/views_contact_sheet.tsv"
    conda:
        "../envs/video.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=5,
    shell:
        "python -m cprcoach.video sheet {input:q} --out {output:q} > {log:q} 2>&1"
