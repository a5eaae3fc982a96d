"""The flow stage: TV-L1 optical flow between consecutive frames, with OpenCV or our batched PyTorch solver."""
