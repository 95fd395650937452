"""Every stage key pinned (issue 31): real runs of many hours are cached on them, so a refactor must leave each
key byte-identical. Four small configs (seeds and reseeded teachers, crossfit, a CNN, a transfer set, an extra
eval set, auto temperature, strategy options, sparsity, online mode, calibration, a positive class other than
1, a logits-file teacher) are planned through the real pipeline with stages.run replaced by a stand-in that
records each stage's key and writes a manifest with fixed output hashes (so the keys that read upstream
hashes -- logits, students, evaluate -- are computed too); nothing is trained.

The pinned values are sha256 prefixes of each canonical key with its `algorithm` fields reduced to the module
names (a module's VERSION bump rebuilds outdated stages by design and is not a key change) and the test's
folder written as <tmp>. They were computed by the code before the pipeline became a package (commit
22bfd66). A failure here means cached runs would be rebuilt or refused: if the change of meaning is
intended, update the value and say which stage keys changed and why in the commit."""
import hashlib
import json
import shutil
from pathlib import Path

import pytest

import mtkd
from mtkd import stages
from mtkd.config import load_config
from mtkd.io import sha256_json
from mtkd.pipeline import checks
from mtkd.pipeline.run import Run
from test_pipeline import TINY

CONFIGS = {
    "a": """\
name: keycheck
seed: 7
seeds: [7, 8]
reseed_teachers: true
tasks:
  - name: demo
    demo_size: 600
    max_train_examples: 300
    transfer_from_train: 100
    extra_eval:
      - {name: reviews, file: reviews_ood.tsv, text_columns: [sentence]}
teachers:
  - {name: t1, model: tiny, epochs: 1, lr: 1.0e-3, max_length: 32, crossfit: 2}
  - {name: tf, kind: tfidf}
  - {name: cn, kind: cnn, epochs: 1, max_length: 32, embedding_dim: 16, filters: 8, seed: 3}
student: {model: tiny, layers: 1, epochs: 1, lr: 2.0e-3, max_length: 32, save_model: false}
distill:
  temperature: auto
  temperature_grid: [1, 4]
  strategies: [average, weighted, learned_gating, agreement, curriculum]
  single_teacher: [t1]
""",
    "b": TINY,   # test_pipeline's run: the default strategies and temperature
    "c": """\
name: sparse
seed: 3
tasks: [{name: demo, demo_size: 400, metric: f1, pos_label: negative, label_names: [negative, positive]}]
teachers:
  - {name: t1, model: tiny, epochs: 1, lr: 1.0e-3, max_length: 32}
  - {name: tf, kind: tfidf, C: 2.0}
student: {model: tiny, layers: 1, epochs: 1, lr: 2.0e-3, max_length: 32, sparsity: 0.5, gate_hidden: 8}
distill: {mode: online, calibrate: true, strategies: [average, learned_gating_joint, entropy_weighted], alpha: 0.5, single_teacher: false}
""",
    "d": """\
name: files
seed: 11
tasks: [{name: demo, demo_size: 300}]
teachers:
  - {name: tf, kind: tfidf}
  - {name: api, kind: logits, scores: probs, files: {train: scores/train.csv, validation: scores/validation.csv, eval: scores/eval.csv}}
  - {name: t1, model: tiny, epochs: 1, lr: 1.0e-3, max_length: 32, seed: 11}
student: {model: tiny, layers: 1, epochs: 1, lr: 2.0e-3, max_length: 32}
distill: {strategies: [weighted, calibrated_average], temperature: 2.0, alpha: 0.9, baseline: false}
""",
}
PINNED = {
    "a": {
        "demo/data": "c5519aec9c032fd4",
        "demo/eval": "199db2c413d09ff2",
        "demo/logits/cn": "e2235a26327aa3a1",
        "demo/logits/t1": "51e1686afb56ba38",
        "demo/logits/t1@seed8": "a5955824bdd46a4e",
        "demo/logits/tf": "7a788eae5c175c48",
        "demo/logits/tf@seed8": "de4c115d5157f9c4",
        "demo/students/kd_t1": "2e3feb9a9192798e",
        "demo/students/kd_t1@seed8": "eac2de191d0ee64f",
        "demo/students/multi_agreement": "09cc464cf4623a76",
        "demo/students/multi_agreement@seed8": "fc927ebef5326267",
        "demo/students/multi_average": "344a5f2bfd6556da",
        "demo/students/multi_average@seed8": "4871c968a498036a",
        "demo/students/multi_curriculum": "38ae3b4b1ca0f5dc",
        "demo/students/multi_curriculum@seed8": "6f41c62455c1868e",
        "demo/students/multi_learned_gating": "021d263488561100",
        "demo/students/multi_learned_gating@seed8": "39f30c48daae90af",
        "demo/students/multi_weighted": "cd9070fa07540267",
        "demo/students/multi_weighted@seed8": "1cc4a9cdf6204b74",
        "demo/students/no_kd": "9682c285853906e7",
        "demo/students/no_kd@seed8": "7cbb5a859060f4ed",
        "demo/teachers/cn": "a1a971ae359c4c82",
        "demo/teachers/t1": "67cfbe0c1715f3da",
        "demo/teachers/t1@seed8": "995218957b5916b9",
        "demo/teachers/tf": "06e18422e79942e6",
        "demo/teachers/tf@seed8": "13bd13c14d0de592",
    },
    "b": {
        "demo/data": "44b16aa362428797",
        "demo/eval": "4d4e4e320798a154",
        "demo/logits/t1": "f4bcd4833a1deb63",
        "demo/logits/t2": "66bdf6bfeddd2664",
        "demo/logits/tf": "8953de7125d24b65",
        "demo/students/kd_t1": "1c1262b4aa8739cf",
        "demo/students/kd_t2": "fe9871542853fb96",
        "demo/students/kd_tf": "30d5ee25ec809ed8",
        "demo/students/multi_average": "3a24b5954069b57a",
        "demo/students/multi_best_per_sample": "8e1a7718cc1657c8",
        "demo/students/multi_learned_gating": "c3ca95e2e8b25543",
        "demo/students/multi_weighted": "d7e4fcbd262ac89a",
        "demo/students/no_kd": "14f378796a2922ad",
        "demo/teachers/t1": "5f6b549c0d060b22",
        "demo/teachers/t2": "a259da440af68ead",
        "demo/teachers/tf": "5e6edc4ecb83c67c",
    },
    "c": {
        "demo/data": "c3cf887612209342",
        "demo/eval": "fa00e395841a7d71",
        "demo/logits/t1": "4ca5e19d7a88639e",
        "demo/logits/tf": "67a278a465137f53",
        "demo/students/multi_average": "621dcc0c9f5ff53b",
        "demo/students/multi_entropy_weighted": "428bc5a561938aec",
        "demo/students/multi_learned_gating_joint": "ec36ce83aa2f8fa0",
        "demo/students/no_kd": "72ad234df409ed05",
        "demo/teachers/t1": "a84f9b0f1779d3e6",
        "demo/teachers/tf": "8018ba9e9130efb9",
    },
    "d": {
        "demo/data": "d29cfdbfd94b3cf0",
        "demo/eval": "390187b5468df0d9",
        "demo/logits/api": "fc8542dbb0adf152",
        "demo/logits/t1": "b39311f9866bab24",
        "demo/logits/tf": "8568542d43a702e9",
        "demo/students/kd_api": "76136f7cfeb9c43e",
        "demo/students/kd_t1": "63877aefddec7cfc",
        "demo/students/kd_tf": "44c69a1472ff6af5",
        "demo/students/multi_calibrated_average": "1c0e1aaed673454c",
        "demo/students/multi_weighted": "1613a3fd9ec2038b",
        "demo/teachers/api": "8b99dbb3f973b5da",
        "demo/teachers/t1": "0189a55074b3a3e1",
        "demo/teachers/tf": "ef9530750c522c4b",
    },
}
OUTPUTS = ("train.npy", "validation.npy", "eval.npy", "transfer.npy", "reviews.npy", "model/model.safetensors")


