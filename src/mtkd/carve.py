"""Splitting without leakage: seeded label-stratified samples, and carves (validation from train, or
eval from a single file) in which examples that share content fall on the same side.

Content groups (`content_groups`), joined with union-find (`scipy.sparse.csgraph.connected_components`):
- **equal texts**: two examples sharing any text field (QQP pairs sharing a question, MNLI hypotheses of
  one premise, duplicates) are one group;
- **containment** (tasks with one text column, e.g. SST-2, whose train file holds every phrase of a
  parse tree): a text that is a substring of a longer text belongs with it. The *roots* are the texts no
  other text contains; a text contained in exactly one root joins that root's group; a text contained in
  two or more roots (a short phrase like "the film" shared by unrelated sentences) is marked
  train-only: it never goes to a carved-out side, which keeps that side free of train content;
- **`group_column`**: the user's own group ids.
Substring search is Aho-Corasick (`pyahocorasick`) over the distinct texts.
"""
from __future__ import annotations

import ahocorasick
import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

# bumped when what this module computes changes meaning; student/teacher stage keys record it (stages.algorithm)
VERSION = 1


def allocate(counts: np.ndarray, n: int) -> np.ndarray:
    """Split `n` over classes in proportion to `counts` (largest remainder); never more than a class has."""
    counts = np.asarray(counts, dtype=np.int64)
    if counts.sum() == 0:
        return np.zeros_like(counts)
    exact = n * counts / counts.sum()
    quota = np.minimum(np.floor(exact).astype(np.int64), counts)
    for k in np.argsort(-(exact - quota), kind="stable"):
        if quota.sum() >= n:
            break
        if quota[k] < counts[k]:
            quota[k] += 1
    return quota


def bootstrap(n: int, seed: int) -> np.ndarray:
    """int [n]: a bootstrap resample of range(n) (n draws with replacement), seeded: the rows a bagged teacher
    (`bag: seed`) is fitted on, duplicates included."""
    return np.sort(np.random.default_rng([seed, n]).integers(0, n, size=n))


