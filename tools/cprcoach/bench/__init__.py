"""Benchmarks of the stages (`cprcoach video|flow|pose|shards bench`): each times one stage on data it
makes (a synthetic recording, a moving photograph) against a reference measured in the same run;
and the GPU node check (`cprcoach gpu-check`), the whole workflow stage by stage.

The one package that may import everything, the synthetic generator included: the stages never
import it.
"""
