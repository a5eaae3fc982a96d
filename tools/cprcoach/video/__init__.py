"""The video stage: probe raw recordings and resize them to the clips later stages read."""
