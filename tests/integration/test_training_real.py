"""Short training runs on a few real DeepCrack / UAV75 images."""

import json
from pathlib import Path

import pytest
import torch

from engine.data import CrackSegDataset, dataset_samples, load_sample
from engine.losses import dice_bce_loss
from engine.models import ARCHITECTURES, build_model
from engine.registry import load_model
from engine.train import TrainConfig, train_segmentation
from tests.conftest import DATA_ROOT, require_real_data

pytestmark = pytest.mark.realdata


def test_a_few_steps_on_real_images_lower_the_loss():
    require_real_data("segmentation", "deepcrack", "train")
    paths, spec = dataset_samples("deepcrack-train", DATA_ROOT)
    samples = [load_sample(p, spec.domain) for p in paths[:4]]
    torch.manual_seed(0)
    ds = CrackSegDataset(samples, crop_size=128)
    batch = {k: torch.stack([ds[i][k] for i in range(4)]) for k in ("image", "mask", "weight")}
    assert batch["mask"].sum() > 0
    model = build_model(ARCHITECTURES["unet"]).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(10):
        loss = dice_bce_loss(model(batch["image"]), batch["mask"], batch["weight"])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.9 * losses[0], losses


def test_train_command_writes_a_loadable_checkpoint_and_card(tmp_path: Path):
    require_real_data("segmentation", "uav75", "val")
    cfg = TrainConfig(name="smoke-unet", train_sets={"deepcrack-train": 0.5, "uav75-train": 0.5},
                      val_sets=("uav75-val",), epochs=1, samples_per_epoch=4, batch_size=2,
                      crop_size=64, max_images_per_set=3, threads=None)
    card = train_segmentation(cfg, data_root=DATA_ROOT, out_dir=tmp_path, command="pytest",
                              progress=False)
    on_disk = json.loads((tmp_path / "smoke-unet.json").read_text())
    assert on_disk["weights"]["sha256"] == card["weights"]["sha256"]
    for key in ("architecture", "normalisation", "tile_size", "training_data", "hardware",
                "git_sha", "command", "metrics"):
        assert key in on_disk, key
    assert {d["dataset"]: d["license"] for d in on_disk["training_data"]} == {
        "deepcrack-train": "non-commercial research and education", "uav75-train": "GPL-3.0"}
    assert set(on_disk["metrics"]["validation"]["val_iou"]) == {"deepcrack-train-holdout",
                                                                "uav75-val"}
    model = load_model("smoke-unet", weights_dir=tmp_path)
    assert model(torch.zeros(1, 3, 64, 64)).shape == (1, 1, 64, 64)


def test_batched_augmentation_trains_and_is_recorded(tmp_path: Path):
    """augment='batched' (crops made on the training device) lowers the training loss on real
    DeepCrack images and lands in the card; 'none' as the only val set keeps the hold-outs."""
    require_real_data("segmentation", "deepcrack", "train")
    cfg = TrainConfig(name="smoke-batched", train_sets={"deepcrack-train": 1.0}, val_sets=(),
                      epochs=4, samples_per_epoch=16, batch_size=4, crop_size=96, lr=3e-3,
                      max_images_per_set=8, augment="batched", patience=10)
    card = train_segmentation(cfg, data_root=DATA_ROOT, out_dir=tmp_path, command="pytest",
                              progress=False)
    assert card["training"]["augment"] == "batched"
    losses = [h["train_loss"] for h in card["history"]]
    assert losses[-1] < losses[0], losses
    assert set(card["history"][0]["val_iou"]) == {"deepcrack-train-holdout"}


def test_workers_with_batched_augmentation_is_a_clear_error(tmp_path: Path):
    cfg = TrainConfig(train_sets={"deepcrack-train": 1.0}, augment="batched", workers=2)
    with pytest.raises(ValueError, match="drop --workers"):
        train_segmentation(cfg, data_root=DATA_ROOT, out_dir=tmp_path, progress=False)


def test_ema_weights_are_validated_saved_and_recorded(tmp_path: Path):
    require_real_data("segmentation", "uav75", "val")
    cfg = TrainConfig(name="smoke-ema", train_sets={"uav75-train": 1.0}, val_sets=("uav75-val",),
                      epochs=1, samples_per_epoch=4, batch_size=2, crop_size=64,
                      max_images_per_set=2, ema_decay=0.9)
    card = train_segmentation(cfg, data_root=DATA_ROOT, out_dir=tmp_path, command="pytest",
                              progress=False)
    assert card["training"]["ema_decay"] == 0.9
    assert "moving average" in card["training"]["weights_saved"]
    model = load_model("smoke-ema", weights_dir=tmp_path)
    assert model(torch.zeros(1, 3, 64, 64)).shape == (1, 1, 64, 64)


