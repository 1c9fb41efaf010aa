"""Adversarial hardening (offline tooling; nothing at serve time imports it).

A Generator agent synthesizes poisoned demonstrations and injections from a
structured attack space; the policy's own learned detectors — the injection
classifier and the demonstrations detector — are retrained on what got through,
under a false-positive budget on a wide clean corpus, and judged on attack
families held out of the generator's action space (`promptguard harden`).

Modules (nothing heavy at import; torch is imported inside the generator):

- `domains`       clean worked examples in several domains (and the user's library)
- `carriers`      clean documents, injection payloads and obfuscations
- `attack_space`  the factored construction space, held-out families, rendering, ground truth
- `validator`     rejects constructions that are not real attacks
- `generator`     REINFORCE policy over the factored choices
- `cleanset`      the clean corpus of the false-positive budget (provenance, splits)
- `detector_set`  a retrained detector set, its policy, batched evaluation
- `retrain`       rows and examples the classifier / demonstrations detector learn from
- `evaluation`    held-out families, in-space validation, clean metrics, the budget gate
- `loop`          the rounds, artifacts and reports
- `redteam`       a user's clean prompt library -> poisoned test suite
- `library`, `corpus`, `validation`, `dut`  a user's prompts, found text, ../shared, a detector as `flagged?`
"""

from __future__ import annotations

__all__: list[str] = []
