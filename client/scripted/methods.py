"""The methods the scripted researcher writes: a library method, then that method refined with knobs.

Every method starts from one of the library's methods (``BASE``, from ``servers/w2s/methods``;
each direction starts from a different one), whose own score is in the research brief already,
and refines it: ``MIX`` mixes the hardened answers of ``BASE`` on the train texts into the
teacher's labels; ``K`` smooths each label over its K nearest neighbours in the student's features
(``knn_relabel``); ``KEEP`` trains only on the labels the teacher is surest of (``top_confident``);
``SIMPLE`` first passes the labels through students that see only the top SIMPLE, 2 x SIMPLE and
4 x SIMPLE principal components of the features (bootstrapping's simplicity step, Burns et al.
2023) and averages their relabels, each student trained to convergence (``SIMPLE_EPOCHS`` times
the task's head epochs: with the short WordNet recipe an 8-component student is otherwise still
underfit). One 8-component student scored best on the public tasks (mean test PGR 0.67, bootstrap
0.61) but locked onto a wrong direction on one secret negation draw (-0.22 +/- 0.27), so over six
tasks it scored 0.53 and 0.57 on two draws against bootstrap's 0.59 and 0.52; the three students'
mean scored 0.61 and 0.55 (public 0.64). ``COEF`` and
``WARMUP`` are the auxiliary confidence loss's (Burns et al. 2023); ``GATE`` drops that loss where
a student predicts the teacher's labels on texts it did not learn from more often than GATE (the
teacher's errors are then systematic: the loss would confirm them; 1 keeps the loss always);
``EPOCHS`` multiplies the task's head epochs.
Every method is real code on the method API, so its scores are real. The knobs are module
constants so that another researcher can read them back from a snapshot (or from the title of a
post) and vary or combine them.
"""

from __future__ import annotations

import random
import re
from dataclasses import asdict, dataclass, fields, replace

ENTRY = "method.py:method"
FILE = "method.py"

_TEMPLATE = '''"""{title}

Written by the scripted researcher {agent} (cycle {cycle}). {rationale}
"""

import dataclasses

import torch

from servers.w2s.api import MethodInput
from servers.w2s.heads import fit_predict
from servers.w2s.losses import aux_confidence_loss, soft_cross_entropy
from servers.w2s.methods import BASELINES

BASE = {base!r}
MIX = {mix!r}
COEF = {coef!r}
WARMUP = {warmup!r}
KEEP = {keep!r}
K = {k!r}
EPOCHS = {epochs!r}
SIMPLE = {simple!r}
GATE = {gate!r}
SIMPLE_EPOCHS = 4  # the small students train to convergence: they have too few dimensions to fit the noise
SIMPLE_STUDENTS = 3  # of SIMPLE, 2 x SIMPLE, 4 x SIMPLE components: one alone can lock onto a wrong direction


def teacher_agreement(inp: MethodInput) -> float:
    """How often a student predicts the teacher's label of a train text it did not learn from (two halves,
    each predicting the other): near 1 the teacher's errors are systematic, so the student's confident
    answers repeat them and the confidence loss has nothing to correct."""
    features, teacher = inp.strong.train_features, inp.weak_soft_labels
    order = torch.randperm(len(features), generator=torch.Generator().manual_seed(inp.seed))
    halves = (order[: len(order) // 2], order[len(order) // 2 :])
    agreed = 0.0
    for learn, predict in (halves, halves[::-1]):
        guess = fit_predict(
            features[learn], teacher[learn], features[predict], recipe=inp.strong.head_recipe, seed=inp.seed
        )
        agreed += float((guess.argmax(dim=1) == teacher[predict].argmax(dim=1)).float().sum())
    return agreed / len(order)


def method(inp: MethodInput) -> torch.Tensor:
    if MIX >= 1.0:  # the library method as it is
        return BASELINES[BASE](inp)
    strong = inp.strong
    features, targets = strong.train_features, inp.weak_soft_labels
    if MIX > 0:  # the library method's hardened answers on the train texts join the teacher's labels
        on_train = dataclasses.replace(
            inp, eval_texts=inp.train_texts, strong=dataclasses.replace(strong, eval_features=features)
        )
        answers = torch.as_tensor(BASELINES[BASE](on_train)).float()
        hard = torch.nn.functional.one_hot(answers.argmax(dim=1) if answers.dim() == 2 else answers.long(), 2)
        targets = (1 - MIX) * targets + MIX * hard.float()
    if K > 1:  # average each label with its K nearest neighbours in the student's features
        unit = torch.nn.functional.normalize(features, dim=1)
        neighbours = (unit @ unit.T).topk(min(K, len(unit)), dim=1).indices
        targets = targets[neighbours].mean(dim=1)
    if SIMPLE > 0:  # students of the top principal components relabel train (their mean): they cannot fit the noise
        centred = features - features.mean(dim=0)
        _, _, components = torch.linalg.svd(centred, full_matrices=False)
        converged = dataclasses.replace(strong.head_recipe, epochs=strong.head_recipe.epochs * SIMPLE_EPOCHS)
        sizes = sorted({{min(SIMPLE * 2**i, len(components)) for i in range(SIMPLE_STUDENTS)}})
        simple = [centred @ components[:size].T for size in sizes]
        relabels = [fit_predict(view, targets, view, recipe=converged, seed=inp.seed) for view in simple]
        targets = torch.stack(relabels).mean(dim=0)
    if KEEP < 1.0:  # train only on the labels the teacher is surest of
        confidence = (targets[:, 1] - 0.5).abs()
        keep = torch.argsort(confidence, descending=True, stable=True)[: max(1, round(KEEP * len(confidence)))]
        features, targets = features[keep], targets[keep]
    recipe = dataclasses.replace(strong.head_recipe, epochs=strong.head_recipe.epochs * EPOCHS)
    confident = COEF > 0 and (GATE >= 1.0 or teacher_agreement(inp) <= GATE)  # GATE 1: always
    loss = aux_confidence_loss(COEF, WARMUP) if confident else soft_cross_entropy
    return fit_predict(features, targets, strong.eval_features, recipe=recipe, loss=loss, seed=inp.seed)
'''