@pytest.mark.parametrize("decay", [0.0, 1.0, 1.5])
def test_bad_ema_decay_is_refused_before_loading_data(tmp_path: Path, decay):
    cfg = TrainConfig(ema_decay=decay)
    with pytest.raises(ValueError, match="ema_decay must be in"):
        train_segmentation(cfg, data_root=tmp_path / "nowhere", out_dir=tmp_path)


def test_dataloader_workers_train_and_are_recorded(tmp_path: Path):
    require_real_data("segmentation", "uav75", "val")
    cfg = TrainConfig(name="smoke-workers", train_sets={"uav75-train": 1.0},
                      val_sets=("uav75-val",), epochs=1, samples_per_epoch=4, batch_size=2,
                      crop_size=64, max_images_per_set=2, workers=2)
    card = train_segmentation(cfg, data_root=DATA_ROOT, out_dir=tmp_path, command="pytest",
                              progress=False)
    assert card["training"]["workers"] == 2
    assert (tmp_path / "smoke-workers.safetensors").is_file()


def test_another_encoder_trains_and_loads_back(tmp_path: Path):
    """--encoder swaps the default MobileNetV2 for another smp encoder; the card records it, so
    the registry rebuilds the same network."""
    require_real_data("segmentation", "deepcrack", "train")
    cfg = TrainConfig(name="smoke-resnet18", encoder="resnet18", encoder_depth=4,
                      train_sets={"deepcrack-train": 1.0}, val_sets=(), epochs=1,
                      samples_per_epoch=2, batch_size=2, crop_size=64, max_images_per_set=4)
    card = train_segmentation(cfg, data_root=DATA_ROOT, out_dir=tmp_path, command="pytest",
                              progress=False)
    assert card["architecture"]["encoder"] == "resnet18"
    assert card["training"]["encoder"] == "resnet18"
    assert card["architecture"]["encoder_depth"] == 4
    assert card["architecture"]["decoder_channels"] == [64, 32, 16, 16]
    model = load_model("smoke-resnet18", weights_dir=tmp_path)
    assert type(model.net.encoder).__name__ == "ResNetEncoder"
    assert not hasattr(model.net.encoder, "layer4")


def test_unknown_encoder_is_refused_before_loading_data(tmp_path: Path):
    with pytest.raises(ValueError, match="Unknown encoder 'mobilenet_v9'.*get_encoder_names"):
        train_segmentation(TrainConfig(encoder="mobilenet_v9"), data_root=tmp_path / "nowhere",
                           out_dir=tmp_path)


def test_negative_workers_are_refused(tmp_path: Path):
    with pytest.raises(ValueError, match="workers must be >= 0"):
        train_segmentation(TrainConfig(workers=-1), data_root=tmp_path / "nowhere",
                           out_dir=tmp_path)


def test_git_sha_from_the_environment_wins(tmp_path: Path, monkeypatch):
    from engine.train import git_sha

    monkeypatch.setenv("CRACKWATCH_GIT_SHA", "abc123")
    assert git_sha(tmp_path) == "abc123"
    assert git_sha() == "abc123"  # also in a real checkout
    monkeypatch.delenv("CRACKWATCH_GIT_SHA")
    assert git_sha(tmp_path) == "unknown"


def test_ema_warmup_follows_the_weights_early_and_the_decay_later():
    from engine.ema import ema_warmup_decay

    assert ema_warmup_decay(0.999, 0) == pytest.approx(0.1)
    assert ema_warmup_decay(0.999, 90) == pytest.approx(0.91)
    assert ema_warmup_decay(0.999, 10**6) == 0.999


def test_weight_ema_matches_torch_averaged_model():
    """WeightEMA (host-side count) gives the average torch's AveragedModel gives with the same
    warm-up decay, parameters and BatchNorm buffers included."""
    from torch.optim.swa_utils import AveragedModel

    from engine.ema import WeightEMA, ema_warmup_decay

    def multi_avg_fn(ema_params, params, n):
        if not torch.is_floating_point(ema_params[0]):
            torch._foreach_copy_(ema_params, params)
            return
        torch._foreach_lerp_(ema_params, params, 1.0 - ema_warmup_decay(0.99, int(n)))

    torch.manual_seed(0)
    model = build_model(ARCHITECTURES["unet"]).train()
    ref = AveragedModel(model, multi_avg_fn=multi_avg_fn, use_buffers=True)
    ours = WeightEMA(model, 0.99)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(4):
        loss = model(torch.randn(2, 3, 64, 64)).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        ref.update_parameters(model)
        ours.update(model)
    a, b = ref.module.state_dict(), ours.module.state_dict()
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k].float(), b[k].float(), atol=1e-6), k
    assert not torch.allclose(b["net.encoder.features.0.0.weight"],
                              model.state_dict()["net.encoder.features.0.0.weight"])


