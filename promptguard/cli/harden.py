"""`promptguard harden`: adversarial hardening of the policy's own learned detectors."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from . import app
from .common import PolicyOption, die


@app.command()
def harden(
    output: Path = typer.Option(..., "--output", "-o", help="Directory for the detector sets and reports (created)."),
    rounds: int = typer.Option(3, "--rounds", "-n", min=0, max=50, help="Generator/retraining rounds."),
    policy: Optional[Path] = PolicyOption,
    library: Optional[List[Path]] = typer.Option(None, "--library", "-l",
                                                 help="Your prompt library (files or directories), all clean: it joins "
                                                      "the clean corpus, split by file (half trains, half is held in "
                                                      "the budget gate), and the final set must flag none of it."),
    steps: int = typer.Option(8, "--steps", min=1, help="Generator updates per round."),
    batch: int = typer.Option(32, "--batch", min=4, help="Attacks per generator update."),
    retrain: str = typer.Option("classifier,demonstrations", "--retrain",
                                help="Which learned detectors of the policy to retrain (comma-separated)."),
    holdout: Optional[str] = typer.Option(None, "--holdout",
                                          help="More attack families to hold out of the generator and all training, "
                                               "beyond the default ones, as family.factor=value "
                                               "(e.g. inject.carrier=table,demo.trigger_kind=unicode)."),
    fewshot_fpr: float = typer.Option(0.01, "--fewshot-fpr", min=0.0, max=0.5,
                                      help="Budget: the most a round may flag of the held clean few-shot/CoT files "
                                           "(never more than round 0 did)."),
    token_budget: int = typer.Option(40_000, "--token-budget", min=1000,
                                     help="Classifier fine-tune tokens per round."),
    validation: bool = typer.Option(True, "--validation/--no-validation",
                                    help="Also score ../shared BadChain prompt files (never trained on) when present."),
    compare: bool = typer.Option(False, "--compare", help="Finally train fresh generators against the round-0 and "
                                                          "the final detector set and compare their evasion rates."),
    seed: int = typer.Option(0, "--seed", help="Random seed (the run is deterministic for a seed)."),
    threads: int = typer.Option(2, "--threads", min=1, max=64, help="CPU threads for training and inference."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Only the final summary."),
) -> None:
    """Adversarial hardening: a generator against the policy's detectors, which are retrained in turn.

    Each round a fresh generator of poisoned demonstrations and injections trains
    against the current detectors; the policy's injection classifier is fine-tuned
    and the demonstrations detector's weights are refitted on what it found. A round
    whose detectors flag more held-out clean prompts than round 0 (few-shot files:
    also more than --fewshot-fpr) is REJECTED and the previous set stays. Every
    round is scored on attack families the generator never produced.

    Writes OUT/detector (the final detector set), OUT/policy.yaml (the base policy
    loading it: use it with `promptguard scan --policy` or the proxy), OUT/generator
    (for `promptguard redteam`), OUT/attacks.jsonl (the evasions, with ground truth),
    OUT/clean/manifest.json (the clean corpus's provenance) and per-round reports.
    Exit codes: 0 done, 2 usage or configuration error.
    """
    import json

    from ..detectors.base import DetectorError
    from ..harden.evaluation import Budget
    from ..harden.library import LibraryError
    from ..harden.loop import HardenConfig, HardenError, fresh_comparison, render_markdown
    from ..yamlutil import YamlError

    if output.exists() and not output.is_dir():
        raise die(f"{output} exists and is not a directory")
    if library:
        missing = [str(p) for p in library if not p.exists()]
        if missing:
            raise die(f"no such file or directory: {', '.join(missing)}")
    if policy is not None and not policy.is_file():
        raise die(f"no such policy file: {policy}")
    which = tuple(x.strip() for x in retrain.split(",") if x.strip())
    extra = tuple(x.strip() for x in holdout.split(",") if x.strip()) if holdout else ()
    cfg = HardenConfig(rounds=rounds, steps=steps, batch=batch, retrain=which, holdout=extra,
                       budget=Budget(fewshot_target=fewshot_fpr), token_budget=token_budget,
                       validation=validation, seed=seed, threads=threads)
    log = (lambda _m: None) if quiet else (lambda m: typer.echo(m, err=True))
    from ..harden.loop import harden as run

    try:
        res = run(output, cfg, policy_path=policy, library=list(library or []), log=log)
    except YamlError as e:
        raise die(str(e)) from None
    except (HardenError, LibraryError, DetectorError, ValueError, OSError) as e:
        raise die(f"harden failed: {e}") from None
    if compare:
        comp = fresh_comparison(res, steps=steps, batch=batch, eval_samples=cfg.eval_samples, log=log)
        rp = output / "report.json"
        report = json.loads(rp.read_text(encoding="utf-8"))
        report["comparison"] = comp
        rp.write_text(json.dumps(report, indent=2), encoding="utf-8")
        (output / "report.md").write_text(render_markdown(report), encoding="utf-8")
    typer.echo((output / "report.md").read_text(encoding="utf-8"))
    typer.echo(f"detector set: {output / 'detector'}\npolicy: {output / 'policy.yaml'}\n"
               f"generator: {output / 'generator'}\nevasions: {output / 'attacks.jsonl'}")
