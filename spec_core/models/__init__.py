"""Models that turn images or texts into embeddings: the registry of model families and their
encoders (registry.py), batched embedding through the disk cache (embed.py) and its Ray Data
path for many machines (ray.py)."""
