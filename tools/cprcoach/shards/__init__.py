"""The shard stage: one self-describing HDF5 file per (participant, view) holding every modality.

A shard holds, per video, the RGB frames as JPEG, the quantised flow, the skeleton and the
attributes that make it usable on its own (labels, source checksum, preprocessing parameters);
an index table, the PyTorch Datasets, the pyskl/mmaction2 exports and the statistics read them.
"""