GATE = 0.82
"""The teacher agreement (`teacher_agreement` in the template) above which a method drops the confidence
loss: measured at 0.68-0.79 on the WordNet category tasks, public and secret (five draws), where the
loss recovers most of the gap (aux_confidence 0.70-0.86 against plain_ce 0.06-0.54 on the public
ones), and at 0.84-0.96 on the negation tasks, whose teacher errs systematically, where the loss
confirms the teacher's errors (two secret negation draws: aux_confidence 0.02 and -1.24, bootstrap
-0.95 and -3.02, plain_ce 0.64 and -0.52). The simplicity students with this gate scored 0.71 and 0.42
over six tasks on those two draws, against the library's best 0.62 and 0.31."""


@dataclass(frozen=True)
class Knobs:
    base: str = "aux_confidence"
    mix: float = 1.0
    coef: float = 0.5
    warmup: float = 0.1
    keep: float = 1.0
    k: int = 1
    epochs: int = 1
    simple: int = 0
    gate: float = GATE

    @property
    def pure(self) -> bool:
        """The library method as it is (the other knobs do nothing)."""
        return self.mix >= 1.0

    def describe(self) -> str:
        if self.pure:
            return f"BASE={self.base}"
        return (
            f"BASE={self.base} MIX={self.mix:g} COEF={self.coef:g} WARMUP={self.warmup:g} KEEP={self.keep:g}"
            f" K={self.k} EPOCHS={self.epochs} SIMPLE={self.simple} GATE={self.gate:g}"
        )


STARTS: dict[str, str] = {
    "elicit": "aux_confidence",
    "reweight": "top_confident",
    "combin": "confident_relabel",
    "channel": "noisy_channel",
    "distill": "plain_ce",
    "simplic": "bootstrap",
    "evol": "weak_views",
    "interpret": "knn_relabel",
    "open": "self_training",
}
"""A word of the direction -> the library method it starts from (nine directions, nine methods)."""

