"""mtkd: multi-teacher knowledge distillation of text classifiers."""
__version__ = "0.1.0"