def stratified_sample(labels: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Sorted indices of `n` examples drawn at random (seeded), each label keeping its share."""
    labels = np.asarray(labels)
    if n >= len(labels):
        return np.arange(len(labels))
    rng = np.random.default_rng(seed)
    counts = np.bincount(labels)
    quota = allocate(counts, n)
    picked = [rng.choice(np.flatnonzero(labels == k), size=q, replace=False) for k, q in enumerate(quota) if q]
    return np.sort(np.concatenate(picked))


def content_groups(texts: list[tuple[str, ...]], containment: bool, user_groups: list | None = None
                   ) -> tuple[np.ndarray, np.ndarray]:
    """(group id [N], train_only bool [N]) for the examples `texts` (see the module docstring)."""
    n = len(texts)
    rows, cols = [], []
    first: dict = {}
    for i, fields in enumerate(texts):
        for v in fields:
            if v:   # an empty field links nothing
                j = first.setdefault(v, i)
                if j != i:
                    rows.append(i)
                    cols.append(j)
    if user_groups is not None:
        seen: dict = {}
        for i, g in enumerate(user_groups):
            j = seen.setdefault(g, i)
            if j != i:
                rows.append(i)
                cols.append(j)
    train_only = np.zeros(n, dtype=bool)
    if containment:
        uniq = [t for t in first]               # distinct non-empty texts, in first-seen order
        owner = np.fromiter((first[t] for t in uniq), dtype=np.int64, count=len(uniq))
        root_of, n_roots = _roots(uniq)
        for k, (r, c) in enumerate(zip(root_of, n_roots)):
            if c >= 2:
                train_only[owner[k]] = True
            elif r != k:
                rows.append(int(owner[k]))
                cols.append(int(owner[r]))
        # duplicates of a train-only text are train-only too (they are equal, so joined above)
    graph = coo_matrix((np.ones(len(rows), dtype=np.int8), (rows, cols)), shape=(n, n))
    _, groups = connected_components(graph, directed=False)
    if train_only.any():
        train_only = np.isin(groups, groups[train_only])
    return groups.astype(np.int64), train_only


def _roots(uniq: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """For each distinct text: the index of a root containing it (itself for a root) and how many roots
    contain it. A root is a text that no other text contains."""
    auto = ahocorasick.Automaton()
    for k, t in enumerate(uniq):
        auto.add_word(t, k)
    auto.make_automaton()
    contains: list[set] = []
    contained = np.zeros(len(uniq), dtype=bool)
    for k, t in enumerate(uniq):
        inside = {v for _, v in auto.iter(t) if v != k}
        contains.append(inside)
        if inside:
            contained[list(inside)] = True
    root_of = np.arange(len(uniq))
    n_roots = np.where(contained, 0, 1)
    for k in np.flatnonzero(~contained):
        for v in contains[k]:
            root_of[v] = k
            n_roots[v] += 1
    return root_of, n_roots


def carve(labels: np.ndarray, n_out: int, groups: np.ndarray, train_only: np.ndarray, seed: int
          ) -> tuple[np.ndarray, np.ndarray]:
    """(kept, carved): sorted indices. About `n_out` examples are carved out, whole groups only, never a
    train-only one, each label keeping its share; groups are taken in a seeded random order while they
    fit every label's quota."""
    labels = np.asarray(labels)
    n_classes = int(labels.max()) + 1 if len(labels) else 0
    quota = allocate(np.bincount(labels, minlength=n_classes), n_out)
    uniq, gidx = np.unique(groups, return_inverse=True)
    per_group = np.zeros((len(uniq), n_classes), dtype=np.int64)
    np.add.at(per_group, (gidx, labels), 1)
    blocked = np.zeros(len(uniq), dtype=bool)
    blocked[gidx[train_only]] = True
    taken = np.zeros(n_classes, dtype=np.int64)
    chosen = np.zeros(len(uniq), dtype=bool)
    for g in np.random.default_rng(seed).permutation(len(uniq)):
        if blocked[g]:
            continue
        if np.all(taken + per_group[g] <= quota):
            taken += per_group[g]
            chosen[g] = True
            if taken.sum() >= n_out:
                break
    out = chosen[gidx]
    return np.flatnonzero(~out), np.flatnonzero(out)


def _automaton(words) -> ahocorasick.Automaton | None:
    """An Aho-Corasick automaton finding any of the non-empty `words` inside a text; None when there are none."""
    auto = ahocorasick.Automaton()
    for v in words:
        if v:
            auto.add_word(v, v)
    if len(auto) == 0:
        return None
    auto.make_automaton()
    return auto


def overlap_share(carved: list[tuple[str, ...]], kept: list[tuple[str, ...]]) -> float:
    """Share of `carved` examples having a text field that equals or is a substring of a text field of
    a `kept` example (the leakage measure recorded by the data stage)."""
    if not carved:
        return 0.0
    auto = _automaton(v for fields in carved for v in fields)
    if auto is None:
        return 0.0
    found = set()
    for t in {v for fields in kept for v in fields if v}:
        found.update(v for _, v in auto.iter(t))
    return sum(any(v in found for v in fields if v) for fields in carved) / len(carved)


def held_out_content(texts: list[tuple[str, ...]], held_out: list[tuple[str, ...]], train: list[tuple[str, ...]],
                     containment: bool = True) -> np.ndarray:
    """bool [len(texts)]: the examples that would carry held-out (validation/eval) content into training,
    dropped from a transfer set. An example is marked when one of its text fields
    - equals a held-out text field, or, with `containment`,
    - contains one (so overlap_share(held_out, transfer) = 0, the carve's leakage measure), or
    - is contained in one while no `train` text contains it: content only held-out examples carry (a
      phrase of one validation sentence). A phrase shared with train is train content already, as in the
      carve, where a text inside two or more roots is train-only."""
    words = {v for fields in held_out for v in fields if v}
    if not containment:
        return np.fromiter((any(v in words for v in fields) for fields in texts), dtype=bool, count=len(texts))
    held = _automaton(words)
    if held is None:
        return np.zeros(len(texts), dtype=bool)

    def found_in(patterns, corpus) -> set:   # the patterns that occur inside a text of corpus
        auto = _automaton(patterns)
        return set() if auto is None else {v for t in {v for f in corpus for v in f if v} for _, v in auto.iter(t)}
    inside_held = found_in({v for fields in texts for v in fields}, held_out)
    held_only = inside_held - found_in(inside_held, train)
    return np.fromiter((any(v in held_only or next(held.iter(v), None) is not None for v in fields if v)
                        for fields in texts), dtype=bool, count=len(texts))
