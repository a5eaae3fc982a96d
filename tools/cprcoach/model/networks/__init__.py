"""The backbone networks, each with the config dataclass that rebuilds it from a checkpoint
(cprcoach.model.registry names them): ST-GCN for the skeleton, TSN for RGB and flow."""
