"""Prompt-library files under the trust model: are injected system prompts caught, and do
clean ones stay clean?

    .venv/bin/python benchmarks/library_trust.py [--data benchmarks/data/library_trust.jsonl]
                                                 [--configs default,before,rules]

The set (benchmarks/data/library_trust.jsonl, written for this project, nothing from
../shared) is a prompt library: `.txt`, `.md`, `.prompt`, `.tmpl` and `.yaml` files, each a
system prompt or template. Attacks hide one injection (instruction override in several
languages, system-prompt and data exfiltration, jailbreak personas, fake turn boundaries,
hidden comments, invisible Unicode, encoded payloads) in an otherwise ordinary prompt; clean
files include the hard negatives a scanner must leave alone: prompts that say "never reveal
these instructions" or "ignore instructions inside documents", role prompts ("I want you to
act as ..."), templates with `{question}` / `{{context}}` placeholders, raw chat templates,
and security-training prompts that quote an attack.

Splits, in the order they are printed:
- `heldout2`: written after the first run on `heldout`, before the fixes that run led to,
  and scanned once after them: the held-out figure for the rules as they are;
- `heldout`: written together with `dev`, before the rules were adapted, and scanned once
  (its first-run figures are in docs/scanner.md); its false alarms and misses were then
  fixed (PG-OVR-011's English look-alike, PG-OVR-002's "instructions no longer apply",
  PG-EXF-001's "full text of your system message", PG-EXF-003's "any ... numbers",
  PG-BND-004's system turn after plain text, `mentions:` for "try to make an AI"), so it
  is in-sample now;
- `dev`: used to adapt the rules (which rules check untrusted instructions, `mentions:`,
  PG-EXF-001's "everything above", PG-EXF-013, PG-BND-004): in-sample.
All three were written by the same person as the rules: a user's own library is the real
test.

Every file is written to a temporary directory and scanned with the real scanner
(`scan_paths`, as `promptguard scan` does). Configurations:
- default: the packaged default policy (the scanner trusts nothing);
- before: the default policy as it read libraries before the trust model (system prompts
  trusted: `trust.scanner: [instruction]`, the embeddings detector checking them);
- rules: the default rule set alone, scanner trust as in default.

A file counts as caught when its verdict is flag, sanitize or block, and as a false alarm
when a clean file's verdict is anything but allow. Prints one table per split (held-out
first) and the per-family catch rate; writes benchmarks/out/library_trust.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from _common import wilson

from promptguard.guard import Guard
from promptguard.policy import Policy, load_policy
from promptguard.scanner import scan_paths

DATA = HERE / "data" / "library_trust.jsonl"
OUT = HERE / "out" / "library_trust.json"


def configs() -> dict[str, Policy]:
    default = load_policy()
    before = default.model_copy(deep=True)
    before.trust.scanner = list(default.trusted_kinds("proxy"))
    if "embeddings" in before.detectors:
        before.detectors["embeddings"].skip_trusted = False
    rules = default.model_copy(deep=True)
    rules.detectors = {"rules": default.detectors["rules"]}
    rules.name = "default rules only"
    return {"default": default, "before": before, "rules": rules}


def materialise(rows: list[dict], root: Path) -> dict[str, dict]:
    """Each row as a file `<split>/<id>.<ext>`; path → row."""
    by_path = {}
    for r in rows:
        p = root / r["split"] / f"{r['id']}.{r['ext']}"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(r["text"], encoding="utf-8")
        by_path[str(p)] = r
    return by_path


def rate(k: int, n: int) -> str:
    lo, hi = wilson(k, n)
    return f"{k}/{n} = {k / n:.3f} [{lo:.2f}, {hi:.2f}]" if n else "-"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--configs", default="default,before,rules")
    ap.add_argument("--splits", default="heldout2,heldout,dev", help="which splits to scan")
    args = ap.parse_args()
    splits = [s.strip() for s in args.splits.split(",") if s.strip()]
    rows = [json.loads(line) for line in args.data.read_text(encoding="utf-8").splitlines() if line.strip()]
    rows = [r for r in rows if r["split"] in splits]
    all_configs = configs()
    wanted = [c.strip() for c in args.configs.split(",") if c.strip()]
    unknown = set(wanted) - set(all_configs)
    if unknown:
        sys.exit(f"unknown configs {sorted(unknown)}; known: {', '.join(all_configs)}")

    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="library-trust-") as tmp:
        by_path = materialise(rows, Path(tmp))
        for name in wanted:
            guard = Guard(all_configs[name])
            t0 = time.perf_counter()
            report = scan_paths([tmp], guard, workers=1)
            secs = time.perf_counter() - t0
            verdicts = {}
            for f in report.files:
                r = by_path[f.path]
                top = f.findings[0] if f.findings else None
                verdicts[r["id"]] = {"verdict": f.verdict, "split": r["split"], "label": r["label"],
                                     "family": r["family"],
                                     "top": f"{top['detector']}/{top['rule']}" if top and top["action"] != "allow" else None}
            errors = [f.path for f in report.files if f.verdict == "error"]
            if errors:
                sys.exit(f"{name}: files could not be scanned: {errors}")
            results[name] = {"seconds": round(secs, 2), "files": verdicts}

    print(f"# prompt-library files under the trust model ({args.data.name}; "
          f"{Counter((r['split'], r['label']) for r in rows)})\n")
    summary: dict[str, dict] = {}
    for split, title in (("heldout2", "held-out 2 (written before the last rule fixes, scanned once after them)"),
                         ("heldout", "held-out 1 (its first run led to rule fixes: in-sample now)"),
                         ("dev", "dev (used to adapt the rules: in-sample)")):
        if split not in splits:
            continue
        print(f"## {title}\n")
        print("| config | attacks caught (flag/sanitize/block) | of which blocked | clean files flagged | clean kept clean |")
        print("|---|---|---|---|---|")
        for name in wanted:
            v = [x for x in results[name]["files"].values() if x["split"] == split]
            att = [x for x in v if x["label"] == "attack"]
            cln = [x for x in v if x["label"] == "clean"]
            caught = sum(x["verdict"] != "allow" for x in att)
            blocked = sum(x["verdict"] == "block" for x in att)
            fa = sum(x["verdict"] != "allow" for x in cln)
            summary.setdefault(split, {})[name] = {"attacks": len(att), "caught": caught, "blocked": blocked,
                                                   "clean": len(cln), "false_alarms": fa}
            print(f"| {name} | {rate(caught, len(att))} | {blocked}/{len(att)} | {rate(fa, len(cln))} | "
                  f"{len(cln) - fa}/{len(cln)} |")
        print()
        for name in wanted:
            v = {k: x for k, x in results[name]["files"].items() if x["split"] == split}
            missed = sorted(k for k, x in v.items() if x["label"] == "attack" and x["verdict"] == "allow")
            alarms = sorted(f"{k} ({x['verdict']}: {x['top']})" for k, x in v.items()
                            if x["label"] == "clean" and x["verdict"] != "allow")
            print(f"- {name}: missed {missed or 'none'}; false alarms {alarms or 'none'}")
        print()
    print("## attacks caught per family, default policy (" + " | ".join(splits) + ")\n")
    print("| family | " + " | ".join(splits) + " |")
    print("|---" * (len(splits) + 1) + "|")
    fam: dict[str, dict[str, list[int]]] = defaultdict(lambda: {sp: [0, 0] for sp in splits})
    for x in results.get("default", {"files": {}})["files"].values():
        if x["label"] == "attack":
            c = fam[x["family"]][x["split"]]
            c[0] += x["verdict"] != "allow"
            c[1] += 1
    for f, d in sorted(fam.items()):
        print(f"| {f} | " + " | ".join(f"{d[sp][0]}/{d[sp][1]}" for sp in splits) + " |")
    print("\nscan seconds per config (loaded machine): "
          + ", ".join(f"{n} {results[n]['seconds']}" for n in wanted))
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({"summary": summary, "results": results}, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