def planned_keys(cfg_path: Path, out: Path, monkeypatch) -> dict[str, dict]:
    """{stage folder relative to `out`: its canonical key} of every stage `mtkd evaluate` would build."""
    keys = {}

    def record(folder, key, build, **kw):
        rel = str(Path(folder).relative_to(out))
        keys[rel] = stages._canonical(key)
        manifest = {"key": keys[rel], "outputs": {f: sha256_json([rel, f]) for f in OUTPUTS}, **(kw.get("recorded") or {})}
        Path(folder).mkdir(parents=True, exist_ok=True)
        (Path(folder) / "manifest.json").write_text(json.dumps(manifest))
        return manifest
    monkeypatch.setattr(stages, "run", record)
    monkeypatch.setattr(checks, "flag_teachers", lambda *a: None)     # they read real logits
    monkeypatch.setattr(Run, "write_master_table", lambda self: None)
    Run(load_config(cfg_path), out, log=lambda *a: None).execute("evaluate")
    return keys


def fingerprint(key: dict, tmp: Path) -> str:
    def walk(v):
        if isinstance(v, dict):
            return {a: (sorted(b) if a == stages.ALGORITHM else walk(b)) for a, b in v.items()}
        return [walk(x) for x in v] if isinstance(v, list) else v
    text = json.dumps(walk(key), sort_keys=True).replace(str(tmp), "<tmp>")
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_every_stage_key_is_unchanged(name, tmp_path, monkeypatch):
    shutil.copy(Path(mtkd.__file__).parent / "configs" / "reviews_ood.tsv", tmp_path)
    (tmp_path / "scores").mkdir()
    for split in ("train", "validation", "eval"):
        (tmp_path / "scores" / f"{split}.csv").write_text("text,negative,positive\nhello,0.1,0.9\n")
    cfg = tmp_path / f"{name}.yaml"
    cfg.write_text(CONFIGS[name])
    keys = planned_keys(cfg, tmp_path / "run", monkeypatch)
    got = {folder: fingerprint(key, tmp_path) for folder, key in sorted(keys.items())}
    assert got == PINNED[name]
