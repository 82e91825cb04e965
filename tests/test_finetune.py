"""align-model: full fine-tuning of an open_clip image tower against a reference embedding.

A tiny random-init ViT (registered with open_clip's own config mechanism and saved as a local
weights file, so the project's real loader builds it) trains on 48 generated 32x32 images in a
second or two on one CPU thread. The images are stripes in one of four orientations with a
random colour; the planted reference is each image's orientation (a one-hot plus a little
noise): an exact function of the image that a random ViT, which mostly sees colour, does not
capture."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
open_clip = pytest.importorskip("open_clip")

from spec_core.align import finetune as ft  # noqa: E402
from spec_core.align.finetune.evaluate import retrieval_recall  # noqa: E402
from spec_core.align.finetune.plan import batch_rows, lr_factor  # noqa: E402
from spec_core.align.loss import batch_spec_diff  # noqa: E402
from spec_core.cli.entry import main  # noqa: E402
from spec_core.data.image_sets import load_image_folder  # noqa: E402

ARCH = "spec-test-tiny-vit"
TINY = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "head_width": 32, "patch_size": 8},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}
N = 48
ORIENTATIONS = ("horizontal", "vertical", "diagonal", "anti-diagonal")


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Two cores shared with other test runs: one thread is ~30x faster than oversubscribing."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """The tiny architecture registered with open_clip, its random-init weights in a file, the
    image folder with captions, and the planted reference."""
    from open_clip import factory

    root = tmp_path_factory.mktemp("finetune")
    config = root / f"{ARCH}.json"
    config.write_text(json.dumps(TINY))
    open_clip.add_model_config(config)
    torch.manual_seed(0)
    model, _, _ = open_clip.create_model_and_transforms(ARCH, pretrained=None)
    torch.save(model.state_dict(), root / "tiny.pt")

    from PIL import Image

    images = root / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:32, 0:32]
    patterns = [(yy // 4) % 2, (xx // 4) % 2, ((xx + yy) // 4) % 2, ((xx - yy) // 4) % 2]
    kind = np.arange(N) % 4
    lines = ["file,caption"]
    for i in range(N):
        colour = 0.3 + 0.7 * rng.uniform(size=3)
        pixels = colour * (0.5 + 0.5 * patterns[kind[i]][..., None])
        Image.fromarray((255 * pixels).astype(np.uint8)).save(images / f"img{i:03d}.png")
        lines.append(f"img{i:03d}.png,{ORIENTATIONS[kind[i]]} stripes")
    (root / "captions.csv").write_text("\n".join(lines) + "\n")
    reference = (np.eye(4)[kind] + 0.05 * rng.normal(size=(N, 4))).astype(np.float32)
    np.save(root / "ref.npy", reference)
    yield {
        "root": root,
        "model": f"open_clip:{ARCH}@{root / 'tiny.pt'}",
        "images": images,
        "captions": root / "captions.csv",
        "reference": reference,
    }
    factory._MODEL_CONFIG_PATHS.remove(config)
    factory._MODEL_CONFIGS.pop(ARCH, None)


def small(model: str, **changes) -> ft.FinetuneConfig:
    base = {
        "model": model,
        "spec_weight": 1.0,
        "contrastive_weight": 0.0,
        "steps": 10,
        "batch_size": 16,
        "lr": 1e-3,
        "warmup": 3,
        "val_fraction": 0.25,
        "device": "cpu",
    }
    return ft.FinetuneConfig(**{**base, **changes})


def run(tiny, out, *, captions=False, reference=None, **changes) -> ft.FinetuneResult:
    dataset = load_image_folder(tiny["images"], captions=tiny["captions"] if captions else None)
    out.mkdir(exist_ok=True)
    ref = tiny["reference"] if reference is None else reference
    return ft.finetune(dataset, ref, small(tiny["model"], **changes), out=out)


def weights(path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(path))


def same_weights(a, b) -> bool:
    wa, wb = weights(a.model_file), weights(b.model_file)
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


# ---------------------------------------------------------------------------------------------
# Pure pieces


def test_schedule_warms_up_then_decays_to_zero():
    assert [lr_factor(s, 4, 20) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert lr_factor(4, 4, 20) == 1.0
    assert lr_factor(12, 4, 20) == pytest.approx(0.5)
    assert lr_factor(19, 4, 20) == pytest.approx(0.5 * (1 + np.cos(np.pi * 15 / 16)))


def test_sampler_is_a_seeded_permutation_per_epoch():
    train = np.arange(100, 137)  # 37 rows, batches of 8: 4 per epoch, 5 rows left out
    epoch = np.concatenate([batch_rows(train, 8, 3, s) for s in range(4)])
    assert len(set(epoch)) == 32 and set(epoch) <= set(train)
    again = [batch_rows(train, 8, 3, s) for s in range(8)]
    assert all(np.array_equal(batch_rows(train, 8, 3, s), again[s]) for s in range(8))
    assert not np.array_equal(again[0], again[4])  # the next epoch is another permutation


def test_retrieval_recall_counts_ties_against_the_query():
    captions = ["a", "b", "c", "a"]
    text = np.eye(3)[[0, 1, 2, 0]]
    perfect = retrieval_recall(text + 0.01, text, captions)
    assert perfect["image_to_text"]["R@1"] == perfect["text_to_image"]["R@1"] == 1.0
    blind = retrieval_recall(np.ones((4, 3)), text, captions)
    assert blind["image_to_text"]["R@1"] == 0.0 and blind["text_to_image"]["R@1"] == 0.0
    assert blind["image_to_text"]["R@5"] == 1.0  # only 3 distinct captions


# ---------------------------------------------------------------------------------------------
# Training


def test_loss_decreases_and_the_report_holds_the_history(tiny, tmp_path):
    result = run(tiny, tmp_path / "out", steps=40)
    losses = [h["loss"] for h in result.history]
    assert len(losses) == 40 and all(h["contrastive"] is None for h in result.history)
    assert np.mean(losses[-10:]) < 0.6 * np.mean(losses[:10])
    report = json.loads((tmp_path / "out" / ft.REPORT).read_text())
    assert report["history"] == result.history and report["finished"]
    assert report["spec_diff"]["after"] < report["spec_diff"]["before"]
    assert report["inputs"]["n_held_out"] == 12 and len(report["held_out_rows"]) == 12


def test_the_report_and_summary_give_the_verdict_in_words(tiny, tmp_path, capsys):
    """align-model reports the verdict align gives (measure.held_out_verdict on the held-out
    rows: A the reference, B the image features before and after): its share closed is
    1 - after / before of the held-out SPEC-diff the report states (computed apart, by the
    training loss's function), its kind follows make_verdict's rule, and the CLI summary
    prints its words first."""
    from spec_core.align.verdict import CLOSED_SHARE

    flags = ["--model", tiny["model"], "--reference", str(tiny["root"] / "ref.npy")]
    flags += ["--data", str(tiny["images"]), "--steps", "40", "--batch-size", "16"]
    flags += ["--lr", "1e-3", "--warmup", "3", "--val-fraction", "0.25", "--device", "cpu"]
    assert main(["align-model", *flags, "--quiet", "--out", str(tmp_path / "out")]) == 0
    printed = capsys.readouterr().out
    report = json.loads((tmp_path / "out" / ft.REPORT).read_text())
    verdict = report["verdict"]
    before, after = report["spec_diff"]["before"], report["spec_diff"]["after"]
    assert verdict["closed_share"] == pytest.approx(1 - after / before, abs=2e-3)
    assert verdict["kind"] in ("closed", "partly", "cannot", "undecided")
    if verdict["kind"] in ("closed", "partly"):
        assert (verdict["kind"] == "closed") == (verdict["closed_share"] >= CLOSED_SHARE)
    assert f"closed {verdict['closed_share']:.0%} of the difference" in verdict["text"]
    assert printed.splitlines()[0].startswith(verdict["text"])


def test_pairing_reference_rows_with_their_own_images(tiny, tmp_path):
    """Trained with each reference row beside its own image, held-out SPEC-diff falls by far;
    with the reference rows shuffled against the images (so nothing generalises) it does not.
    A trainer that paired batch rows wrongly would fail the first assertion."""
    right = run(tiny, tmp_path / "right", steps=60).spec_diff
    assert right["after"] < 0.5 * right["before"]
    shuffled = tiny["reference"][np.random.default_rng(100).permutation(N)]
    wrong = run(tiny, tmp_path / "wrong", steps=60, reference=shuffled).spec_diff
    assert wrong["after"] > 0.75 * wrong["before"]


def test_the_saved_model_gives_the_reported_after(tiny, tmp_path):
    """out/model.safetensors loads through the project's loader (open_clip:ARCH@file) and its
    features give the held-out SPEC-diff the report states."""
    from spec_core.models.embed import embed
    from spec_core.models.registry import load_encoder

    result = run(tiny, tmp_path / "out", steps=5)
    assert result.report["use_with"].startswith(f"open_clip:{ARCH}@")
    encoder = load_encoder(result.report["use_with"], "image", device="cpu")
    dataset = load_image_folder(tiny["images"])
    features = embed(dataset, encoder, "image").matrix
    rows = np.asarray(result.report["held_out_rows"])
    direct = batch_spec_diff(
        torch.from_numpy(tiny["reference"][rows]).double(),
        torch.from_numpy(features[rows]).double(),
        kernel="cosine",
    )
    assert float(direct) == pytest.approx(result.spec_diff["after"], rel=1e-4)


def test_each_weight_works_and_zero_removes_its_term(tiny, tmp_path):
    both = run(tiny, tmp_path / "both", captions=True, contrastive_weight=0.5, steps=6)
    assert all(h["contrastive"] is not None for h in both.history)
    assert "retrieval" in both.report["held_out"]["after"]
    no_clip = run(tiny, tmp_path / "no_clip", captions=True, steps=6)
    no_captions = run(tiny, tmp_path / "no_captions", steps=6)
    assert same_weights(no_clip, no_captions)  # weight 0: the captions change nothing
    assert not same_weights(both, no_clip)  # weight 0.5: they do
    shuffled = tiny["reference"][::-1].copy()
    clip_only = run(
        tiny, tmp_path / "c1", captions=True, spec_weight=0, contrastive_weight=1, steps=6
    )
    clip_only_shuffled = run(
        tiny,
        tmp_path / "c2",
        captions=True,
        spec_weight=0,
        contrastive_weight=1,
        steps=6,
        reference=shuffled,
    )
    assert same_weights(clip_only, clip_only_shuffled)  # weight 0: the reference changes nothing
    more_spec = run(
        tiny, tmp_path / "c3", captions=True, spec_weight=2, contrastive_weight=1, steps=6
    )
    assert not same_weights(clip_only, more_spec)


def test_resume_ends_where_an_uninterrupted_run_ends(tiny, tmp_path, capsys):
    flags = [
        "--model",
        tiny["model"],
        "--reference",
        str(tiny["root"] / "ref.npy"),
        "--data",
        str(tiny["images"]),
        "--captions",
        str(tiny["captions"]),
        "--steps",
        "12",
        "--batch-size",
        "16",
        "--lr",
        "1e-3",
        "--warmup",
        "3",
        "--val-fraction",
        "0.25",
        "--device",
        "cpu",
        "--checkpoint-every",
        "5",
        "--quiet",
    ]
    assert main(["align-model", *flags, "--out", str(tmp_path / "whole")]) == 0
    # the same run stopped after 7 steps (as a job's time limit would), then resumed
    dataset = load_image_folder(tiny["images"], captions=tiny["captions"])
    config = small(tiny["model"], spec_weight=0.5, contrastive_weight=0.5, steps=12)
    (tmp_path / "parts").mkdir()
    part = ft.finetune(dataset, tiny["reference"], config, out=tmp_path / "parts", stop_after=7)
    assert not part.finished and part.model_file is None
    assert ft.read_checkpoint(tmp_path / "parts" / ft.CHECKPOINT)["step"] == 7
    assert main(["align-model", *flags, "--out", str(tmp_path / "parts"), "--resume"]) == 0
    assert "resumed from" in capsys.readouterr().err
    whole = json.loads((tmp_path / "whole" / ft.REPORT).read_text())
    parts = json.loads((tmp_path / "parts" / ft.REPORT).read_text())
    assert parts["history"] == whole["history"]
    assert parts["held_out"] == whole["held_out"]
    assert parts["verdict"] == whole["verdict"] and whole["verdict"] is not None
    wa, wb = (
        weights(tmp_path / "whole" / ft.MODEL_FILE),
        weights(tmp_path / "parts" / ft.MODEL_FILE),
    )
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_reference_by_model_name(tiny, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SPEC_EXPLORER_CACHE", str(tmp_path / "cache"))
    code = main(
        [
            "align-model",
            "--model",
            tiny["model"],
            "--reference",
            "pixels-16",
            "--data",
            str(tiny["images"]),
            "--out",
            str(tmp_path / "out"),
            "--steps",
            "2",
            "--batch-size",
            "16",
            "--val-fraction",
            "0.25",
            "--device",
            "cpu",
            "--quiet",
        ]
    )
    assert code == 0
    report = json.loads((tmp_path / "out" / ft.REPORT).read_text())
    assert report["inputs"]["reference_dim"] == 768 and report["config"]["contrastive_weight"] == 0
    assert "held-out SPEC-diff (12 rows)" in capsys.readouterr().out


# ---------------------------------------------------------------------------------------------
# Bad input: one line, exit 2, no traceback


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing data", "no such file or folder"),
        ("missing reference", "ref.npy: no such file"),
        ("short reference", "has 47 rows but the dataset has 48"),
        ("contrastive without captions", "--contrastive-weight 0.5 needs captions"),
        ("unknown model", "unknown model 'no-such-model'"),
        ("unknown open_clip pair", "not a pretrained pair open_clip knows"),
        ("not open_clip", "fine-tunes open_clip models"),
        ("both weights zero", "both 0: nothing to train"),
        ("zero reference row", "row 3 is all zeros"),
        ("earlier run", "already holds checkpoint.pt"),
        ("resume nothing", "holds no checkpoint.pt"),
        ("out is a file", "is not a folder"),
        ("out inside data", "is inside the input"),
    ],
)
def test_bad_input_is_one_line(tiny, tmp_path, capsys, case, message):
    ref = tmp_path / "ref.npy"
    reference = tiny["reference"].copy()
    if case == "short reference":
        reference = reference[:-1]
    if case == "zero reference row":
        reference[3] = 0
    if case != "missing reference":
        np.save(ref, reference)
    out = tmp_path / "out"
    argv = {
        "--model": tiny["model"],
        "--reference": str(ref),
        "--data": str(tiny["images"]),
        "--out": str(out),
        "--steps": "2",
        "--device": "cpu",
    }
    extra = ["--quiet"]
    if case == "missing data":
        argv["--data"] = str(tmp_path / "nothing")
    elif case == "contrastive without captions":
        argv["--contrastive-weight"] = "0.5"
    elif case == "unknown model":
        argv["--model"] = "no-such-model"
    elif case == "unknown open_clip pair":
        argv["--model"] = "open_clip:ViT-B-32/no-such-tag"
    elif case == "not open_clip":
        argv["--model"] = "pixels-16"
    elif case == "both weights zero":
        argv["--spec-weight"] = "0"
    elif case == "earlier run":
        out.mkdir()
        (out / ft.CHECKPOINT).write_bytes(b"")
    elif case == "resume nothing":
        extra.append("--resume")
    elif case == "out is a file":
        out.write_text("x")
    elif case == "out inside data":
        argv["--out"] = str(tiny["images"] / "out")
    code = main(["align-model", *[x for kv in argv.items() for x in kv], *extra])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err
    assert message in err
    assert not (tiny["images"] / "out").exists()


def test_resume_refuses_another_run(tiny, tmp_path):
    run(tiny, tmp_path / "out", steps=2)
    dataset = load_image_folder(tiny["images"])
    with pytest.raises(ValueError, match=r"belongs to another run \(lr was 0.001, now 0.002\)"):
        ft.finetune(
            dataset,
            tiny["reference"],
            small(tiny["model"], steps=2, lr=2e-3),
            out=tmp_path / "out",
            resume=True,
        )


def test_caller_arrays_are_not_written(tiny, tmp_path):
    reference = tiny["reference"].copy()
    reference.flags.writeable = False
    run(tiny, tmp_path / "out", steps=1, reference=reference)
    np.testing.assert_array_equal(reference, tiny["reference"])


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_amp_run(tiny, tmp_path):
    result = run(
        tiny, tmp_path / "out", steps=20, device="cuda", captions=True, contrastive_weight=0.5
    )
    assert result.report["amp"] and result.report["device"] == "cuda"
    assert result.spec_diff["after"] < result.spec_diff["before"]


class _Hostile:
    """Unpickling this runs a shell command: a weights file from someone else."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def test_a_pickle_that_is_not_plain_weights_is_refused_without_unsafe_advice(
    tiny, tmp_path, capsys
):
    """open_clip:ARCH@FILE where FILE holds Python objects: nothing in it runs, the message is
    ours (one line naming the file), and torch's advice to load with weights_only=False (which
    would run it) is not passed on."""
    marker = tmp_path / "ran"
    hostile = tmp_path / "weights.bin"
    torch.save({"visual.proj": torch.zeros(2), "evil": _Hostile(marker)}, hostile)
    np.save(tmp_path / "ref.npy", tiny["reference"])
    argv = ["align-model", "--model", f"open_clip:{ARCH}@{hostile}", "--reference",
            str(tmp_path / "ref.npy"), "--data", str(tiny["images"]), "--out",
            str(tmp_path / "out"), "--steps", "2", "--device", "cpu", "--quiet"]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert not marker.exists()
    error = [line for line in err.splitlines() if not line.startswith("note: ")]
    assert len(error) == 1 and error[0].startswith("error: "), err
    assert f"{hostile}: not a weights file this tool can load safely (it holds Python" in err
    assert "weights_only" not in err and "trust" not in err
    hostile.write_bytes(b"garbage, not a pickle")  # torch gives the same advice for this
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"{hostile}: not a weights file this tool can load safely (it is damaged" in err
    assert "weights_only" not in err
