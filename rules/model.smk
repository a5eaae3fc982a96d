# The model stage: a backbone per modality and seed trained on the single classes, ImagineNet heads
# trained on its features (or a fusion's joined features) and scored on the composite videos, late
# fusion of the modalities' scores, every run over its seeds, and assessment of one recording.


rule backbone:
    input:
        index=f"{RESULTS}/shards/index.tsv",
        shards=all_shards(),
        # Every stored byte verified first: no backbone trains on a damaged shard.
        checked=f"{RESULTS}/shards/check.json",
    output:
        checkpoint=backbone_path("backbone.pt"),
        features=backbone_path("features.npz"),
    log:
        f"{RESULTS}/logs/backbone/{{modality}}_seed{{seed}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/backbone/{{modality}}_seed{{seed}}.tsv"
    wildcard_constraints:
        modality="|".join(MODALITIES),
    conda:
        "../envs/model.yaml"
    threads: backbone_threads
    resources:
        gpu=model_gpus(),
        mem_mb=8000,
        runtime=240,
    params:
        settings=backbone_settings,
        classes=(
            f"--classes {shlex.quote(str(config['classes']))}"
            if config["classes"]
            else ""
        ),
        torch_threads=MODEL["threads"],
    shell:
        "python -m cprcoach.model backbone --modality {wildcards.modality} --index {input.index:q}"
        " --checkpoint {output.checkpoint:q} --features {output.features:q} --settings {params.settings:q}"
        " --seed {wildcards.seed} {params.classes} --threads {params.torch_threads} > {log:q} 2>&1"


rule fused_features:
    # A fusion's modalities' features joined, for the heads trained on features fused.
    input:
        fusion_features,
    output:
        backbone_path("features.npz"),
    log:
        f"{RESULTS}/logs/fused_features/{{modality}}_seed{{seed}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/fused_features/{{modality}}_seed{{seed}}.tsv"
    wildcard_constraints:
        modality=FUSION_REGEX,
    conda:
        "../envs/model.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=5,
    shell:
        "python -m cprcoach.model join {input:q} --out {output:q} > {log:q} 2>&1"


rule imagine_head:
    input:
        features=backbone_path("features.npz"),
    output:
        metrics=head_path("metrics.json"),
        scores=head_path("scores.npz"),
        head=head_path("head.pt"),
    log:
        f"{RESULTS}/logs/imagine_head/{{modality}}_seed{{seed}}_{{head}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/imagine_head/{{modality}}_seed{{seed}}_{{head}}.tsv"
    conda:
        "../envs/model.yaml"
    # The heads are small: one thread each, and the heads of a modality train side by side.
    threads: 1
    resources:
        gpu=model_gpus(),
        mem_mb=4000,
        runtime=60,
    params:
        settings=model_settings("device", "imagine"),
    shell:
        "python -m cprcoach.model imagine --features {input.features:q} --head {wildcards.head}"
        " --metrics {output.metrics:q} --scores {output.scores:q} --checkpoint {output.head:q}"
        " --settings {params.settings:q} --seed {wildcards.seed} --threads {threads} > {log:q} 2>&1"


rule late_fusion:
    # A fusion's modalities' scores of one head run, averaged with weights learned on the training split.
    input:
        fusion_scores,
    output:
        late_path("metrics.json"),
    log:
        f"{RESULTS}/logs/late_fusion/{{modality}}_seed{{seed}}_{{head}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/late_fusion/{{modality}}_seed{{seed}}_{{head}}.tsv"
    wildcard_constraints:
        modality=FUSION_REGEX,
    conda:
        "../envs/model.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    shell:
        "python -m cprcoach.model late {input:q} --metrics {output:q} > {log:q} 2>&1"


