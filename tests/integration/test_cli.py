"""The crackwatch command line, run in-process with typer's CliRunner."""

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from jobs.cli import app
from tests.conftest import DATA_ROOT

runner = CliRunner()


def _row(output: str, name: str) -> list[str]:
    """The cells of the table row that starts with ``name``."""
    line = next(x for x in output.splitlines() if x.startswith("│ " + name + " "))
    return [c.strip() for c in line.strip("│").split("│")]


def test_models_list_shows_default_and_what_each_model_serves(tmp_path: Path, monkeypatch):
    import torch

    from engine import registry
    from engine.checkpoint import fp16_state_dict, save_checkpoint
    from engine.models import ARCHITECTURES, build_model

    shipped = registry.DEFAULT_MODEL
    r = runner.invoke(app, ["models", "list"], env={"COLUMNS": "200"})
    assert r.exit_code == 0, r.output
    for profile, name in registry.PROFILE_MODELS.items():  # the shipped concrete and slope models
        assert _row(r.output, name)[1:3] == [profile, profile]

    torch.manual_seed(0)
    save_checkpoint(fp16_state_dict(build_model(ARCHITECTURES["unet"])),
                    {"name": "tiny-slope", "architecture": ARCHITECTURES["unet"],
                     "site_profile": "slope"}, tmp_path)
    monkeypatch.setattr(registry, "PROFILE_MODELS", {"structure": shipped, "slope": "tiny-slope"})
    r = runner.invoke(app, ["models", "list", "--weights-dir", str(tmp_path)],
                      env={"COLUMNS": "200"})
    assert r.exit_code == 0, r.output
    assert r.output.index("serves") < r.output.index("default for")
    assert _row(r.output, "tiny-slope")[1:3] == ["slope", "slope"]
    assert _row(r.output, shipped)[1:3] == ["structure", "structure"]


def test_site_model_add_set_and_list(tmp_path: Path):
    from engine.registry import DEFAULT_MODEL, PROFILE_MODELS
    from geodata.store import connect, get_site

    url = f"sqlite:///{tmp_path / 'cw.db'}"
    site = ["site", "add", "--crs", "EPSG:32633", "--url", url]
    r = runner.invoke(app, [*site, "wall", "--profile", "structure", "--model", "no-such-model"])
    assert r.exit_code == 2 and "no-such-model" in r.output, r.output
    assert "crackwatch models list" in r.output.replace("\n", " ")
    assert "No sites yet" in runner.invoke(app, ["site", "list", "--url", url]).output

    r = runner.invoke(app, [*site, "cut", "--profile", "slope"], env={"COLUMNS": "200"})
    assert r.exit_code == 0 and f"profile default: {PROFILE_MODELS['slope']}" in r.output
    r = runner.invoke(app, [*site, "wall", "--profile", "structure", "--model", DEFAULT_MODEL])
    assert r.exit_code == 0, r.output
    engine = connect(url)
    assert get_site(engine, "wall").model_name == DEFAULT_MODEL
    assert get_site(engine, "cut").model_name is None

    set_model = ["site", "set-model", "--url", url]
    r = runner.invoke(app, [*set_model, "cut", "--model", "nope"])
    assert r.exit_code == 2 and "crackwatch models list" in r.output.replace("\n", " ")
    assert get_site(engine, "cut").model_name is None  # nothing written
    for bad in ([], ["--model", DEFAULT_MODEL, "--profile-default"]):
        r = runner.invoke(app, [*set_model, "cut", *bad])
        assert r.exit_code == 2 and "--profile-default" in r.output, r.output
    r = runner.invoke(app, [*set_model, "cut", "--model", DEFAULT_MODEL])
    assert r.exit_code == 0 and get_site(engine, "cut").model_name == DEFAULT_MODEL
    wall_id = get_site(engine, "wall").id
    r = runner.invoke(app, [*set_model, "--site-id", str(wall_id), "--profile-default"],
                      env={"COLUMNS": "200"})
    assert r.exit_code == 0 and "profile default" in r.output, r.output
    assert get_site(engine, "wall").model_name is None
    engine.dispose()

    r = runner.invoke(app, ["site", "list", "--url", url], env={"COLUMNS": "200"})
    assert r.exit_code == 0, r.output
    assert _row(r.output, "1")[1:4] == ["cut", "slope", DEFAULT_MODEL]
    assert _row(r.output, "2")[1:4] == ["wall", "structure",
                                        f"profile default: {PROFILE_MODELS['structure']}"]


