"""`promptguard harden`: adversarial hardening (generator vs detector, alternated)."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from . import app
from .common import PolicyOption, die


@app.command()
def harden(
    output: Path = typer.Option(..., "--output", "-o", help="Directory for the artifacts and reports (created)."),
    rounds: int = typer.Option(4, "--rounds", "-n", min=0, max=50, help="Generator/detector rounds."),
    policy: Optional[Path] = PolicyOption,
    library: Optional[List[Path]] = typer.Option(None, "--library", "-l",
                                                 help="Your prompt library (files or directories): its demonstrations "
                                                      "join the attack domains and its prompts the held clean data."),
    steps: int = typer.Option(25, "--steps", min=1, help="Generator updates per round."),
    batch: int = typer.Option(48, "--batch", min=4, help="Attacks per generator update."),
    target_fpr: Optional[float] = typer.Option(None, "--target-fpr", min=0.001, max=0.5,
                                               help="False-positive budget on held clean prompts (default: the "
                                                    "policy's detectors.hardened.target_fpr, else 0.05)."),
    base_detectors: Optional[str] = typer.Option(None, "--base-detectors",
                                                 help="Comma-separated detectors of the policy to run in the loop "
                                                      "(default: all but the model-based embeddings/baseline)."),
    tune_base: bool = typer.Option(False, "--tune-base/--no-tune-base",
                                   help="Also retune the base detectors' thresholds, so that the whole detector "
                                        "meets the FPR budget (default: keep them; the head adds at most the budget)."),
    validation: bool = typer.Option(True, "--validation/--no-validation",
                                    help="Measure recall on ../shared (never trained on) when present."),
    compare: bool = typer.Option(False, "--compare", help="Finally train fresh generators against the round-0 and "
                                                          "the hardened detector and compare their evasion rates."),
    seed: int = typer.Option(0, "--seed", help="Random seed (the run is deterministic for a seed)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Only the final summary."),
) -> None:
    """Adversarial hardening: a generator against the detectors, retrained in turn.

    A generator of poisoned demonstrations and injections trains against the current
    detectors; a hardened detector is retrained on what got through; repeat.

    Writes OUT/detector (the hardened artifact), OUT/policy.yaml (use it with
    `promptguard scan --policy` or the proxy), OUT/generator (for `promptguard
    redteam`), OUT/attacks.jsonl (the evasions, with ground truth) and per-round
    reports. Exit codes: 0 done, 2 usage or configuration error.
    """
    import json

    from ..detectors.base import DetectorError
    from ..harden.library import LibraryError, load_library
    from ..harden.loop import HardenConfig, HardenError, fresh_comparison, render_markdown
    from ..yamlutil import YamlError

    if output.exists() and not output.is_dir():
        raise die(f"{output} exists and is not a directory")
    prompts = []
    if library:
        missing = [str(p) for p in library if not p.exists()]
        if missing:
            raise die(f"no such file or directory: {', '.join(missing)}")
        try:
            prompts, problems = load_library(library)
        except LibraryError as e:
            raise die(str(e)) from None
        for p in problems:
            typer.echo(f"promptguard: warning: {p}", err=True)
    if policy is not None and not policy.is_file():
        raise die(f"no such policy file: {policy}")
    only = [x.strip() for x in base_detectors.split(",") if x.strip()] if base_detectors else None
    cfg = HardenConfig(rounds=rounds, steps=steps, batch=batch, target_fpr=target_fpr, tune_base=tune_base,
                       validation=validation, seed=seed, base_detectors=only)
    log = (lambda _m: None) if quiet else (lambda m: typer.echo(m, err=True))
    from ..harden.loop import harden as run

    try:
        res = run(output, cfg, policy_path=policy, library=prompts, log=log)
    except YamlError as e:
        raise die(str(e)) from None
    except (HardenError, DetectorError, ValueError, OSError) as e:
        raise die(f"harden failed: {e}") from None
    if compare:
        comp = fresh_comparison(res, steps=steps, batch=batch, eval_samples=cfg.eval_samples, log=log)
        rp = output / "report.json"
        report = json.loads(rp.read_text(encoding="utf-8"))
        report["comparison"] = comp
        rp.write_text(json.dumps(report, indent=2), encoding="utf-8")
        (output / "report.md").write_text(render_markdown(report), encoding="utf-8")
    typer.echo((output / "report.md").read_text(encoding="utf-8"))
    typer.echo(f"hardened detector: {output / 'detector'}\npolicy: {output / 'policy.yaml'}\n"
               f"generator: {output / 'generator'}\nevasions: {output / 'attacks.jsonl'}")
