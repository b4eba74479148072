"""The methods the scripted researcher writes: the confidence-loss baseline with four knobs.

COEF and WARMUP are the auxiliary confidence loss's (servers/w2s/losses.py); K smooths each weak
label over its K nearest neighbours in the student's features (the knn_relabel baseline); KEEP
trains only on the fraction of labels the teacher is surest of (the top_confident baseline).
Every method is real code on the method API, so its scores are real. The knobs are module
constants so that another researcher can read them back from a snapshot and vary one.
"""

from __future__ import annotations

import random
import re
from dataclasses import asdict, dataclass, replace

ENTRY = "method.py:method"
FILE = "method.py"

_TEMPLATE = '''"""{title}

Written by the scripted researcher {agent} (cycle {cycle}). {rationale}
"""

import torch

from servers.w2s.api import MethodInput
from servers.w2s.heads import fit_predict
from servers.w2s.losses import aux_confidence_loss

COEF = {coef!r}
WARMUP = {warmup!r}
KEEP = {keep!r}
K = {k!r}


def method(inp: MethodInput) -> torch.Tensor:
    strong = inp.strong
    features, targets = strong.train_features, inp.weak_soft_labels
    if K > 1:  # average each weak label with its K nearest neighbours in the student's features
        unit = torch.nn.functional.normalize(features, dim=1)
        neighbours = (unit @ unit.T).topk(min(K, len(unit)), dim=1).indices
        targets = targets[neighbours].mean(dim=1)
    if KEEP < 1.0:  # train only on the labels the teacher is surest of
        confidence = (targets[:, 1] - 0.5).abs()
        keep = torch.argsort(confidence, descending=True, stable=True)[: max(1, round(KEEP * len(confidence)))]
        features, targets = features[keep], targets[keep]
    loss = aux_confidence_loss(COEF, WARMUP)
    return fit_predict(features, targets, strong.eval_features, recipe=strong.head_recipe, loss=loss, seed=inp.seed)
'''


@dataclass(frozen=True)
class Knobs:
    coef: float = 0.5
    warmup: float = 0.1
    keep: float = 1.0
    k: int = 1

    def describe(self) -> str:
        return f"COEF={self.coef:g} WARMUP={self.warmup:g} KEEP={self.keep:g} K={self.k}"


FAMILIES: dict[str, Knobs] = {
    "confidence": Knobs(coef=0.6),
    "reweight": Knobs(coef=0.5, keep=0.7),
    "neighbours": Knobs(coef=0.4, k=9),
    "smooth-confident": Knobs(coef=0.5, keep=0.8, k=5),
}

_KEYWORDS = {
    "reweight": "reweight",
    "trust": "reweight",
    "channel": "neighbours",
    "noisy": "neighbours",
    "simplic": "smooth-confident",
    "interpret": "neighbours",
    "evolution": "smooth-confident",
}


def family_for(direction: str, agent: str) -> str:
    """A starting family that fits the direction's words, else one chosen by the agent's name."""
    lowered = direction.lower()
    for word, family in _KEYWORDS.items():
        if word in lowered:
            return family
    return sorted(FAMILIES)[sum(map(ord, agent)) % len(FAMILIES)]


def render(knobs: Knobs, *, agent: str, cycle: int, title: str, rationale: str) -> str:
    return _TEMPLATE.format(title=title, agent=agent, cycle=cycle, rationale=rationale, **asdict(knobs))


def read_knobs(code: str) -> Knobs | None:
    """The knobs of a method written from this template, or None for any other code."""
    found = {}
    for name in ("COEF", "WARMUP", "KEEP", "K"):
        match = re.search(rf"^{name} = (-?[0-9.]+)\s*$", code, re.MULTILINE)
        if match is None:
            return None
        found[name.lower()] = float(match.group(1))
    return Knobs(coef=found["coef"], warmup=found["warmup"], keep=found["keep"], k=max(1, int(found["k"])))


def vary(knobs: Knobs, rng: random.Random) -> tuple[Knobs, str]:
    """Change one knob by one step; returns the new knobs and what changed."""
    knob = rng.choice(["coef", "warmup", "keep", "k"])
    up = rng.random() < 0.5
    if knob == "coef":
        changed = replace(knobs, coef=round(min(0.95, max(0.05, knobs.coef + (0.1 if up else -0.1))), 2))
    elif knob == "warmup":
        changed = replace(knobs, warmup=round(min(0.5, max(0.02, knobs.warmup * (2 if up else 0.5))), 3))
    elif knob == "keep":
        changed = replace(knobs, keep=round(min(1.0, max(0.3, knobs.keep + (0.1 if up else -0.1))), 2))
    else:
        changed = replace(knobs, k=min(61, max(1, knobs.k * 2 + 1 if up else knobs.k // 2)))
    if changed == knobs:
        return vary(knobs, rng)
    return changed, f"{knob.upper()} {getattr(knobs, knob):g} -> {getattr(changed, knob):g}"