def test_site_tile_gate_switch_wins_over_the_rule_and_loses_to_the_run(tmp_path: Path):
    """A soil-crack slope site turns the tile gate off (it was measured on rock fractures
    only); the next run's settings follow the site, a run's own --tile-gate still wins."""
    from engine.profiles import read_profile_models
    from engine.survey import InferenceSettings, SurveySource
    from geodata import audit
    from geodata.store import connect, get_site

    url = f"sqlite:///{tmp_path / 'cw.db'}"
    r = runner.invoke(app, ["site", "add", "cut", "--profile", "slope", "--crs", "EPSG:32633",
                            "--url", url])
    assert r.exit_code == 0, r.output
    gate = ["site", "set-tile-gate", "cut", "--url", url]
    for bad in ([], ["--on", "--off"]):
        r = runner.invoke(app, [*gate, *bad])
        assert r.exit_code == 2 and "--on, --off or --rule" in r.output, r.output
    slope_model = read_profile_models()["slope"]
    engine = connect(url)

    def run_gate(option: bool | None = None) -> bool:
        site = get_site(engine, "cut")
        src = SurveySource.of(type("S", (), {"id": 1, "source_path": "x.tif",
                                             "source_type": "orthomosaic",
                                             "pixel_size_m": 0.01})(), site)
        return InferenceSettings(tile_gate=option).for_survey(src, slope_model).tile_gate

    assert get_site(engine, "cut").tile_gate is None and run_gate() is True  # the slope rule
    r = runner.invoke(app, [*gate, "--off", "--by", "ana"], env={"COLUMNS": "200"})
    assert r.exit_code == 0 and "tile gate off from its next run" in r.output, r.output
    assert get_site(engine, "cut").tile_gate is False
    assert run_gate() is False and run_gate(True) is True
    r = runner.invoke(app, [*gate, "--rule"], env={"COLUMNS": "200"})
    assert r.exit_code == 0 and f"by rule (on with {slope_model})" in r.output, r.output
    assert get_site(engine, "cut").tile_gate is None and run_gate() is True
    events = audit.audit_events(engine, actions=["site.tile_gate_set"], newest_first=False)
    assert list(events["actor"])[0] == "ana"
    assert [(d["old"], d["new"]) for d in events["details"]] == [(None, False), (False, None)]
    r = runner.invoke(app, ["site", "set-tile-gate", "nowhere", "--on", "--url", url])
    assert r.exit_code == 2 and "cut" in r.output, r.output  # names the known sites
    engine.dispose()


def test_infer_with_a_profile_runs_that_profiles_model(tmp_path: Path, monkeypatch):
    """`crackwatch infer PHOTO --profile slope` runs the slope model (it ran the default
    structure model with slope rules); --model still wins."""
    from engine import registry
    from engine.errors import ModelNotFoundError

    asked = []

    def record(name, **kwargs):
        asked.append(name)
        raise ModelNotFoundError(f"stop here ({name})")

    monkeypatch.setattr(registry, "load_model", record)
    photo = tmp_path / "p.jpg"
    photo.write_bytes(b"")
    for extra in (["--profile", "slope"], ["--profile", "structure"], [],
                  ["--profile", "slope", "--model", registry.DEFAULT_MODEL]):
        r = runner.invoke(app, ["infer", str(photo), "--out", str(tmp_path / "o"), *extra])
        assert r.exit_code == 2 and "stop here" in r.output, r.output
    assert asked == [registry.PROFILE_MODELS["slope"], registry.PROFILE_MODELS["structure"],
                     registry.DEFAULT_MODEL, registry.DEFAULT_MODEL]


def test_evaluate_bad_dataset_is_a_clear_error(tmp_path: Path):
    r = runner.invoke(app, ["evaluate", "--dataset", str(tmp_path / "nowhere")])
    assert r.exit_code == 2
    assert "neither a dataset name" in r.output


def test_evaluate_unknown_model(tmp_path: Path):
    r = runner.invoke(app, ["evaluate", "--model", "no-such-model", "--limit", "1"])
    assert r.exit_code == 2
    assert "crackwatch models list" in r.output


