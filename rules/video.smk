# The resize stage: each raw recording decoded once into every configured clip.


rule resized_clips:
    input:
        video=raw_video,
    output:
        clips=[clip_path(clip) for clip in CLIP_NAMES],
        probe=f"{RESULTS}/clips/{VIDEO_STEM}.probe.json",
    log:
        f"{RESULTS}/logs/resized_clips/{VIDEO_STEM}.log",
    benchmark:
        f"{RESULTS}/benchmarks/resized_clips/{VIDEO_STEM}.tsv"
    conda:
        "../envs/video.yaml"
    threads: VIDEO["threads"]
    resources:
        mem_mb=3000,
        runtime=30,
    params:
        clips=lambda wildcards, output: " ".join(
            f"--clip {name}={size['width']}x{size['height']}:{path}"
            for (name, size), path in zip(VIDEO["clips"].items(), output.clips)
        ),
        source_size=f"{VIDEO['source']['width']}x{VIDEO['source']['height']}",
        fps=VIDEO["source"]["fps"],
        encoder=VIDEO["encoder"],
    shell:
        "python -m cprcoach.video resize {input.video:q} {params.clips} --probe {output.probe:q}"
        " --source-size {params.source_size} --fps {params.fps} --preset {params.encoder[preset]}"
        " --crf {params.encoder[crf]} --scale-flags {params.encoder[scale_flags]} --threads {threads}"
        " > {log:q} 2>&1"


rule video_table:
    input:
        samples=f"{RESULTS}/samples.tsv",
        probes=per_video(f"{RESULTS}/clips/{VIDEO_STEM}.probe.json"),
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
