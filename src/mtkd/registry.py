"""The names a config may use for things implemented elsewhere, in one low module that imports nothing:
the config (config/validate.py) checks them at import time without importing torch (fusion, sparsity) or Accelerate
(runtime). Each implementing module takes its names from here, and tests/test_architecture.py checks
that every name is implemented and every implementation named.

A new strategy: its function (or nn.Module) in fusion.STRATEGIES *and* its name in STRATEGIES below; the
config fields it reads in OPTIONS; LEARNABLE when it has parameters of its own.
"""

# fusion strategies, in the order `mtkd list strategies` and the config's error line show them (fusion.py)
STRATEGIES = ("average", "prob_average", "weighted", "best_per_sample", "learned_gating", "learned_gating_joint",
              "calibrated_average", "entropy_weighted", "confidence_aware", "kl_sum", "ae_kd", "agreement",
              "curriculum")
LEARNABLE = {"learned_gating", "learned_gating_joint"}   # strategies with parameters (a gate trained with the student)
# config fields (DistillConfig) a strategy reads, as {field: keyword argument}: keyed only for its students
OPTIONS = {"agreement": {"agreement_shift": "shift"}, "curriculum": {"curriculum_end": "end"}}

PRECISIONS = ("no", "fp16", "bf16")                          # mixed precision (runtime.py)
TRACKERS = ("none", "tensorboard", "mlflow", "wandb")        # experiment trackers (runtime.py)
SCHEDULES = ("cubic", "constant")                            # sparsity schedules (sparsity.py)
SPLITS = ("train", "validation", "eval")                     # what every teacher labels (logits.py; + transfer, extra)