@pytest.mark.realdata
def test_evaluate_field_suite_one_table_and_json(tmp_path: Path):
    out = tmp_path / "field.json"
    r = runner.invoke(app, ["evaluate", "--suite", "field", "--model",
                            "crackwatch-unet-mnv2-gpu-ft2", "--limit", "2", "--data-root",
                            str(DATA_ROOT), "--out", str(out)])
    assert r.exit_code == 0, r.output
    rep = json.loads(out.read_text())
    (one,) = rep["reports"]
    assert set(one["sets"]) == {"deepcrack-test", "uav75-test", "rockfracture-test"}
    for m in one["sets"].values():
        assert m["images"] == 2 and 0 <= m["at_0.5"]["iou"] <= 1 and 0 < m["ods"]["threshold"] < 1
    neg = one["negatives"]
    assert neg["dataset"] == "terrain-negatives-test" and neg["images"] == 2
    assert neg["crack_pixel_pct"] >= 0 and neg["components"] >= 0
    assert "Field suite" in r.output and "crack-free terrain" in r.output
    # the whole pipeline beside the model alone (issue 25)
    pipe = one["pipeline"]
    assert pipe["profile"] == "structure"
    assert set(pipe["sets"]) == {"deepcrack-test", "uav75-test", "rockfracture-test",
                                 "brighton-test-photos"}
    for name, sides in pipe["sets"].items():
        assert sides["pipeline"]["components"] <= sides["model"]["components"], name
    assert "model alone vs the structure pipeline" in r.output


@pytest.mark.realdata
def test_filter_sweep_prints_the_trade_off_table(tmp_path: Path):
    out = tmp_path / "sweep.json"
    r = runner.invoke(app, ["evaluate", "--filter-sweep", "--model",
                            "crackwatch-unet-lite0-slope2", "--limit", "1", "--data-root",
                            str(DATA_ROOT), "--out", str(out)], env={"COLUMNS": "250"})
    assert r.exit_code == 0, r.output
    rep = json.loads(out.read_text())
    assert rep["profile"] == "slope" and len(rep["rows"]) >= 10
    off, strict = rep["rows"][0], rep["rows"][-1]
    assert off["filter"]["min_length_px"] == 0
    for name in ("deepcrack-test", "rockfracture-test"):
        assert 0 <= off[name]["length_recall"] <= 1
    # a stricter rule never keeps more false cracks on the crack-free photo
    assert strict["brighton-test-photos"]["components"] <= \
        off["brighton-test-photos"]["components"]
    assert "object rules vs pooled IoU" in r.output


def test_evaluate_unknown_suite_is_a_clear_error():
    r = runner.invoke(app, ["evaluate", "--suite", "lab"])
    assert r.exit_code == 2 and "the suites are 'field', 'unsupervised' and 'site-change'" \
        in r.output.replace("\n", " ")


@pytest.mark.realdata
def test_models_calibrate_writes_the_map_into_a_copy_of_the_card(tmp_path: Path):
    import shutil

    from engine.registry import WEIGHTS_DIR, load_model

    for suffix in (".json", ".safetensors"):
        src = WEIGHTS_DIR / f"crackwatch-unet-mnv2-gpu-ft2{suffix}"
        shutil.copy(src, tmp_path / f"cal-copy{suffix}")
    card = json.loads((tmp_path / "cal-copy.json").read_text())
    card["name"] = "cal-copy"
    card["weights"]["file"] = "cal-copy.safetensors"
    (tmp_path / "cal-copy.json").write_text(json.dumps(card))
    r = runner.invoke(app, ["models", "calibrate", "cal-copy", "--weights-dir", str(tmp_path),
                            "--val-set", "uav75-val", "--data-root", str(DATA_ROOT)])
    assert r.exit_code == 0, r.output
    cal = json.loads((tmp_path / "cal-copy.json").read_text())["calibration"]
    assert all(0.3 <= t <= 0.7 for t in cal["calibrated_ods_threshold"].values())
    model = load_model("cal-copy", weights_dir=tmp_path)  # sha still verifies: weights untouched
    assert model.logit_scale == cal["scale"] and model.logit_bias == cal["bias"]


@pytest.mark.realdata
def test_evaluate_writes_json_report(tmp_path: Path):
    out = tmp_path / "report.json"
    r = runner.invoke(app, ["evaluate", "--dataset", "uav75-test", "--limit", "2",
                            "--data-root", str(DATA_ROOT), "--out", str(out)])
    assert r.exit_code == 0, r.output
    rep = json.loads(out.read_text())
    assert rep["images"] == 2 and "planking_fpr" in rep["at_0.5"]
    assert rep["command"].startswith("crackwatch evaluate")
    rows = rep["per_image"]
    assert len(rows) == 2 and all(set(r) == {"image", "tp", "fp", "fn", "iou"} for r in rows)
    assert sum(r["tp"] for r in rows) == rep["at_0.5"]["counts"]["tp"]
    assert "most wrong pixels" in r.output and rows[0]["image"] in r.output