rule head_over_seeds:
    input:
        every_seed(head_path("metrics.json")),
    output:
        metrics=report(
            seeds_path("metrics.json"),
            caption="../workflow/report/metrics.rst",
            category="ImagineNet",
            subcategory="{modality}",
            labels={"modality": "{modality}", "head": "{head}", "file": "metrics"},
        ),
        plot=report(
            seeds_path("per_class_ap.png"),
            caption="../workflow/report/per_class_ap.rst",
            category="ImagineNet",
            subcategory="{modality}",
            labels={
                "modality": "{modality}",
                "head": "{head}",
                "file": "per-class AP",
            },
        ),
    log:
        f"{RESULTS}/logs/head_over_seeds/{{modality}}_{{head}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/head_over_seeds/{{modality}}_{{head}}.tsv"
    conda:
        "../envs/model.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    shell:
        "python -m cprcoach.model seeds {input:q} --out {output.metrics:q} --plot {output.plot:q} > {log:q} 2>&1"


rule late_fusion_over_seeds:
    input:
        every_seed(late_path("metrics.json")),
    output:
        metrics=report(
            seeds_path("metrics.json", late=True),
            caption="../workflow/report/late_metrics.rst",
            category="ImagineNet",
            subcategory="{modality} (late fusion)",
            labels={"modality": "{modality}", "head": "{head}", "file": "metrics"},
        ),
        plot=report(
            seeds_path("per_class_ap.png", late=True),
            caption="../workflow/report/late_per_class_ap.rst",
            category="ImagineNet",
            subcategory="{modality} (late fusion)",
            labels={
                "modality": "{modality}",
                "head": "{head}",
                "file": "per-class AP",
            },
        ),
    log:
        f"{RESULTS}/logs/late_fusion_over_seeds/{{modality}}_{{head}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/late_fusion_over_seeds/{{modality}}_{{head}}.tsv"
    wildcard_constraints:
        modality=FUSION_REGEX,
    conda:
        "../envs/model.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    shell:
        "python -m cprcoach.model seeds {input:q} --out {output.metrics:q} --plot {output.plot:q} > {log:q} 2>&1"


rule model_summary:
    input:
        all_runs_over_seeds("metrics.json"),
    output:
        table=report(
            f"{RESULTS}/tables/model_summary.tsv",
            caption="../workflow/report/model_summary.rst",
            category="ImagineNet",
        ),
        gains=report(
            f"{RESULTS}/tables/model_gains.tsv",
            caption="../workflow/report/model_gains.rst",
            category="ImagineNet",
        ),
        markdown=f"{RESULTS}/tables/model_summary.md",
    log:
        f"{RESULTS}/logs/model_summary.log",
    benchmark:
        f"{RESULTS}/benchmarks/model_summary.tsv"
    conda:
        "../envs/model.yaml"
    threads: 1
    resources:
        mem_mb=500,
        runtime=5,
    params:
        primary=primary_head(),
    shell:
        "python -m cprcoach.model summary {input:q} --out {output.table:q} --gains {output.gains:q}"
        " --markdown {output.markdown:q} {params.primary} > {log:q} 2>&1"


rule assess_recording:
    # On request: `snakemake results/assess/P01/V1/E05+E08_01.json` (and its coach report, .html).
    input:
        unpack(assess_inputs),
    output:
        result=f"{RESULTS}/assess/{VIDEO_STEM}.json",
        report=f"{RESULTS}/assess/{VIDEO_STEM}.html",
    log:
        f"{RESULTS}/logs/assess_recording/{VIDEO_STEM}.log",
    benchmark:
        f"{RESULTS}/benchmarks/assess_recording/{VIDEO_STEM}.tsv"
    conda:
        "../envs/model.yaml"
    threads: 1
    resources:
        gpu=model_gpus(),
        mem_mb=2000,
        runtime=10,
    params:
        head=lambda wildcards, input: (
            f"--head {shlex.quote(input.head)}" if "head" in input.keys() else ""
        ),
        settings=model_settings("device", "assess"),
    shell:
        "python -m cprcoach.model assess {input.prepared:q} --prepared --backbone {input.backbone:q}"
        " {params.head} --pose {input.pose:q} --settings {params.settings:q} --out {output.result:q}"
        " --report {output.report:q} > {log:q} 2>&1"
