"""The Generator agent: a policy over the attack space, trained with REINFORCE.

The policy is factored and two-stage. Stage 1 picks the family (poisoned
demonstrations or injection) and its top choice (the domain, or the carrier).
Stage 2 is a small MLP on the one-hot context of stage 1 that outputs one
categorical distribution per remaining factor (trigger kind, position, step
family, obfuscation, ...), so what works for SQL demonstrations can differ from
what works for dosage tables. Everything the policy does not choose (which clean
items, which numbers) comes from the construction's seed.

Reward for one sample: 1 when the rendered attack is valid and the current
detector lets it through, plus a novelty bonus `novelty / sqrt(1 + n)` where `n`
counts earlier evasions with the same signature (same trick); a small penalty
for an invalid construction; when detected, `near_miss * (1 - suspicion)` if the
detector reports how sure it was (0 otherwise), so attacks close to the boundary
pull the policy towards it. The update is REINFORCE with a
moving-average baseline and an entropy bonus on every factor, so the policy does
not collapse onto one trick.

Torch is imported lazily (inside the functions that need it); the network is tiny
and runs on CPU with one thread.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from .attack_space import FACTORS, FAMILIES, TOP_FACTOR, Attack, AttackSpace, Construction, ConstructionError, UserPrompt
from .domains import DOMAINS
from .validator import validate

__all__ = ["GeneratorConfig", "Sample", "Generator", "space_digest", "GeneratorError"]

GENERATOR_FORMAT = "promptguard-generator"
GENERATOR_VERSION = 1

# the contexts stage 2 conditions on: family + a built-in domain or a carrier
_CONTEXTS = [("demo", d) for d in DOMAINS] + [("inject", c) for c in FACTORS["inject"]["carrier"]]


class GeneratorError(ValueError):
    """A generator file is missing, malformed or made for another attack space."""


def space_digest() -> str:
    """Identifies the factor spec a policy was trained for."""
    spec = {f: {k: [str(v) for v in vals] for k, vals in fs.items()} for f, fs in FACTORS.items()}
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


@dataclass
class GeneratorConfig:
    hidden: int = 64
    lr: float = 0.05
    entropy_coef: float = 0.02
    novelty_coef: float = 0.3
    invalid_penalty: float = 0.1
    # a detected attack earns near_miss * (1 - suspicion) when the detector says how sure it was,
    # a dense signal that leads towards the detector's boundary instead of only rewarding rare hits
    near_miss: float = 0.4
    baseline_decay: float = 0.8


@dataclass
class Sample:
    construction: Construction
    attack: Attack | None
    valid: bool
    flagged: bool | None
    reward: float
    why: str = ""  # first validator reason or construction error

    @property
    def evaded(self) -> bool:
        return self.valid and self.flagged is False


@dataclass
class StepStats:
    step: int
    mean_reward: float
    evasion_rate: float
    valid_rate: float
    entropy: float
    seconds: float


@dataclass
class History:
    steps: list[StepStats] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)

    def mean_reward(self, first: int | None = None, last: int | None = None) -> float:
        xs = self.steps[:first] if first else self.steps[-last:] if last else self.steps
        return sum(s.mean_reward for s in xs) / max(1, len(xs))


def _torch():
    import torch

    return torch


def _build_net(hidden: int):
    torch = _torch()
    nn = torch.nn

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.family = nn.Parameter(torch.zeros(len(FAMILIES)))
            self.top = nn.ParameterDict({f: nn.Parameter(torch.zeros(len(FACTORS[f][TOP_FACTOR[f]]))) for f in FAMILIES})
            self.body = nn.Sequential(nn.Linear(len(_CONTEXTS), hidden), nn.Tanh())
            self.heads = nn.ModuleDict({
                f"{f}__{k}": nn.Linear(hidden, len(vals))
                for f in FAMILIES for k, vals in FACTORS[f].items() if k != TOP_FACTOR[f]
            })
            for h in self.heads.values():  # start uniform
                nn.init.zeros_(h.weight)
                nn.init.zeros_(h.bias)

    return Net()


class Generator:
    """The policy and its REINFORCE trainer."""

    def __init__(self, config: GeneratorConfig | None = None, seed: int = 0) -> None:
        torch = _torch()
        self.config = config or GeneratorConfig()
        self.seed = seed
        torch.manual_seed(seed)
        self.net = _build_net(self.config.hidden)
        self.opt = torch.optim.Adam(self.net.parameters(), lr=self.config.lr)
        self.gen = torch.Generator().manual_seed(seed)
        self.rng = random.Random(seed)
        self.baseline = 0.0
        self.novelty: Counter[tuple[Any, ...]] = Counter()
        self.meta: dict[str, Any] = {}

    # -- sampling ------------------------------------------------------------------------
    def _masked(self, logits, allowed: Sequence[bool]):
        torch = _torch()
        mask = torch.tensor([0.0 if a else -1e9 for a in allowed])
        return torch.distributions.Categorical(logits=logits + mask)

    def sample(
        self,
        space: AttackSpace,
        n: int,
        *,
        force: dict[str, Any] | None = None,
        base: UserPrompt | None = None,
        greedy: bool = False,
    ) -> tuple[list[Construction], Any, Any]:
        """`n` constructions, their summed log-probabilities and entropies (tensors).

        `force` fixes factors (e.g. ``{"family": "demo", "domain": "user"}``); forced
        choices contribute no log-probability. `base` is the user prompt the
        constructions will be built on (sets the context of a `user` domain).
        """
        torch = _torch()
        force = dict(force or {})
        out: list[Construction] = []
        logps, ents = [], []
        ctx_index = {c: i for i, c in enumerate(_CONTEXTS)}
        for _ in range(n):
            lp = torch.zeros(())
            ent = torch.zeros(())
            if "family" in force:
                fam = force["family"]
            else:
                d = torch.distributions.Categorical(logits=self.net.family)
                i = int(torch.argmax(d.probs)) if greedy else int(torch.multinomial(d.probs, 1, generator=self.gen))
                fam = FAMILIES[i]
                lp = lp + d.log_prob(torch.tensor(i))
                ent = ent + d.entropy()
            top_name = TOP_FACTOR[fam]
            top_vals = FACTORS[fam][top_name]
            if top_name in force:
                top = force[top_name]
            else:
                d = self._masked(self.net.top[fam], space.allowed(fam, top_name))
                i = int(torch.argmax(d.probs)) if greedy else int(torch.multinomial(d.probs, 1, generator=self.gen))
                top = top_vals[i]
                lp = lp + d.log_prob(torch.tensor(i))
                ent = ent + d.entropy()
            seed = self.rng.randrange(2**31)
            probe = Construction.make(fam, seed, **{top_name: top})
            ctx = space.context_key(probe, base)
            x = torch.zeros(len(_CONTEXTS))
            x[ctx_index.get((fam, ctx), 0)] = 1.0
            h = self.net.body(x)
            choices: dict[str, Any] = {top_name: top}
            for k, vals in FACTORS[fam].items():
                if k == top_name:
                    continue
                if k in force:
                    choices[k] = force[k]
                    continue
                d = self._masked(self.net.heads[f"{fam}__{k}"](h), space.allowed(fam, k))
                i = int(torch.argmax(d.probs)) if greedy else int(torch.multinomial(d.probs, 1, generator=self.gen))
                choices[k] = vals[i]
                lp = lp + d.log_prob(torch.tensor(i))
                ent = ent + d.entropy()
            out.append(Construction.make(fam, seed, **choices))
            logps.append(lp)
            ents.append(ent)
        return out, torch.stack(logps), torch.stack(ents)

    # -- evaluating ------------------------------------------------------------------------
    def evaluate(
        self,
        constructions: Sequence[Construction],
        space: AttackSpace,
        flagged: Callable[[Attack], Any],
        *,
        base: UserPrompt | None = None,
    ) -> list[Sample]:
        cfg = self.config
        out: list[Sample | None] = []
        todo: list[tuple[int, Attack]] = []
        for c in constructions:
            try:
                a = space.build(c, base=base)
            except ConstructionError as e:
                out.append(Sample(c, None, False, None, -cfg.invalid_penalty, str(e)))
                continue
            v = validate(a)
            if not v.ok:
                out.append(Sample(c, a, False, None, -cfg.invalid_penalty, v.reasons[0]))
                continue
            todo.append((len(out), a))
            out.append(None)
        # a judge with `many` scores the whole batch at once (one batched model pass)
        many = getattr(flagged, "many", None)
        results = many([a for _, a in todo]) if many is not None else [flagged(a) for _, a in todo]
        for (i, a), out_f in zip(todo, results):
            c = a.construction
            if isinstance(out_f, tuple):
                f, suspicion = bool(out_f[0]), float(out_f[1])
            else:
                f, suspicion = bool(out_f), 1.0
            r = cfg.near_miss * max(0.0, 1.0 - suspicion) if f else 0.0
            if not f:
                r = 1.0 + cfg.novelty_coef / math.sqrt(1.0 + self.novelty[c.signature()])
            out[i] = Sample(c, a, True, f, r)
        return [s for s in out if s is not None]

    # -- training --------------------------------------------------------------------------
    def train(
        self,
        space: AttackSpace,
        flagged: Callable[[Attack], Any],
        *,
        steps: int = 40,
        batch: int = 48,
        log: Callable[[StepStats], None] | None = None,
        keep_samples: bool = True,
    ) -> History:
        """REINFORCE against a fixed detector: `flagged(attack)` returns a bool, or
        (flagged, suspicion in 0..1) to shape the reward of detected attacks; a
        `flagged.many(attacks)` method, when present, judges a batch at once."""
        torch = _torch()
        cfg = self.config
        hist = History()
        for step in range(steps):
            t0 = time.perf_counter()
            cons, logp, ent = self.sample(space, batch)
            samples = self.evaluate(cons, space, flagged)
            rewards = torch.tensor([s.reward for s in samples])
            mean_r = float(rewards.mean())
            adv = rewards - self.baseline
            std = float(adv.std()) if len(samples) > 1 else 1.0
            adv = adv / (std + 1e-6) if std > 1e-6 else adv
            loss = -(adv.detach() * logp).mean() - cfg.entropy_coef * ent.mean()
            self.opt.zero_grad()
            loss.backward()
            self.opt.step()
            self.baseline = cfg.baseline_decay * self.baseline + (1 - cfg.baseline_decay) * mean_r
            for s in samples:
                if s.evaded:
                    self.novelty[s.construction.signature()] += 1
            st = StepStats(step, mean_r, sum(s.evaded for s in samples) / len(samples),
                           sum(s.valid for s in samples) / len(samples), float(ent.detach().mean()),
                           time.perf_counter() - t0)
            hist.steps.append(st)
            if keep_samples:
                hist.samples.extend(samples)
            if log is not None:
                log(st)
        return hist

    def evasion_rate(self, space: AttackSpace, flagged: Callable[[Attack], Any], n: int = 256) -> tuple[float, list[Sample]]:
        """Evasion rate of the current policy (sampled, no update)."""
        torch = _torch()
        with torch.no_grad():
            cons, _, _ = self.sample(space, n)
        samples = self.evaluate(cons, space, flagged)
        return sum(s.evaded for s in samples) / max(1, len(samples)), samples

    # -- inspection -------------------------------------------------------------------------
    def distributions(self, space: AttackSpace | None = None) -> dict[str, Any]:
        """Marginal choice probabilities (family, top choices, and stage 2 per context)."""
        torch = _torch()
        space = space or AttackSpace()
        with torch.no_grad():
            out: dict[str, Any] = {"family": dict(zip(FAMILIES, torch.softmax(self.net.family, 0).tolist()))}
            for f in FAMILIES:
                top = TOP_FACTOR[f]
                out[f"{f}.{top}"] = {str(v): round(p, 4) for v, p in zip(FACTORS[f][top], torch.softmax(self.net.top[f], 0).tolist())}
            for j, (f, ctx) in enumerate(_CONTEXTS):
                x = torch.zeros(len(_CONTEXTS))
                x[j] = 1.0
                h = self.net.body(x)
                for k, vals in FACTORS[f].items():
                    if k == TOP_FACTOR[f]:
                        continue
                    p = torch.softmax(self.net.heads[f"{f}__{k}"](h), 0).tolist()
                    out[f"{f}[{ctx}].{k}"] = {str(v): round(q, 4) for v, q in zip(vals, p)}
        return out

    # -- persistence --------------------------------------------------------------------------
    def save(self, directory: str | Path, extra: dict[str, Any] | None = None) -> Path:
        torch = _torch()
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        torch.save(self.net.state_dict(), d / "generator.pt")
        manifest = {
            "format": GENERATOR_FORMAT,
            "format_version": GENERATOR_VERSION,
            "space": space_digest(),
            "config": self.config.__dict__,
            "seed": self.seed,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "novelty": [[list(k), v] for k, v in self.novelty.most_common(200)],
            **(extra or {}),
        }
        (d / "generator.json").write_text(json.dumps(manifest, indent=2, default=str), encoding="utf-8")
        return d

    @classmethod
    def load(cls, directory: str | Path, seed: int = 0) -> "Generator":
        torch = _torch()
        d = Path(directory)
        mpath, wpath = d / "generator.json", d / "generator.pt"
        if not mpath.is_file() or not wpath.is_file():
            raise GeneratorError(f"{d}: not a generator directory (needs generator.json and generator.pt)")
        try:
            meta = json.loads(mpath.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise GeneratorError(f"{mpath}: unreadable ({e})") from None
        if meta.get("format") != GENERATOR_FORMAT or meta.get("format_version") != GENERATOR_VERSION:
            raise GeneratorError(f"{mpath}: not a {GENERATOR_FORMAT} v{GENERATOR_VERSION} file")
        if meta.get("space") != space_digest():
            raise GeneratorError(f"{mpath}: trained for another attack space ({meta.get('space')} != {space_digest()})")
        cfg = GeneratorConfig(**{k: v for k, v in (meta.get("config") or {}).items() if k in GeneratorConfig.__dataclass_fields__})
        g = cls(cfg, seed=seed)
        try:
            state = torch.load(wpath, map_location="cpu", weights_only=True)
            g.net.load_state_dict(state)
        except Exception as e:  # noqa: BLE001
            raise GeneratorError(f"{wpath}: cannot load weights ({type(e).__name__}: {e})") from None
        g.meta = meta
        return g