@pytest.mark.realdata
def test_evaluate_tta_records_the_command_as_typed(tmp_path: Path):
    """An option typed with its default value stays in the recorded command; --tta is reported."""
    out = tmp_path / "report.json"
    r = runner.invoke(app, ["evaluate", "--dataset", "deepcrack-test", "--limit", "1", "--tta",
                            "--data-root", str(DATA_ROOT), "--out", str(out)])
    assert r.exit_code == 0, r.output
    rep = json.loads(out.read_text())
    assert rep["tta"] is True and rep["images"] == 1
    assert rep["per_photo"][0]["images"] == 1 and "source photos" in r.output
    assert "--dataset deepcrack-test" in rep["command"] and "--tta" in rep["command"]
    assert "--device" not in rep["command"]  # defaults not typed stay out


@pytest.mark.realdata
def test_recorded_command_is_crackwatch_under_python_dash_m(tmp_path: Path):
    """Run as ``python -m jobs.cli`` (as on a GPU machine), the card still says ``crackwatch``."""
    out = tmp_path / "report.json"
    r = runner.invoke(app, ["evaluate", "--dataset", "uav75-test", "--limit", "1",
                            "--data-root", str(DATA_ROOT), "--out", str(out)],
                      prog_name="python3 -m jobs.cli")
    assert r.exit_code == 0, r.output
    assert json.loads(out.read_text())["command"].startswith("crackwatch evaluate --dataset")


@pytest.mark.realdata
def test_train_cli_augment_and_val_set_none(tmp_path: Path):
    """--augment batched and --val-set none reach the card; a bad --augment is a clear error."""
    r = runner.invoke(app, ["train", "segment", "--name", "cli-smoke", "--train-set",
                            "deepcrack-train=1", "--val-set", "none", "--epochs", "1",
                            "--samples-per-epoch", "4", "--batch-size", "2", "--crop-size", "64",
                            "--max-images-per-set", "4", "--augment", "batched",
                            "--data-root", str(DATA_ROOT), "--out-dir", str(tmp_path)])
    assert r.exit_code == 0, r.output
    card = json.loads((tmp_path / "cli-smoke.json").read_text())
    assert card["training"]["augment"] == "batched" and card["training"]["val_sets"] == []
    assert "--augment batched" in card["command"]
    r = runner.invoke(app, ["train", "segment", "--augment", "gpu", "--max-images-per-set", "2",
                            "--data-root", str(DATA_ROOT), "--out-dir", str(tmp_path)])
    assert r.exit_code == 2 and "augment must be 'per-crop' or 'batched'" in r.output


def test_user_text_with_rich_markup_is_printed_as_typed(tmp_path: Path):
    """A site named like Rich markup neither crashes `site add`, `survey add` nor `site
    list`, and errors print `error:` without literal markup tags."""
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from datetime import datetime

    from synthetic import write_ortho

    url = f"sqlite:///{tmp_path / 'cw.db'}"
    name = "bad[/green]name"
    r = runner.invoke(app, ["site", "add", name, "--profile", "structure", "--crs",
                            "EPSG:32633", "--url", url])
    assert r.exit_code == 0, r.output
    assert name in r.output
    tif = write_ortho(tmp_path / "[bold]a.tif", when=datetime(2026, 6, 1))
    r = runner.invoke(app, ["survey", "add", str(tif), "--site", name, "--url", url])
    assert r.exit_code == 0, r.output
    assert "[bold]a.tif" in r.output.replace("\n", "")
    r = runner.invoke(app, ["site", "list", "--url", url])
    assert r.exit_code == 0 and "bad[/g" in r.output, r.output  # narrow test terminal
    r = runner.invoke(app, ["survey", "list", "--site", "[red]nowhere", "--url", url])
    assert r.exit_code == 2
    assert "error:" in r.output and "[bold red]" not in r.output and "[red]nowhere" in r.output


@pytest.mark.parametrize("url, says", [
    ("garbage", "cannot parse database URL"),
    ("mysql://x@localhost/db", "supports sqlite and postgresql"),
    ("postgresql+psycopg://nobody@127.0.0.1:1/x", "Connection refused"),
])
def test_a_bad_store_url_is_one_error_line_not_a_traceback(url, says):
    for args in (["site", "list"], ["survey", "list", "--site", "x"], ["run", "--site", "x"]):
        r = runner.invoke(app, [*args, "--url", url])
        assert r.exit_code == 2, r.output
        assert says in r.output and "--url" in r.output and "Traceback" not in r.output


