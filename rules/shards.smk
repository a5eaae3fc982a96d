# The shard stage: one HDF5 file per participant and view, the index over them, and what is
# made from the index (statistics, exports).


rule shard:
    input:
        unpack(shard_inputs),
        # The sheet is rewritten whenever recordings are added; only this shard's videos matter.
        samples=ancient(f"{RESULTS}/samples.tsv"),
    output:
        shard_path(),
    log:
        f"{RESULTS}/logs/shard/{{participant}}_{{view}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/shard/{{participant}}_{{view}}.tsv"
    conda:
        "../envs/shards.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=120,
    params:
        settings=stage_settings("shards"),
    shell:
        "python -m cprcoach.shards build --samples {input.samples:q} --participant {wildcards.participant}"
        " --view {wildcards.view} --rgb {input.rgb:q} --flow {input.flow:q} --pose {input.pose:q}"
        " --probe {input.probe:q} --settings {params.settings:q}"
        " --out {output:q} > {log:q} 2>&1"


rule shard_index:
    input:
        shards=all_shards(),
        samples=f"{RESULTS}/samples.tsv",
    output:
        f"{RESULTS}/shards/index.tsv",
    log:
        f"{RESULTS}/logs/shard_index.log",
    benchmark:
        f"{RESULTS}/benchmarks/shard_index.tsv"
    conda:
        "../envs/shards.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    shell:
        "python -m cprcoach.shards index {input.shards:q} --samples {input.samples:q} --out {output:q} > {log:q} 2>&1"


rule shard_check:
    input:
        shards=all_shards(),
        index=f"{RESULTS}/shards/index.tsv",
    output:
        f"{RESULTS}/shards/check.json",
    log:
        f"{RESULTS}/logs/shard_check.log",
    benchmark:
        f"{RESULTS}/benchmarks/shard_check.tsv"
    conda:
        "../envs/shards.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    shell:
        "python -m cprcoach.shards check {input.shards:q} --index {input.index:q} --checksums --out {output:q}"
        " > {log:q} 2>&1"


rule dataset_stats:
    input:
        shards=all_shards(),
        index=f"{RESULTS}/shards/index.tsv",
    output:
        report(
            f"{RESULTS}/tables/dataset_stats.tsv",
            caption="../workflow/report/dataset_stats.rst",
            category="Dataset",
        ),
    log:
        f"{RESULTS}/logs/dataset_stats.log",
    benchmark:
        f"{RESULTS}/benchmarks/dataset_stats.tsv"
    conda:
        "../envs/shards.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    shell:
        "python -m cprcoach.shards stats --index {input.index:q} --out {output:q} > {log:q} 2>&1"


rule skeleton_export:
    input:
        shards=all_shards(),
        index=f"{RESULTS}/shards/index.tsv",
    output:
        f"{RESULTS}/exports/cprcoach_2d.pkl",
    log:
        f"{RESULTS}/logs/skeleton_export.log",
    benchmark:
        f"{RESULTS}/benchmarks/skeleton_export.tsv"
    conda:
        "../envs/shards.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=10,
    shell:
        "python -m cprcoach.shards export-skeleton --index {input.index:q} --out {output:q} > {log:q} 2>&1"


# Not part of the default targets (it writes every frame as a file): ask for it by name,
# `snakemake results/exports/rawframes`.
rule rawframes_export:
    input:
        shards=all_shards(),
        index=f"{RESULTS}/shards/index.tsv",
    output:
        directory(f"{RESULTS}/exports/rawframes"),
    log:
        f"{RESULTS}/logs/rawframes_export.log",
    benchmark:
        f"{RESULTS}/benchmarks/rawframes_export.tsv"
    conda:
        "../envs/shards.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=120,
    shell:
        "python -m cprcoach.shards export-rawframes --index {input.index:q} --out {output:q} > {log:q} 2>&1"
