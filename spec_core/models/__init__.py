"""Models that turn images or texts into embeddings: the registry of model families
(registry.py), their encoders (encoders.py; a registry entry and the load error in info.py),
batched embedding through the disk cache (embed.py) and its Ray Data path for many machines
(ray.py)."""