LIBRARY = tuple(dict.fromkeys(STARTS.values()))


def start_for(direction: str, agent: str) -> str:
    """The library method an agent starts from: named by its name, else by its direction's words, else drawn by name."""
    for text in (agent.lower(), direction.lower()):
        for word, base in STARTS.items():
            if word in text:
                return base
    return LIBRARY[sum(map(ord, agent)) % len(LIBRARY)]


def render(knobs: Knobs, *, agent: str, cycle: int, title: str, rationale: str) -> str:
    return _TEMPLATE.format(title=title, agent=agent, cycle=cycle, rationale=rationale, **asdict(knobs))


_NUMBER = r"(-?[0-9.]+)"


def read_knobs(code: str) -> Knobs | None:
    """The knobs of a method written from this template, or None for any other code."""
    found: dict[str, object] = {}
    for knob in fields(Knobs):
        pattern = r"'([a-z_]+)'" if knob.name == "base" else _NUMBER
        match = re.search(rf"^{knob.name.upper()} = {pattern}\s*$", code, re.MULTILINE)
        if match is None:
            return None
        found[knob.name] = match.group(1)
    return _knobs(found)


def read_described(title: str) -> Knobs | None:
    """The knobs a post's title describes (``Knobs.describe``), or None."""
    found = dict(re.findall(r"\b([A-Z]+)=([a-z_]+|-?[0-9.]+)", title))
    if "BASE" not in found:
        return None
    if len(found) == 1:
        return Knobs(base=found["BASE"])
    if any(knob.name.upper() not in found for knob in fields(Knobs)):
        return None
    return _knobs({name.lower(): value for name, value in found.items()})


def _knobs(raw: dict[str, object]) -> Knobs | None:
    if raw["base"] not in LIBRARY:
        return None
    try:
        return Knobs(
            base=str(raw["base"]),
            mix=float(str(raw["mix"])),
            coef=float(str(raw["coef"])),
            warmup=float(str(raw["warmup"])),
            keep=float(str(raw["keep"])),
            k=max(1, int(float(str(raw["k"])))),
            epochs=max(1, int(float(str(raw["epochs"])))),
            simple=max(0, int(float(str(raw["simple"])))),
            gate=min(1.0, float(str(raw["gate"]))),
        )
    except (KeyError, ValueError):
        return None


SIMPLE_STEPS = (0, 8, 16, 32)
"""The principal-component counts SIMPLE moves between (0: no simplicity step)."""


OWN_FORM: dict[str, tuple[Knobs, str]] = {
    "bootstrap": (
        Knobs(base="bootstrap", mix=0.0, simple=SIMPLE_STEPS[1]),
        (
            "bootstrapping's idea at its simplest: one converged student on the top 8 principal components"
            " (the library's chain starts at 16) relabels train for the final student"
        ),
    ),
    "aux_confidence": (
        Knobs(base="aux_confidence", mix=0.0, coef=0.75),
        "the confidence loss at the weight Burns et al. use where the gap is widest (0.75, not 0.5)",
    ),
    "top_confident": (
        Knobs(base="top_confident", mix=0.0, keep=0.5),
        "the teacher's surest half (the library's KEEP), learnt with the confidence loss",
    ),
    "knn_relabel": (
        Knobs(base="knn_relabel", mix=0.0, k=15),
        "labels smoothed over 15 neighbours (the library's K), learnt with the confidence loss",
    ),
}
"""A library method whose idea the template's knobs can state -> the first refinement of that idea and
what it is (the others are refined by mixing their answers with the teacher's labels). Nine directions
that all began with that mix would give nine near-copies of one method."""

KNOBS = ("mix", "coef", "warmup", "keep", "k", "epochs", "simple", "gate")


