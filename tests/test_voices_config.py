"""configs/voices_cpu_teachers.yaml (fine-tunes the teachers) and configs/voices_cpu.yaml (every student from
their committed logits): the low-label regime they promise (2,000 labelled per task, transfer sets several times
larger where the files allow, wide eval sets), read from the real GLUE files; the two configs' tasks, student and
strategies are the same, and the second reads one logits file per teacher, task and split."""
from pathlib import Path

import pytest

from mtkd.config import load_config
from mtkd.tasks import load_task

ROOT = Path(__file__).resolve().parents[1]
GLUE = ROOT.parent / "shared" / "data" / "glue"


@pytest.mark.slow
@pytest.mark.skipif(not GLUE.is_dir(), reason="../shared/data/glue is absent (real GLUE data)")
def test_voices_config_has_the_promised_sizes():
    cfg = load_config(ROOT / "configs" / "voices_cpu_teachers.yaml")
    assert [t.name for t in cfg.teachers][:2] == ["mpnet", "minilm_l6"] and len(cfg.seeds) >= 3
    students = load_config(ROOT / "configs" / "voices_cpu.yaml")
    assert students.tasks == cfg.tasks and students.student == cfg.student and students.distill == cfg.distill
    assert [t.name for t in students.teachers] == [t.name for t in cfg.teachers] and students.seeds == cfg.seeds
    assert all(t.kind == "logits" and all("{task}" in p for p in t.files.values()) for t in students.teachers)
    sizes = {t.name: {k: len(v) for k, v in load_task(t).teacher_splits().items()} for t in cfg.tasks}
    assert all(s["train"] == 2000 for s in sizes.values())
    assert sizes["sst2"]["transfer"] >= 5 * 2000 and sizes["qqp"]["transfer"] >= 5 * 2000
    assert sizes["mnli"]["transfer"] >= 4 * 2000                     # what the MNLI subset leaves
    assert sizes["mnli"]["eval"] == 9815 and sizes["qqp"]["eval"] >= 10_000 and sizes["qqp"]["qqp_dev"] == 5000


LOGITS = ROOT / "docs" / "results" / "voices_cpu" / "teacher_logits"


@pytest.mark.slow
@pytest.mark.skipif(not GLUE.is_dir(), reason="../shared/data/glue is absent (real GLUE data)")
def test_voices_students_run_from_the_committed_teacher_logits(tmp_path):
    """`mtkd run configs/voices_cpu.yaml` needs no fine-tuning: its teacher and logit stages read the committed
    files, each checked against its split's fingerprint (a changed carve or file fails), for every teacher,
    task and split — here `mtkd extract-logits` (those stages only) on all four tasks."""
    from mtkd.cli import main
    assert LOGITS.is_dir(), "the voices study's teacher logits are not committed"
    run = tmp_path / "run"
    assert main(["extract-logits", str(ROOT / "configs" / "voices_cpu.yaml"), "--out", str(run)]) == 0
    import numpy as np
    for task in ("sst2", "mnli", "qqp", "mrpc"):
        for t in ("mpnet", "minilm_l6", "minilm_l3", "tfidf", "cnn"):
            np.testing.assert_array_equal(np.load(run / task / "logits" / t / "eval.npy"),
                                          np.load(LOGITS / t / task / "eval.npy"))
    assert not list(run.glob("*/teachers/*/model/*.safetensors"))   # nothing fine-tuned
