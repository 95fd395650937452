"""A task of random words with random labels: nothing generalises, so a teacher right on an example has seen it."""
import numpy as np


def noise_config(d, teachers: str, vocab: int = 2000, rows: int = 400, name: str = "cf"):
    """Writes d/noise.csv and d/cfg.yaml (task `noise`, the given YAML teacher lines); returns the config path."""
    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(vocab)]
    lines = ["text,label"] + [f"{' '.join(rng.choice(words, 8))},{rng.choice(['a', 'b'])}" for _ in range(rows)]
    (d / "noise.csv").write_text("\n".join(lines) + "\n")
    (d / "cfg.yaml").write_text(f"""
name: {name}
seed: 3
tasks: [{{name: noise, source: file, train_file: {d / 'noise.csv'}, eval_file: {d / 'noise.csv'}, text_columns: [text]}}]
teachers:
{teachers}
student: {{model: tiny, layers: 1, epochs: 1, max_length: 16}}
""")
    return d / "cfg.yaml"