@pytest.mark.parametrize("augment", ["per-crop", "batched"])
def test_bench_train_prints_figures(augment):
    require_real_data("segmentation", "uav75", "train")
    from engine.bench import bench_train

    r = bench_train(augment=augment, batch_size=2, crop_size=64, steps=2, warmup=1,
                    data_root=DATA_ROOT, max_images_per_set=3)
    assert r["augment"] == augment and r["images"] == {"deepcrack-train": 3, "uav75-train": 3,
                                                       "masonry": 3}
    assert r["augment_crops_per_s"] > 0 and r["train_crops_per_s"] > 0
    assert (r["encoder"], r["encoder_depth"]) == ("mobilenet_v2", 5)
    assert 0.0 <= r["sys_share_of_cpu"] <= 1.0 and r["allocator"]
    assert r["train_step_cpu"]["sys_share_of_cpu"] == r["sys_share_of_cpu"]
    assert r["train_step_cpu"]["user_s"] > 0 and r["train_step_cpu"]["wall_s"] > 0


def test_bench_train_takes_the_encoder_options():
    require_real_data("segmentation", "uav75", "train")
    from engine.bench import bench_train

    r = bench_train(batch_size=2, crop_size=64, steps=1, warmup=1, data_root=DATA_ROOT,
                    max_images_per_set=2, encoder="resnet18", encoder_depth=4)
    assert (r["encoder"], r["encoder_depth"]) == ("resnet18", 4) and r["train_crops_per_s"] > 0


def test_imagenet_encoder_trains_and_the_card_records_its_source(tmp_path: Path):
    require_real_data("segmentation", "uav75", "val")
    from engine.pretrained import imagenet_encoder_state

    cfg = TrainConfig(name="smoke-lite0", encoder="efficientnet-lite0", encoder_weights="imagenet",
                      train_sets={"uav75-train": 1.0}, val_sets=("uav75-val",), epochs=1,
                      samples_per_epoch=2, batch_size=2, crop_size=64, max_images_per_set=2)
    card = train_segmentation(cfg, data_root=DATA_ROOT, out_dir=tmp_path, command="pytest",
                              progress=False)
    prov = card["training"]["pretrained_encoder"]
    assert prov["weights"] == "imagenet" and prov["license"] == "Apache-2.0"
    assert card["architecture"]["encoder"] == "efficientnet-lite0"
    model = load_model("smoke-lite0", weights_dir=tmp_path)
    # one small training step moved the encoder only a little away from ImageNet
    state, _ = imagenet_encoder_state("efficientnet-lite0")
    w = model.net.encoder.state_dict()["model.conv_stem.weight"].float()
    assert torch.allclose(w, state["model.conv_stem.weight"], atol=0.05)
    with pytest.raises(ValueError, match="give one"):
        train_segmentation(TrainConfig(encoder="efficientnet-lite0", encoder_weights="imagenet",
                                       init_from="crackwatch-unet-mnv2-gpu-ft2"),
                           data_root=DATA_ROOT, out_dir=tmp_path, progress=False)


