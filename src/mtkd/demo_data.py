"""The built-in demo task: a procedurally generated sentiment set, deterministic from a seed.

Sentences are built from templates with negation ("was not good"), contrast ("X, but Y": the
clause after "but" decides), concession ("although X, Y") and intensifiers. A third of the
adjectives never occur in training, only in eval, so a bag-of-words teacher cannot know them
while a pretrained transformer can infer them from their meaning: teachers of different
strength disagree, which is what multi-teacher distillation needs. Training labels carry
`noise` (10% by default) random flips; eval labels are the clean rule-derived ones.
"""
from __future__ import annotations

import random

POSITIVE = """good great excellent wonderful brilliant superb delightful charming moving
enjoyable fantastic lovely terrific splendid marvelous fun gripping touching beautiful clever
witty engaging stunning masterful heartfelt inspiring refreshing thrilling elegant memorable
impressive satisfying vibrant compelling hilarious tender magnificent exquisite captivating""".split()
NEGATIVE = """bad awful terrible horrible boring dull weak poor tedious dreadful lame messy
clumsy bland stale painful annoying pointless shallow forgettable mediocre sloppy tiresome
lifeless dismal awkward incoherent pretentious predictable hollow grating unbearable sluggish
insipid atrocious dreary laughable abysmal muddled""".split()
SUBJECTS = """the movie|the film|the plot|the acting|the script|the ending|the soundtrack|the cast|
the director's work|the dialogue|the pacing|the story|this picture|the performances|the visuals|
the final act|the humor|the premise""".replace("\n", "").split("|")
VERBS = ["was", "is", "felt", "seemed", "turned out to be", "proved"]
INTENS = ["", "", "", "very ", "really ", "truly ", "rather ", "quite ", "incredibly "]
NEGATIONS = ["not", "never", "hardly", "not at all"]
HELDOUT_EVERY = 3   # every third adjective (by position) is held out of training


def _split_vocab(words):
    train = [w for i, w in enumerate(words) if i % HELDOUT_EVERY != 1]
    held = [w for i, w in enumerate(words) if i % HELDOUT_EVERY == 1]
    return train, held


def _clause(rng: random.Random, pos, neg):
    polarity = rng.random() < 0.5
    adj = rng.choice(pos if polarity else neg)
    subj, verb = rng.choice(SUBJECTS), rng.choice(VERBS)
    if rng.random() < 0.3:
        neg_word = rng.choice(NEGATIONS)
        if neg_word == "not at all":
            return f"{subj} {verb} not {adj} at all", not polarity
        return f"{subj} {verb} {neg_word} {adj}", not polarity
    return f"{subj} {verb} {rng.choice(INTENS)}{adj}", polarity


def _sentence(rng: random.Random, pos, neg):
    form = rng.random()
    a, la = _clause(rng, pos, neg)
    if form < 0.45:
        return a, la
    b, lb = _clause(rng, pos, neg)
    if form < 0.7:
        return f"{a}, but {b}", lb
    if form < 0.85:
        return f"although {a}, {b}", lb
    return f"{a} and {b}", lb   # the last clause decides, as after 'but'


def generate(n: int, seed: int, split: str, noise: float = 0.1):
    """Return (texts, labels) for `split` in {train, eval}; labels 0 = negative, 1 = positive."""
    rng = random.Random(f"mtkd-demo-{split}-{seed}")
    pos_train, pos_held = _split_vocab(POSITIVE)
    neg_train, neg_held = _split_vocab(NEGATIVE)
    texts, labels = [], []
    for _ in range(n):
        if split == "train":
            pos, neg = pos_train, neg_train
        else:  # eval: half the sentences use held-out adjectives
            pos, neg = (pos_held, neg_held) if rng.random() < 0.5 else (pos_train, neg_train)
        text, label = _sentence(rng, pos, neg)
        label = int(label)
        if split == "train" and rng.random() < noise:
            label = 1 - label
        texts.append(text)
        labels.append(label)
    return texts, labels
