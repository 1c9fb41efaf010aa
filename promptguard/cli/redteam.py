"""`promptguard redteam`: a poisoned test suite from your own clean prompts."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from . import app
from .common import die


@app.command()
def redteam(
    library: List[Path] = typer.Argument(..., help="Your prompt library: files or directories (walked)."),
    output: Path = typer.Option(..., "--output", "-o", help="Where to write the attacks (JSONL)."),
    generator: Optional[Path] = typer.Option(None, "--generator", "-g",
                                             help="A trained generator (OUT/generator of `promptguard harden`, or OUT "
                                                  "itself). Without it, constructions are drawn uniformly."),
    per_prompt: int = typer.Option(3, "--per-prompt", "-k", min=1, max=100, help="Attacks per prompt."),
    seed: int = typer.Option(0, "--seed", help="Random seed."),
) -> None:
    """Turn each prompt of a clean library into poisoned variants with ground truth.

    Prompts with worked examples get poisoned demonstrations built on their own
    examples and query; the others get injections planted in a carrier document
    next to their own instruction and task. Every row is a valid attack (checked by
    the validator): `prompt` or `messages`, and `ground_truth` (poisoned
    demonstrations, trigger spans, backdoor steps, clean and poisoned answers; or the
    payload, its obfuscation and where it was planted).
    Exit codes: 0 written, 1 no attack could be made, 2 usage or I/O error.
    """
    from ..harden.generator import GeneratorError
    from ..harden.library import LibraryError
    from ..harden.redteam import redteam as run

    missing = [str(p) for p in library if not p.exists()]
    if missing:
        raise die(f"no such file or directory: {', '.join(missing)}")
    if generator is not None and not generator.exists():
        raise die(f"no such generator: {generator}")
    if output.parent and not output.parent.exists():
        raise die(f"directory {output.parent} does not exist")
    try:
        res = run(library, output, generator=generator, per_prompt=per_prompt, seed=seed)
    except (LibraryError, GeneratorError) as e:
        raise die(str(e)) from None
    except OSError as e:
        raise die(f"cannot write {output}: {e.strerror or e}") from None
    for s in res.skipped:
        typer.echo(f"promptguard: skipped {s}", err=True)
    fams = ", ".join(f"{k}: {v}" for k, v in sorted(res.by_family.items())) or "none"
    typer.echo(f"{res.written} attacks from {res.prompts} prompts ({fams}) -> {output}")
    if res.written == 0:
        raise typer.Exit(1)