def test_listing_commands_never_create_or_migrate_the_store(tmp_path, monkeypatch):
    from geodata.store import upgrade
    from geodata.store.migrate import current_revision, head_revision

    missing = tmp_path / "nowhere.db"
    r = runner.invoke(app, ["site", "list", "--url", f"sqlite:///{missing}"])
    assert r.exit_code == 2 and "no CrackWatch store" in r.output and "site add" in r.output
    assert not missing.exists()

    old = f"sqlite:///{tmp_path / 'old.db'}"
    upgrade(old, "0001")
    for args in (["site", "list"], ["survey", "list", "--site", "x"]):
        r = runner.invoke(app, [*args, "--url", old])
        assert r.exit_code == 2 and "db upgrade" in r.output and "0001" in r.output, r.output
    assert current_revision(old) == "0001"  # not migrated

    url = f"sqlite:///{tmp_path / 'cw.db'}"
    assert runner.invoke(app, ["site", "add", "North cut", "--profile", "slope", "--crs",
                               "EPSG:32633", "--url", url]).exit_code == 0
    assert current_revision(url) == head_revision()
    # a folder SQLite cannot write to (a read-only mount): opened immutable, still listed
    import geodata.store.engine as store_engine

    monkeypatch.setattr(store_engine, "_folder_writable", lambda folder: False)
    r = runner.invoke(app, ["site", "list", "--url", url])
    assert r.exit_code == 0 and "North" in r.output and "slope" in r.output, r.output


def _command_options() -> dict[str, set[str]]:
    """``"survey add"`` -> its long options, for every crackwatch command."""
    import typer

    def walk(cmd, path=()):
        if hasattr(cmd, "commands"):  # a group (typer vendors its own click)
            out = {}
            for name, sub in cmd.commands.items():
                out.update(walk(sub, (*path, name)))
            return out
        return {" ".join(path): {o for p in cmd.params for o in (*p.opts, *p.secondary_opts)
                                 if o.startswith("--")}}

    return walk(typer.main.get_command(app))


#: Options of other programs that our sources name (git in engine/train.py; `ray start` in
#: jobs/executor.py; nvidia-smi in jobs/bench_ray.py).
FOREIGN_OPTIONS = {"--porcelain", "--untracked-files", "--opt",
                   "--head", "--port", "--num-gpus", "--address", "--query-gpu", "--format"}


def test_hints_name_only_options_that_exist():
    """Every ``--option`` in our sources is an option of some crackwatch command, and one
    named after ``crackwatch <command>`` (in the same string) is an option of that command."""
    import re

    commands = _command_options()
    every = set().union(*commands.values()) | FOREIGN_OPTIONS
    root = Path(__file__).resolve().parents[2]
    wrong = []
    for f in sorted(root.glob("*/**/*.py")):
        rel = f.relative_to(root).as_posix()
        if rel.startswith(("tests/", "crackwatch.egg-info/")) or rel == "deploy/docs_hooks.py":
            continue  # the docs hook names mkdocs's options and checks the pages itself
        text = f.read_text()
        for i, line in enumerate(text.splitlines(), 1):
            for opt in re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)(?![\w.-])", line):
                if opt not in every:
                    wrong.append(f"{rel}:{i}: {opt} is no option of any command")
            for cmd, opts in re.findall(r"crackwatch ((?:[a-z]+ ?){1,2})((?: [^`\"']*)?)", line):
                name = cmd.strip()
                if name not in commands:
                    name = name.split(" ")[0]
                if name not in commands:
                    continue
                for opt in re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)(?![\w.-])", opts):
                    if opt not in commands[name]:
                        wrong.append(f"{rel}:{i}: `crackwatch {name}` has no {opt}")
    assert wrong == []


def test_site_id_is_accepted_wherever_a_site_is_named(tmp_path):
    for name, opts in _command_options().items():
        if "--site" in opts:
            assert "--site-id" in opts, f"`crackwatch {name}` takes --site but not --site-id"
    url = f"sqlite:///{tmp_path / 'cw.db'}"
    assert runner.invoke(app, ["site", "add", "North cut", "--profile", "slope", "--crs",
                               "EPSG:32633", "--url", url]).exit_code == 0
    r = runner.invoke(app, ["export", "--site-id", "1", "--format", "csv", "--out",
                            str(tmp_path / "cracks.csv"), "--url", url])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "cracks.csv").exists()
    r = runner.invoke(app, ["export", "--format", "csv", "--out", str(tmp_path / "x.csv"),
                            "--url", url])
    assert r.exit_code == 2 and "--site-id" in r.output
