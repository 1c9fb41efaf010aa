"""Turn a user's clean prompt library into a poisoned test suite, with ground truth.

Each prompt with worked examples gets poisoned-demonstration attacks built on
*its own* demonstrations and query (domain forced to `user`); each prompt
without them (a system prompt, a task) gets injection attacks that keep its
instruction and task and plant a payload in a carrier document. Constructions
come from a trained generator (`promptguard harden` writes one) or, without
one, uniformly from the attack space. Only attacks the validator accepts are
written.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from .attack_space import AttackSpace, ConstructionError, UserPrompt
from .generator import Generator, GeneratorError
from .library import load_library
from .validator import validate

__all__ = ["RedteamResult", "redteam", "load_generator"]


@dataclass
class RedteamResult:
    written: int = 0
    prompts: int = 0
    by_family: dict[str, int] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    rejected: int = 0


def load_generator(path: str | Path | None, seed: int = 0) -> Generator:
    """A trained generator (its directory, or a `harden` output directory), or a
    fresh uniform one when `path` is None."""
    if path is None:
        return Generator(seed=seed)
    p = Path(path)
    if (p / "generator" / "generator.json").is_file():
        p = p / "generator"
    return Generator.load(p, seed=seed)


def attacks_for_prompt(gen: Generator, space: AttackSpace, u: UserPrompt, k: int, *, max_tries: int = 12
                       ) -> tuple[list[Any], int, str | None]:
    """Up to `k` valid attacks built on one user prompt; (attacks, rejected, why none)."""
    import torch

    force: dict[str, Any] = {"family": "demo", "domain": "user"} if len(u.items) >= 2 else {"family": "inject"}
    if len(u.items) >= 2 and u.format:
        force["format"] = u.format
    out, rejected, last = [], 0, None
    seen: set[str] = set()
    for _ in range(max_tries):
        if len(out) >= k:
            break
        with torch.no_grad():
            cons, _, _ = gen.sample(space, k, force=force, base=u)
        for c in cons:
            if len(out) >= k:
                break
            try:
                a = space.build(c, base=u)
            except ConstructionError as e:
                rejected += 1
                last = str(e)
                continue
            v = validate(a)
            if not v.ok:
                rejected += 1
                last = v.reasons[0]
                continue
            key = json.dumps(a.to_record()["construction"], sort_keys=True, default=str)
            if key in seen:
                continue
            seen.add(key)
            out.append(a)
    return out, rejected, (None if out else last)


def redteam(
    library: Sequence[str | Path],
    output: str | Path,
    *,
    generator: str | Path | None = None,
    per_prompt: int = 3,
    seed: int = 0,
    log: Callable[[str], None] | None = None,
) -> RedteamResult:
    prompts, problems = load_library(library)
    gen = load_generator(generator, seed)
    space = AttackSpace(prompts)
    res = RedteamResult(prompts=len(prompts), skipped=list(problems))
    out = Path(output)
    tmp = out.with_name(out.name + ".tmp")
    n = 0
    with tmp.open("w", encoding="utf-8") as f:
        for u in prompts:
            if len(u.items) < 2 and (u.items or (not u.instruction and not u.query)):
                res.skipped.append(f"{u.source}: one worked example only; nothing to poison")
                continue
            attacks, rejected, why = attacks_for_prompt(gen, space, u, per_prompt)
            res.rejected += rejected
            if not attacks:
                res.skipped.append(f"{u.source}: no valid attack ({why})")
                continue
            for j, a in enumerate(attacks):
                row = {"id": f"{u.source}/{j}", "source": u.source, **a.to_record(), "valid": True}
                f.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
                n += 1
                res.by_family[a.family] = res.by_family.get(a.family, 0) + 1
            if log:
                log(f"{u.source}: {len(attacks)} attack(s)")
    tmp.replace(out)
    res.written = n
    return res


__all__ += ["GeneratorError", "attacks_for_prompt"]
