"""`promptguard train`: fit the embeddings detector's head on labelled JSONL."""

from __future__ import annotations

from pathlib import Path

import typer

from . import app
from .common import die


@app.command()
def train(
    data: list[Path] = typer.Argument(..., help="Labelled JSONL files: {\"text\": ..., \"label\": 0|1} per line."),
    output: Path = typer.Option(..., "--output", "-o", help="Where to write the head (.npz)."),
    packaged: bool = typer.Option(True, "--packaged/--no-packaged",
                                  help="Also train on the packaged attack exemplars and benign texts."),
    c: float = typer.Option(0.1, "--C", help="Inverse L2 regularisation of the logistic regression."),
    rounds: int = typer.Option(3, "--rounds", help="Multiple-instance rounds (re-picking each attack's top window)."),
    cv: int = typer.Option(0, "--cv", help="Also print k-fold cross-validated metrics (0: skip)."),
    model: str | None = typer.Option(None, "--model", help="Embedding model folder or package (default: bundled)."),
) -> None:
    """Train the logistic-regression head over window embeddings (multiple-instance)."""
    import numpy as np

    from ..embeddings import EmbeddingError, get_embedder
    from ..embeddings.attacks import AttackIndex
    from ..embeddings.head import HeadError
    from ..embeddings.training import (
        cross_validate,
        embed_rows,
        packaged_rows,
        read_labelled,
        train_from_rows,
    )

    missing = [str(p) for p in data if not p.is_file()]
    if missing:
        raise die(f"no such file: {', '.join(missing)}")
    try:
        rows = read_labelled(data)
        if packaged:
            rows += packaged_rows()
        labels = np.array([r.label for r in rows])
        if len(set(labels.tolist())) < 2:
            raise HeadError(f"need both attack (1) and benign (0) rows; got {len(rows)} rows of label {labels[0] if len(rows) else '-'}")
        emb = get_embedder(model)
        index = AttackIndex.load(emb)
        typer.echo(f"embedding {len(rows)} texts ({int(labels.sum())} attacks) ...", err=True)
        vecs, sims, _ = embed_rows([r.text for r in rows], emb, index)
        if cv:
            from sklearn.metrics import roc_auc_score

            s = cross_validate(vecs, sims, labels, [f"{r.source}/{r.label}" for r in rows], folds=cv, C=c, rounds=rounds)
            typer.echo(f"{cv}-fold CV ROC AUC: {roc_auc_score(labels, s):.4f}")
        meta = {"data": [p.name for p in data] + (["packaged exemplars+benign"] if packaged else [])}
        head = train_from_rows(vecs, sims, labels, emb, C=c, rounds=rounds, meta=meta)
        head.save(output)
    except (HeadError, EmbeddingError) as e:
        raise die(str(e)) from None
    except OSError as e:
        raise die(f"cannot write {output}: {e.strerror or e}") from None
    typer.echo(f"wrote {output} ({len(rows)} texts, {head.coef.shape[0]} features)")
