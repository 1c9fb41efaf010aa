"""The proxy under concurrency with the classifier in the policy, against the
upstream alone and against the policy it replaces (embeddings), in one run.

Reuses benchmarks/proxy_overhead.py's harness: the FAKE echo upstream of
tests/proxy/fake_upstream.py (its own cost is well under a millisecond), one proxy
worker (`promptguard serve`), a separate load generator, a new prompt per request
(no cache hits). On a 2-core box the three processes share the CPU.

Policies:
  classifier  — the packaged default policy (rules + demonstrations + classifier)
  embeddings  — the same with the embeddings detector in place of the classifier
                (the previous default)

    .venv/bin/python benchmarks/classifier_proxy.py [--policies classifier,embeddings] [--levels 1,16,64] [--requests 200]

Prints a table; writes benchmarks/out/classifier_proxy.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
from pathlib import Path

import httpx
from proxy_overhead import (OUT, _detector_means, added_row, baseline, run_level, start_proxy, start_upstream,
                            stop)


def policy_file(kind: str, tmp: Path) -> Path:
    import yaml

    from promptguard.policy import default_policy_path

    src = default_policy_path()
    if kind == "classifier":
        return src
    d = yaml.safe_load(src.read_text())
    rules_dir = src.parent / "rules" / "default.yaml"
    d["detectors"]["rules"] = {"rulesets": [str(rules_dir)]}
    d["detectors"].pop("classifier", None)
    # the previous default: its thresholds are still in the default policy (for when it is enabled)
    d["detectors"]["embeddings"] = {"head": "default", "min_score": 0.3, "skip_trusted": True}
    d["thresholds"] = [t for t in d.get("thresholds", []) if t.get("detector") != "classifier"]
    p = tmp / "embeddings-policy.yaml"
    p.write_text(yaml.safe_dump(d, sort_keys=False))
    return p


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--policies", default="classifier,embeddings")
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--levels", default="1,16,64")
    args = ap.parse_args()
    levels = [int(x) for x in args.levels.split(",")]
    tmp = Path(tempfile.mkdtemp(prefix="pg-cproxy-"))
    upstream, up = start_upstream(tmp)
    results: dict = {"machine": {"cpus": os.cpu_count(), "loadavg_start": os.getloadavg()}, "runs": []}
    try:
        base = baseline(up, levels, args.requests)
        for pol in [p for p in args.policies.split(",") if p]:
            proxy, port = start_proxy(up, policy_file(pol, tmp), tmp, pol)
            try:
                pbase = f"http://127.0.0.1:{port}/v1"
                asyncio.run(run_level(pbase, 4, 40, False, 20_000_000))
                for c in levels:
                    n = args.requests * (2 if c >= 64 else 1)
                    row = asyncio.run(run_level(pbase, c, n, False, 1_000_000 * c))
                    results["runs"].append(added_row(pol, row, base[c]))
                m = httpx.get(f"http://127.0.0.1:{port}/metrics").text
                results.setdefault("detector_seconds", {})[pol] = _detector_means(m)
            finally:
                stop(proxy)
    finally:
        stop(upstream)
    results["machine"]["loadavg_end"] = os.getloadavg()
    print(f"machine: {results['machine']['cpus']} CPUs, load average {results['machine']['loadavg_start'][0]:.1f} at start, "
          f"{results['machine']['loadavg_end'][0]:.1f} at end")
    hdr = (f"{'policy':11} {'conc':>4} {'n':>5} {'err':>4} {'p50 ms':>8} {'p99 ms':>8} {'up p50':>7} {'up p99':>7} "
           f"{'+p50':>7} {'+p99':>7} {'req/s':>7} {'up req/s':>8}")
    print(hdr)
    print("-" * len(hdr))
    for r in results["runs"]:
        print(f"{r['policy']:11} {r['concurrency']:>4} {r['n']:>5} {r['errors']:>4} {r['p50_ms']:>8.1f} {r['p99_ms']:>8.1f} "
              f"{r['upstream_p50_ms']:>7.1f} {r['upstream_p99_ms']:>7.1f} {r['added_p50_ms']:>7.1f} {r['added_p99_ms']:>7.1f} "
              f"{r['rps']:>7.1f} {r['upstream_rps']:>8.1f}")
    for pol, d in results.get("detector_seconds", {}).items():
        print(f"mean detector time ({pol}): " + ", ".join(f"{k} {v:.2f} ms" for k, v in sorted(d.items())))
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "classifier_proxy.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
