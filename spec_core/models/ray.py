"""Embedding with Ray Data: one model per actor (one GPU each on CUDA), exactly the local
batches, the blocks back in batch order (`spec_core.models.embed` calls it for
`backend="ray"`)."""

from __future__ import annotations

import numpy as np


class _EncoderActor:
    """A Ray Data actor: loads the model once, then embeds whole batches (one per call)."""

    def __init__(self, name: str, modality: str, device: str):
        from spec_core.models.registry import load_encoder

        self.modality = modality
        self.encoder = load_encoder(name, modality, device=device)

    def __call__(self, batch: dict) -> dict:
        from spec_core.models.encoders import embed_batch

        vectors = [embed_batch(self.encoder, self.modality, list(x)) for x in batch["items"]]
        holder = np.empty(len(vectors), dtype=object)  # one (rows, d) block per batch
        holder[:] = vectors
        return {"index": batch["index"], "vectors": holder}


def embed_with_ray(
    name: str,
    modality: str,
    batches: list,
    *,
    device: str = "auto",
    actors: int | None = None,
    address: str | None = None,
    report=None,
) -> list[np.ndarray]:
    """Every batch through `name`'s encoder on a pool of Ray Data actors; the blocks come back
    in batch order (each batch is one item of the Ray dataset, so the batches are exactly the
    local ones)."""
    import ray

    started = False
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
        started = address is None
    try:
        resources = ray.cluster_resources()
        use_gpu = device == "cuda" or (device == "auto" and resources.get("GPU", 0) >= 1)
        pool = actors or max(1, int(resources.get("GPU" if use_gpu else "CPU", 1)))
        records = [{"index": i, "items": list(batch)} for i, batch in enumerate(batches)]
        dataset = ray.data.from_items(records, override_num_blocks=min(len(records), 4 * pool))
        mapped = dataset.map_batches(
            _EncoderActor,
            fn_constructor_kwargs={
                "name": name,
                "modality": modality,
                "device": "cuda" if use_gpu else "cpu",
            },
            batch_size=1,
            concurrency=pool,
            num_gpus=1 if use_gpu else 0,
        )
        out: list[np.ndarray | None] = [None] * len(batches)
        for done, row in enumerate(mapped.iter_rows(), start=1):
            out[int(row["index"])] = np.asarray(row["vectors"], dtype=np.float32)
            if report is not None:
                report(done)
        missing = [i for i, block in enumerate(out) if block is None]
        if missing:
            raise RuntimeError(f"Ray returned no embedding for batch {missing[0]}")
        return out
    finally:
        if started:
            ray.shutdown()
