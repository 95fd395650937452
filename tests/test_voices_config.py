"""configs/voices_cpu.yaml: the low-label regime it promises (2,000 labelled per task, transfer sets several
times larger where the files allow, wide eval sets), read from the real GLUE files."""
from pathlib import Path

import pytest

from mtkd.config import load_config
from mtkd.tasks import load_task

ROOT = Path(__file__).resolve().parents[1]
GLUE = ROOT.parent / "shared" / "data" / "glue"


@pytest.mark.slow
@pytest.mark.skipif(not GLUE.is_dir(), reason="../shared/data/glue is absent (real GLUE data)")
def test_voices_config_has_the_promised_sizes():
    cfg = load_config(ROOT / "configs" / "voices_cpu.yaml")
    assert [t.name for t in cfg.teachers][:2] == ["mpnet", "minilm_l6"] and len(cfg.seeds) >= 3
    sizes = {t.name: {k: len(v) for k, v in load_task(t).teacher_splits().items()} for t in cfg.tasks}
    assert all(s["train"] == 2000 for s in sizes.values())
    assert sizes["sst2"]["transfer"] >= 5 * 2000 and sizes["qqp"]["transfer"] >= 5 * 2000
    assert sizes["mnli"]["transfer"] >= 4 * 2000                     # what the MNLI subset leaves
    assert sizes["mnli"]["eval"] == 9815 and sizes["qqp"]["eval"] >= 10_000 and sizes["qqp"]["qqp_dev"] == 5000
