"""`promptguard baseline`: learn what an application's normal prompts look like."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from . import app
from .common import die

baseline_app = typer.Typer(help="Build and inspect embedding baselines of normal prompts.", no_args_is_help=True)
app.add_typer(baseline_app, name="baseline")


@baseline_app.command("build")
def build(
    paths: list[Path] = typer.Argument(..., help="Prompt files or directories, or JSONL of logged requests."),
    output: Path = typer.Option(..., "--output", "-o", help="Directory to write the baseline to."),
    target_fpr: float = typer.Option(0.01, "--target-fpr", help="False-positive rate the thresholds are calibrated to."),
    k: int = typer.Option(3, "--k", help="Neighbours averaged in the kNN distance."),
    folds: int = typer.Option(5, "--folds", help="Calibration folds (held-out by segment)."),
    min_segments: int = typer.Option(10, "--min-segments", help="Kinds with fewer distinct segments are left out."),
    model: str | None = typer.Option(None, "--model", help="Embedding model folder or package (default: bundled)."),
    max_bytes: int = typer.Option(10 * 1024 * 1024, "--max-bytes", help="Skip files larger than this."),
) -> None:
    """Embed normal segments into one faiss index per segment kind and calibrate thresholds.

    Exit codes: 0 built, 2 usage error or not enough data.
    """
    from ..embeddings import EmbeddingError, get_embedder
    from ..embeddings.baseline import BaselineError, build_baseline
    from ..parsing.files import iter_prompt_files, parse_file

    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise die(f"no such file or directory: {', '.join(missing)}")
    if output.exists() and not output.is_dir():
        raise die(f"{output} exists and is not a directory")
    texts: dict[str, list[str]] = {}
    files = errors = 0
    for f in iter_prompt_files(list(paths)):
        parsed = parse_file(f, max_bytes=max_bytes)
        files += 1
        if parsed.error is not None:
            errors += 1
            typer.echo(f"warning: {parsed.path}: {parsed.error}", err=True)
            continue
        for seg in parsed.segments:
            texts.setdefault(seg.kind.value, []).append(seg.text)
    if not files:
        raise die(f"no prompt files found under {', '.join(map(str, paths))}")
    try:
        emb = get_embedder(model)
        base, warnings = build_baseline(texts, emb, target_fpr=target_fpr, k=k, folds=folds, min_segments=min_segments)
        base.meta = {"sources": [str(p) for p in paths], "files": files, "files_with_errors": errors}
        base.save(output)
    except (BaselineError, EmbeddingError) as e:
        raise die(str(e)) from None
    except OSError as e:
        raise die(f"cannot write {output}: {e.strerror or e}") from None
    for w in warnings:
        typer.echo(f"warning: {w}", err=True)
    typer.echo(f"baseline written to {output} ({files} files)")
    for name, kb in base.kinds.items():
        cal = kb.calibration
        typer.echo(
            f"  {name:14s} {kb.segments:7d} segments {kb.vectors:8d} windows  "
            f"threshold {kb.threshold:.4f} (held-out FPR {cal['held_out_fpr_at_threshold']:.3%}, "
            f"{cal['held_out_segments']} held out)"
        )


@baseline_app.command("info")
def info(directory: Path = typer.Argument(..., help="A baseline directory.")) -> None:
    """Print a baseline's metadata (model, kinds, thresholds) as JSON."""
    from ..embeddings.baseline import Baseline, BaselineError

    try:
        Baseline.load(directory)
    except BaselineError as e:
        raise die(str(e)) from None
    typer.echo(json.dumps(json.loads((directory / "baseline.json").read_text(encoding="utf-8")), indent=2))