def test_a_resumed_run_goes_on_exactly_as_an_uninterrupted_one(tmp_path: Path, monkeypatch):
    """Model, optimiser, EMA, sampler and random-number states all come back: a 3-epoch run
    killed in its third epoch and resumed gives the weights of 3 epochs in one go; the card
    records the resume point, the steps of both sittings and the lineage back to random
    init."""
    from safetensors.torch import load_file

    import engine.train as train_mod
    from engine.train import load_resume, resume_path, resumed_config

    require_real_data("segmentation", "deepcrack", "train")
    base = dict(train_sets={"deepcrack-train": 1.0}, val_sets=(), samples_per_epoch=8,
                batch_size=2, crop_size=64, max_images_per_set=4, ema_decay=0.9, patience=10,
                threads=1)
    whole = train_segmentation(TrainConfig(name="r", epochs=3, **base), data_root=DATA_ROOT,
                               out_dir=tmp_path / "whole", progress=False)
    validate, calls = train_mod._validate, []

    def killed_in_epoch_3(*args):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt  # the run dies before epoch 3's checkpoint
        return validate(*args)

    monkeypatch.setattr(train_mod, "_validate", killed_in_epoch_3)
    with pytest.raises(KeyboardInterrupt):
        train_segmentation(TrainConfig(name="r", epochs=3, **base), data_root=DATA_ROOT,
                           out_dir=tmp_path / "split", progress=False, command="first sitting")
    monkeypatch.setattr(train_mod, "_validate", validate)
    saved = load_resume(tmp_path / "split", "r")
    assert len(saved["run"]["history"]) == 2 and saved["run"]["step"] == 8
    resumed = train_segmentation(resumed_config(saved, threads=1), data_root=DATA_ROOT,
                                 out_dir=tmp_path / "split", progress=False,
                                 command="second sitting", resume=saved)
    assert [h["train_loss"] for h in resumed["history"]] == pytest.approx(
        [h["train_loss"] for h in whole["history"]], rel=1e-5)
    a = load_file(str(tmp_path / "whole" / "r.safetensors"))
    b = load_file(str(tmp_path / "split" / "r.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    t = resumed["training"]
    assert t["steps"] == 12 and t["crops_seen"] == 24 and t["epochs_run"] == 3
    # the saved weights are the best epoch's: the steps they saw, across the two sittings
    assert [h["step"] for h in resumed["history"]] == [4, 8, 12]
    assert t["steps_at_best"] == 4 * t["best_epoch"]
    assert [p["after_epoch"] for p in t["resume_points"]] == [2]
    assert resumed["command"] == "first sitting"
    assert resumed["lineage_chain"] == [{"from": "random init"}]
    assert resume_path(tmp_path / "split", "r").is_file()


def test_resume_refuses_a_missing_checkpoint_and_changed_settings(tmp_path: Path):
    from engine.train import load_resume, resumed_config

    with pytest.raises(FileNotFoundError, match="same --out-dir"):
        load_resume(tmp_path, "nothing")
    (tmp_path / "bad.resume.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a readable resume checkpoint"):
        load_resume(tmp_path, "bad")
    saved = {"config": {"name": "x", "zoom_range": [1, 1], "native_scale_sets": [],
                        "val_sets": []}}
    with pytest.raises(ValueError, match="only max_minutes"):
        resumed_config(saved, lr=0.1)
    assert resumed_config(saved, max_minutes=5.0).max_minutes == 5.0


def test_tile_table_trains_three_starts_and_writes_a_gate(tmp_path: Path):
    """`crackwatch train tiles` on a few real images: the three rows of seed 004's table (random
    init, ImageNet, ImageNet -> concrete -> slope) with accuracy, balanced accuracy and the
    rock-tiles-only figure; the chosen start's fp16 weights load back into the classifier."""
    from safetensors.torch import load_file
    from typer.testing import CliRunner

    from engine.tile_classifier import GATE_NAME, TileClassifier, tile_label
    from jobs.cli.main import app

    require_real_data("segmentation", "rockfracture", "train")
    out = tmp_path / "tiles"
    res = CliRunner().invoke(app, ["train", "tiles", "--steps", "2", "--concrete-steps", "2",
                                   "--batch-size", "4", "--limit", "3", "--out-dir", str(out)])
    assert res.exit_code == 0, res.output
    table = json.loads((out / "tile_transfer_table.json").read_text())
    assert [r["start"] for r in table["rows"]] == ["random init", "ImageNet",
                                                    "ImageNet -> concrete -> slope"]
    for r in table["rows"]:
        assert 0 <= r["accuracy"] <= 1 and 0 <= r["rock_tiles_only"]["balanced_accuracy"] <= 1
        assert r["tiles"] == r["crack_tiles"] + r["no_crack_tiles"] > 0
    card = json.loads((out / f"{GATE_NAME}.json").read_text())
    assert card["chosen_on"] == "best validation balanced accuracy"
    state = load_file(str(out / f"{GATE_NAME}.safetensors"))
    model = TileClassifier()
    model.load_state_dict({k: v.float() if v.is_floating_point() else v
                           for k, v in state.items()})
    assert model(torch.zeros(2, 3, 128, 128)).shape == (2,)
    import numpy as np

    assert tile_label(np.zeros((128, 128), bool)) == 0
    stray = np.zeros((128, 128), bool)
    stray[0, :10] = True
    assert tile_label(stray) is None  # 10 stray pixels: neither class
    stray[:, 60:62] = True
    assert tile_label(stray) == 1