def vary(knobs: Knobs, rng: random.Random, *, again: tuple[str, bool] | None = None) -> tuple[Knobs, str]:
    """Change one knob by one step; returns the new knobs and what changed. A pure method is refined first:
    into its own form where the template has one, else by mixing its answers with the teacher's labels.
    `again` (a knob and whether it went up) repeats a step that paid off, as long as it changes anything."""
    if knobs.pure:
        if knobs.base in OWN_FORM:
            return OWN_FORM[knobs.base]
        return replace(knobs, mix=0.5), f"MIX 1 -> 0.5 (refine {knobs.base} with the teacher's labels)"
    if again is not None:
        repeated = _step(knobs, *again)
        if repeated != knobs:
            knob = again[0]
            return (
                repeated,
                f"{knob.upper()} {getattr(knobs, knob):g} -> {getattr(repeated, knob):g} (again: it paid off)",
            )
    knob = rng.choice(KNOBS)
    changed = _step(knobs, knob, rng.random() < 0.5)
    if changed == knobs:
        return vary(knobs, rng)
    return changed, f"{knob.upper()} {getattr(knobs, knob):g} -> {getattr(changed, knob):g}"


VARY_ATTEMPTS = 8
"""How many steps `vary_untried` draws before it settles for a method the team has tried."""


def vary_untried(
    knobs: Knobs, rng: random.Random, tried: set[Knobs], *, again: tuple[str, bool] | None = None
) -> tuple[Knobs, str]:
    """`vary`, drawing another step while it lands on a method in `tried` (one the team has posted
    already: nine researchers building on the same best result otherwise repeat each other's steps)."""
    varied, change = vary(knobs, rng, again=again)
    for _ in range(VARY_ATTEMPTS):
        if varied not in tried:
            break
        varied, change = vary(knobs, rng)
    return varied, change


def step_taken(before: Knobs, after: Knobs) -> tuple[str, bool] | None:
    """The one knob that changed between two knob sets and whether it went up; None if not exactly one."""
    if before.base != after.base:
        return None
    changed = [knob for knob in KNOBS if getattr(before, knob) != getattr(after, knob)]
    if len(changed) != 1:
        return None
    return changed[0], getattr(after, changed[0]) > getattr(before, changed[0])


def _step(knobs: Knobs, knob: str, up: bool) -> Knobs:
    """`knobs` with `knob` moved one step up or down, within its range."""
    if knob == "mix":
        changed = replace(knobs, mix=round(min(0.9, max(0.0, knobs.mix + (0.2 if up else -0.2))), 2))
    elif knob == "coef":
        changed = replace(knobs, coef=round(min(0.95, max(0.0, knobs.coef + (0.2 if up else -0.2))), 2))
    elif knob == "warmup":
        changed = replace(knobs, warmup=round(min(0.5, max(0.02, knobs.warmup * (2 if up else 0.5))), 3))
    elif knob == "keep":
        changed = replace(knobs, keep=round(min(1.0, max(0.3, knobs.keep + (0.1 if up else -0.1))), 2))
    elif knob == "k":
        changed = replace(knobs, k=min(61, max(1, knobs.k * 2 + 1 if up else knobs.k // 2)))
    elif knob == "epochs":
        changed = replace(knobs, epochs=min(8, max(1, knobs.epochs * 2 if up else knobs.epochs // 2)))
    elif knob == "gate":
        changed = replace(knobs, gate=round(min(1.0, max(0.72, knobs.gate + (0.05 if up else -0.05))), 2))
    else:
        at = SIMPLE_STEPS.index(knobs.simple) if knobs.simple in SIMPLE_STEPS else 0
        changed = replace(knobs, simple=SIMPLE_STEPS[min(len(SIMPLE_STEPS) - 1, max(0, at + (1 if up else -1)))])
    return changed


def combine(best: Knobs, other: Knobs) -> tuple[Knobs, str] | None:
    """The best method's knobs with the other method's library base, its answers mixed into the labels
    (None if that changes nothing). BASE only acts through MIX: at MIX 0 or 1 a new base alone is the
    same method, so the mix becomes half and half."""
    if other.base == best.base:
        return None
    start = replace(best, mix=0.5) if best.pure or best.mix == 0 else best
    mixed = f", MIX {best.mix:g} -> 0.5" if start.mix != best.mix else ""
    return replace(start, base=other.base), f"BASE {best.base} -> {other.base}{mixed} (combining two results)"
