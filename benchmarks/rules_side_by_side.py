"""Side by side: promptguard's default rules vs. the rule-based scanners of LLM Guard and LlamaFirewall.

    bash benchmarks/setup_sidebyside_venv.sh          # once: competitors in their own venv
    .venv/bin/python benchmarks/rules_side_by_side.py [--limit N] [--data FILE] [--heldout FILE]

Data: the rows of `../shared/data/injection/dev.jsonl` (label 1 = attack) and the
held-out set `benchmarks/data/rules_heldout.jsonl` (written for this benchmark, not
taken from the dev set). Every detector sees the same rows. A row's segment kind
follows its *format*, never its label: BIPIA rows (e-mails, tables, code answers
with or without an inserted attack) are retrieved `context`; every other row is a
user `query` (held-out rows carry their own `segment` field).

promptguard: the `rules` detector exactly as the packaged default policy configures
it (`policies/default.yaml` → `policies/rules/default.yaml`), decided by that
policy: a row counts as detected when the decision is not `allow` (flag, sanitize
or block); the `block` column counts blocks only.

Competitors (run in the separate venv `$SIDEBYSIDE_VENV`, default
/work/venvs/sidebyside, through `benchmarks/sidebyside_runner.py`; a row counts as
detected when the scanner says invalid / not ALLOW):
- LLM Guard `BanSubstrings`: 28 English injection and jailbreak phrases (LLM Guard
  ships no default list; see BAN_SUBSTRINGS in the runner), match_type="word",
  case-insensitive, any phrase.
- LLM Guard `Regex`: LLM Guard's documented bearer-token example plus 7 English
  injection patterns (override, prompt reveal, DAN / developer mode, chat-template
  tokens; REGEX_PATTERNS in the runner), match_type="search".
- LLM Guard `InvisibleText`: defaults (characters of Unicode categories Cf, Co, Cn).
- LlamaFirewall `REGEX` and `HIDDEN_ASCII` scanners: defaults, through the public
  `LlamaFirewall.scan` API; query rows are sent as UserMessage, context rows as
  ToolMessage, both roles configured with the scanner.
- "any" rows: the union of one library's scanners.

Printed per detector: recall, false-positive rate, precision, time per prompt, and
recall per attack kind. JSON goes to benchmarks/out/rules_side_by_side.json.
Times are wall-clock on a shared 2-core machine and are pessimistic when other
work runs at the same time.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from promptguard.detectors.rules import RulesDetector  # noqa: E402
from promptguard.policy import Action, load_policy  # noqa: E402
from promptguard.segments import Segment, SegmentKind  # noqa: E402

DEFAULT_DATA = REPO.parent / "shared" / "data" / "injection" / "dev.jsonl"
DEFAULT_HELDOUT = REPO / "benchmarks" / "data" / "rules_heldout.jsonl"
DEFAULT_VENV = Path(os.environ.get("SIDEBYSIDE_VENV", "/work/venvs/sidebyside"))
OUT = REPO / "benchmarks" / "out"


def load_rows(path: Path, limit: int | None) -> list[dict[str, Any]]:
    rows = []
    with path.open(encoding="utf-8") as f:
        for line in f:
            if line.strip():
                r = json.loads(line)
                r.setdefault("segment", "context" if str(r.get("source", "")).startswith("bipia") else "query")
                rows.append(r)
    return rows[:limit] if limit else rows


def run_promptguard(rows: list[dict[str, Any]]) -> dict[str, Any]:
    policy = load_policy()
    opts = policy.detectors["rules"].options if "rules" in policy.detectors else {}
    det = RulesDetector.from_config(opts, policy.base_dir)
    flagged, blocked, seconds = [], [], []
    rules_hit: dict[str, int] = {}
    det.detect([Segment(SegmentKind.QUERY, 0, "warm up")])
    for r in rows:
        seg = Segment(SegmentKind(r["segment"]), 0, r["text"])
        t0 = time.perf_counter()
        findings = det.detect([seg])
        decision = policy.decide(findings)
        seconds.append(time.perf_counter() - t0)
        flagged.append(decision.action is not Action.ALLOW)
        blocked.append(decision.action is Action.BLOCK)
        for f in decision.reasons:
            rules_hit[f.rule or "?"] = rules_hit.get(f.rule or "?", 0) + 1
    return {
        "promptguard rules": {"flagged": flagged, "seconds": seconds, "errors": 0,
                              "config": f"default policy, {len(det.rules)} rules", "blocked": blocked,
                              "rules_hit": rules_hit},
    }


def run_competitors(rows: list[dict[str, Any]], venv: Path) -> tuple[dict[str, Any], dict[str, str]]:
    py = venv / "bin" / "python"
    if not py.exists():
        print(f"!! side-by-side venv not found at {venv}: run benchmarks/setup_sidebyside_venv.sh "
              "(or set SIDEBYSIDE_VENV); showing promptguard only", file=sys.stderr)
        return {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        inp, outp = Path(tmp) / "rows.jsonl", Path(tmp) / "out.json"
        with inp.open("w", encoding="utf-8") as f:
            for r in rows:
                f.write(json.dumps({"id": r.get("id"), "text": r["text"], "segment": r["segment"]}) + "\n")
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONWARNINGS": "ignore"}
        proc = subprocess.run([str(py), str(REPO / "benchmarks" / "sidebyside_runner.py"), str(inp), str(outp)],
                              capture_output=True, text=True, env=env, check=False)
        if proc.returncode != 0:
            print(f"!! competitor runner failed (rc={proc.returncode}):\n{proc.stderr[-3000:]}", file=sys.stderr)
            return {}, {}
        data = json.loads(outp.read_text(encoding="utf-8"))
    return data["scanners"], data["versions"]


def union(results: dict[str, Any], prefix: str) -> dict[str, Any] | None:
    parts = [v for k, v in results.items() if k.startswith(prefix)]
    if len(parts) < 2:
        return None
    n = len(parts[0]["flagged"])
    return {"flagged": [any(p["flagged"][i] for p in parts) for i in range(n)],
            "seconds": [sum(p["seconds"][i] for p in parts) for i in range(n)],
            "errors": sum(p["errors"] for p in parts), "config": "union of the above"}


def metrics(rows: list[dict[str, Any]], res: dict[str, Any]) -> dict[str, Any]:
    flagged = res["flagged"]
    pos = [i for i, r in enumerate(rows) if r["label"] == 1]
    neg = [i for i, r in enumerate(rows) if r["label"] == 0]
    tp = sum(flagged[i] for i in pos)
    fp = sum(flagged[i] for i in neg)
    out: dict[str, Any] = {
        "recall": tp / len(pos) if pos else 0.0,
        "fpr": fp / len(neg) if neg else 0.0,
        "precision": tp / (tp + fp) if tp + fp else 0.0,
        "tp": tp, "fp": fp, "positives": len(pos), "negatives": len(neg),
        "ms_per_prompt": 1000 * sum(res["seconds"]) / max(1, len(rows)),
        "errors": res.get("errors", 0),
        "per_kind": {},
    }
    if "blocked" in res:
        out["block_recall"] = sum(res["blocked"][i] for i in pos) / len(pos) if pos else 0.0
        out["block_fpr"] = sum(res["blocked"][i] for i in neg) / len(neg) if neg else 0.0
    kinds = sorted({r["kind"] for r in rows})
    for k in kinds:
        idx = [i for i, r in enumerate(rows) if r["kind"] == k]
        out["per_kind"][k] = {"rate": sum(flagged[i] for i in idx) / len(idx), "n": len(idx),
                              "label": rows[idx[0]]["label"]}
    return out


def table(title: str, rows: list[dict[str, Any]], results: dict[str, Any]) -> dict[str, Any]:
    allm = {name: metrics(rows, res) for name, res in results.items()}
    kinds = sorted({r["kind"] for r in rows}, key=lambda k: (-next(r["label"] for r in rows if r["kind"] == k), k))
    n_pos = sum(r["label"] == 1 for r in rows)
    print(f"\n== {title}: {len(rows)} rows ({n_pos} attacks, {len(rows) - n_pos} benign) ==")
    head = f"{'detector':30s} {'recall':>7s} {'FPR':>7s} {'prec.':>7s} {'ms/prompt':>10s}"
    for k in kinds:
        head += f" {k[:18]:>18s}"
    print(head)
    print("-" * len(head))
    for name, m in allm.items():
        line = f"{name:30s} {m['recall']:7.3f} {m['fpr']:7.3f} {m['precision']:7.3f} {m['ms_per_prompt']:10.3f}"
        for k in kinds:
            pk = m["per_kind"][k]
            line += f" {pk['rate']:18.3f}"
        print(line)
        if "block_recall" in m:
            print(f"{'  (block only)':30s} {m['block_recall']:7.3f} {m['block_fpr']:7.3f}")
    print("(per-kind columns: detection rate = recall for attack kinds, false-positive rate for benign kinds)")
    return allm


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--heldout", type=Path, default=DEFAULT_HELDOUT)
    ap.add_argument("--limit", type=int, default=None, help="use the first N dev rows")
    ap.add_argument("--venv", type=Path, default=DEFAULT_VENV)
    ap.add_argument("--no-competitors", action="store_true")
    args = ap.parse_args(argv)

    report: dict[str, Any] = {"versions": {}}
    sets = []
    if args.data.exists():
        sets.append(("dev set " + str(args.data.name), load_rows(args.data, args.limit)))
    else:
        print(f"!! {args.data} not found (it sits beside the repo in ../shared); skipping it", file=sys.stderr)
    if args.heldout.exists():
        sets.append(("held-out " + str(args.heldout.name), load_rows(args.heldout, None)))
    for title, rows in sets:
        results = run_promptguard(rows)
        if not args.no_competitors:
            comp, versions = run_competitors(rows, args.venv)
            report["versions"].update(versions)
            results.update(comp)
            for lib in ("llm-guard", "llamafirewall"):
                u = union(comp, lib)
                if u is not None:
                    results[f"{lib} (any)"] = u
        allm = table(title, rows, results)
        hits = results["promptguard rules"]["rules_hit"]
        print("promptguard rules that fired (rows):", ", ".join(f"{k} {v}" for k, v in
                                                            sorted(hits.items(), key=lambda kv: -kv[1])))
        report[title] = {"metrics": allm,
                         "config": {k: v.get("config") for k, v in results.items()},
                         "promptguard_rules_hit": hits}
    if report["versions"]:
        print("\ncompetitor versions:", ", ".join(f"{k} {v}" for k, v in report["versions"].items()))
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "rules_side_by_side.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    print(f"JSON: {OUT / 'rules_side_by_side.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
