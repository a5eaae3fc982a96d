"""The embedded synthetic dataset: a rescuer compressing a manikin, seen by 4 cameras.

`cprcoach synth --config config.yaml` renders one H.264 video per participant, view, class and
take (video.source size and fps, raw_pattern names) with a ground-truth sidecar beside each. The
generator uses the pipeline's modules (the class table, the sidecar format of
cprcoach.pose.groundtruth); the pipeline never imports it.
"""
