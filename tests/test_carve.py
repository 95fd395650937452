"""The validation carve shares nothing with train (issue 8.5): content groups (equal texts, substring
containment, a user group column) fall on one side; it is deterministic, label-stratified, and
independent of the run seed. On real SST-2 the validation/train overlap drops from ~35% to < 1%."""
import json
from pathlib import Path

import numpy as np
import pytest

from mtkd.carve import allocate, carve, content_groups, overlap_share, stratified_sample
from mtkd.config import TaskConfig, load_config
from mtkd.tasks import load_task

GLUE = Path(__file__).resolve().parents[2] / "shared" / "data" / "glue"


def phrase_data(n_sentences=120, seed=0):
    """SST-2 style: every sentence with its sub-phrases (contiguous word spans), as separate examples,
    labelled like their sentence; plus phrases shared by many sentences ("the film")."""
    rng = np.random.default_rng(seed)
    words = [f"w{i}" for i in range(400)]
    rows = []
    for s in range(n_sentences):
        toks = ["the", "film"] + list(rng.choice(words, size=6, replace=False)) + [f"s{s}"]
        y = int(rng.integers(2))
        for a in range(len(toks)):
            for b in range(a + 1, len(toks) + 1):
                if (b - a) in (1, 2, len(toks)) or rng.random() < 0.2:
                    rows.append((" ".join(toks[a:b]), y))
    order = rng.permutation(len(rows))
    return [(rows[i][0],) for i in order], np.array([rows[i][1] for i in order])


def test_allocate_and_stratified_sample():
    assert allocate(np.array([50, 30, 20]), 10).tolist() == [5, 3, 2]
    assert allocate(np.array([1, 1, 1]), 2).sum() == 2
    labels = np.array([0] * 90 + [1] * 10)
    idx = stratified_sample(labels, 20, 7)
    assert np.bincount(labels[idx]).tolist() == [18, 2]
    assert (idx == stratified_sample(labels, 20, 7)).all() and not (idx == stratified_sample(labels, 20, 8)).all()


def test_phrases_stay_with_their_sentence_and_shared_phrases_stay_in_train():
    """Guards the containment rule: a random carve leaks (the measure is high), the group carve does not;
    a phrase inside two or more unrelated sentences ("the film") never goes to validation."""
    texts, labels = phrase_data()
    n_val = len(texts) // 10
    rand = np.random.default_rng(0).permutation(len(texts))
    leak = overlap_share([texts[i] for i in rand[:n_val]], [texts[i] for i in rand[n_val:]])
    assert leak > 0.3   # the old random carve
    groups, train_only = content_groups(texts, containment=True)
    kept, out = carve(labels, n_val, groups, train_only, seed=1234)
    assert overlap_share([texts[i] for i in out], [texts[i] for i in kept]) == 0.0
    assert 0.9 * n_val <= len(out) <= n_val and set(kept).isdisjoint(out) and len(kept) + len(out) == len(texts)
    val = {texts[i][0] for i in out}
    assert not {"the", "film", "the film"} & val
    assert {texts[i][0] for i in np.flatnonzero(train_only)} >= {"the", "film", "the film"}
    for i in out:   # every phrase of a validation sentence is on the validation side, unless shared
        for j in kept:
            assert texts[i][0] not in texts[j][0]
    # stratified: validation keeps the label shares (within one group's rounding)
    assert abs(labels[out].mean() - labels.mean()) < 0.05


def test_pairs_sharing_a_question_and_user_groups_fall_on_one_side():
    """QQP style: pairs that share a question (in either column) are one group; so are rows with the same
    user group id."""
    qs = [f"question {i}?" for i in range(300)]
    rng = np.random.default_rng(3)
    texts = [(qs[rng.integers(300)], qs[rng.integers(300)]) for _ in range(400)]
    labels = rng.integers(0, 2, 400)
    groups, train_only = content_groups(texts, containment=False)
    assert not train_only.any()
    kept, out = carve(labels, 40, groups, train_only, seed=5)
    val_q = {q for i in out for q in texts[i]}
    assert val_q.isdisjoint({q for i in kept for q in texts[i]})
    user = [f"doc{i // 4}" for i in range(400)]
    texts2 = [(f"unique {i}",) for i in range(400)]
    g2, t2 = content_groups(texts2, containment=True, user_groups=user)
    kept2, out2 = carve(labels, 40, g2, t2, seed=5)
    assert {user[i] for i in out2}.isdisjoint({user[i] for i in kept2})


def test_carve_is_deterministic_and_independent_of_the_run_seed(tmp_path):
    cfg = "tasks: [{name: demo, demo_size: 600}]\nteachers: [{name: tf, kind: tfidf}]\n"
    (tmp_path / "c.yaml").write_text(cfg)
    a = load_task(load_config(tmp_path / "c.yaml", ["seed=1"]).tasks[0])
    b = load_task(load_config(tmp_path / "c.yaml", ["seed=99"]).tasks[0])
    assert a.fingerprints() == b.fingerprints()
    assert a.info["validation"]["overlap_with_train"] == 0.0


def test_data_stage_records_the_overlap(tmp_path):
    """RUN/<task>/data/manifest.json holds, per carve, the share of its texts found in train."""
    from mtkd.experiments import Run
    cfg = load_config(None, ["tasks=[{name: demo, demo_size: 300}]", "teachers=[{name: tf, kind: tfidf}]"])
    Run(cfg, tmp_path / "run", log=lambda *a: None).execute("teachers")
    carved = json.loads((tmp_path / "run" / "demo" / "data" / "manifest.json").read_text())["carve"]["validation"]
    assert carved["overlap_with_train"] == 0.0 and carved["n"] == 30


@pytest.mark.skipif(not (GLUE / "SST-2").is_dir(), reason="real GLUE data not found at ../shared/data/glue")
def test_real_sst2_validation_shares_under_one_percent_with_train():
    """configs/sst2_cpu.yaml's task (8,000 SST-2 training phrases): the old random carve put ~35% of
    validation texts inside train texts; the group-aware carve must stay below 1%."""
    task = load_config(Path(__file__).resolve().parents[1] / "configs" / "sst2_cpu.yaml",
                       [f"tasks.0.glue_dir={GLUE}"]).tasks[0]
    d = load_task(task)
    share = overlap_share(d.splits["validation"].texts, d.splits["train"].texts)
    assert share == d.info["validation"]["overlap_with_train"] < 0.01
    assert len(d.splits["validation"]) == 800
    random = load_task(TaskConfig(**{**task.__dict__, "group_by": "none"}))
    assert random.info["validation"]["overlap_with_train"] > 0.2   # what a content-blind carve gives
