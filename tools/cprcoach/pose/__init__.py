"""The pose stage: 2D skeletons of the rescuer in AlphaPose's Halpe-26 order, one .npz per video.

Backends: the synthetic sidecars' ground truth (the demo), MediaPipe (offline, real video) and
AlphaPose (a user's own install, or its alphapose-results.json). Whatever the backend, one
track is kept per video (the rescuer), gaps are filled and keypoints are in raw-video pixels.
"""
