"""Adversarial hardening: a Generator agent that synthesizes poisoned demonstrations
and injections from a structured attack space, and a Detector agent retrained on
what got through, alternated by `promptguard harden`.

Modules (nothing heavy at import; torch is imported inside the generator):

- `domains`       clean worked examples in several domains (and the user's library)
- `carriers`      clean documents, injection payloads and obfuscations
- `attack_space`  the factored construction space, rendering and ground truth
- `validator`     rejects constructions that are not real attacks
- `features`      features the hardened head reads (own + the demonstrations detector's)
- `detector`      the `hardened` detector (loads a versioned artifact)
- `dut`           `DetectorUnderTest`: any detector as `segments -> flagged?`
- `generator`     REINFORCE policy over the factored choices
- `detector_agent` retraining under a false-positive constraint
- `loop`          the alternation, artifacts and reports
- `redteam`       a user's clean prompt library -> poisoned test suite
"""

from __future__ import annotations

__all__: list[str] = []
