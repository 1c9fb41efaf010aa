"""Proxy overhead: latency of proxy+upstream against the upstream alone.

    .venv/bin/python benchmarks/proxy_overhead.py [--policy rules|full|both] [--requests 200]
                                                  [--api chat|responses|bridge]

The upstream is the FAKE upstream of tests/proxy/fake_upstream.py (an echo that
answers in well under a millisecond), so what is measured is the proxy's own cost:
parsing, the detectors of the policy, forwarding, the answer check and the audit
record. Upstream, proxy (one worker, `promptguard serve`) and this load generator
are separate processes on the same machine, so on a 2-core box they compete for
the CPU: the numbers are an upper bound on the overhead of a deployment that gives
the proxy its own cores. Each request has a different prompt (no cache hits).

`--api responses` sends the same prompts as Responses API requests (`instructions`,
`input`) to the proxy's `/v1/responses` and, for the baseline, to the fake's own
`/v1/responses`; `--api bridge` sends them to the proxy's `/v1/responses` with
`responses_api: bridge` (translated to chat completions) against the fake's chat
completions as the baseline.

Prints a table; writes benchmarks/out/proxy_overhead[_<api>].json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "out"
sys.path.insert(0, str(ROOT))

TOPICS = ["the French revolution", "photosynthesis", "a binary search", "tax on dividends", "the Rhine",
          "sourdough bread", "TCP slow start", "the Pythagorean theorem", "a haiku about rain", "Kepler's laws"]
SYSTEM = "You are a helpful assistant for a bookshop. Answer briefly and politely."


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def prompt(i: int) -> list[dict]:
    rnd = random.Random(i)
    t = rnd.choice(TOPICS)
    q = f"Request {i}: could you explain {t} in {rnd.randint(2, 9)} sentences for a reader aged {rnd.randint(9, 80)}?"
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": q}]


def wait_ready(url: str, proc: subprocess.Popen, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{url}: process exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise SystemExit(f"{url} not ready after {timeout}s")


def start(cmd: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    with open(log, "ab") as fh:
        return subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, start_new_session=True)


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def request(api: str, i: int, stream: bool) -> tuple[str, dict]:
    """(path, body) of request `i` in the API's shape."""
    if api == "chat":
        return "/chat/completions", {"model": "fake-echo", "messages": prompt(i), "max_tokens": 64, "stream": stream}
    system, user = prompt(i)
    return "/responses", {"model": "fake-echo", "instructions": system["content"], "input": user["content"],
                          "max_output_tokens": 64, "stream": stream}


def complete(path: str, stream: bool, status: int, data: bytes) -> bool:
    """Did a whole answer arrive?"""
    if status != 200:
        return False
    if stream:
        return data.rstrip().endswith(b"data: [DONE]") if path == "/chat/completions" else b"response.completed" in data
    d = json.loads(data)
    if path == "/chat/completions":
        return bool(d["choices"][0]["message"]["content"])
    return any(p.get("text") for o in d["output"] if o["type"] == "message" for p in o["content"])


async def run_level(base: str, concurrency: int, n: int, stream: bool, offset: int, api: str = "chat") -> dict:
    lat: list[float] = []
    errors = 0
    kinds: dict[str, int] = {}
    blocked = 0  # answered 400 promptguard_blocked: a decision, not an error (but no upstream call)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        queue = list(range(offset, offset + n))

        async def worker() -> None:
            nonlocal errors, blocked
            while queue:
                i = queue.pop()
                path, body = request(api, i, stream)
                t0 = time.perf_counter()
                try:
                    if stream:
                        async with client.stream("POST", base + path, json=body) as r:
                            data = b"".join([c async for c in r.aiter_bytes()])
                    else:
                        r = await client.post(base + path, json=body)
                        data = r.content
                    ok = complete(path, stream, r.status_code, data)
                    if not ok and r.status_code == 400 and b"promptguard_blocked" in data:
                        blocked += 1
                        ok = True
                except httpx.HTTPError as e:
                    ok = False
                    kinds[type(e).__name__] = kinds.get(type(e).__name__, 0) + 1
                else:
                    if not ok:
                        why = f"status {r.status_code}" + ("" if r.status_code != 200 else " incomplete")
                        kinds[why] = kinds.get(why, 0) + 1
                lat.append(time.perf_counter() - t0)
                errors += not ok

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - t0
    lat.sort()
    q = statistics.quantiles(lat, n=100, method="inclusive")
    return {"n": n, "concurrency": concurrency, "stream": stream, "errors": errors, "error_kinds": kinds, "blocked": blocked,
            "p50_ms": q[49] * 1000, "p99_ms": q[98] * 1000, "rps": n / wall}


def start_upstream(tmp: Path) -> tuple[subprocess.Popen, str]:
    """The fake upstream (tests/proxy/fake_upstream.py) in a child process, ready; its /v1 URL."""
    port = free_port()
    proc = start([sys.executable, "-m", "uvicorn", "--factory", "tests.proxy.fake_upstream:create_fake_upstream",
                  "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning", "--no-access-log"],
                 tmp / "upstream.log", env=dict(os.environ, PYTHONPATH=str(ROOT)))
    url = f"http://127.0.0.1:{port}/v1"
    try:
        wait_ready(url + "/models", proc)
    except BaseException:
        stop(proc)
        raise
    return proc, url


def baseline(up: str, levels: list[int], requests: int, api: str = "chat") -> dict[int, dict]:
    """The upstream alone at each concurrency level (warmed first): what the proxy is compared with."""
    rows = {}
    for c in levels:
        asyncio.run(run_level(up, c, min(50, requests), False, 10_000_000, api))  # warm
        rows[c] = asyncio.run(run_level(up, c, requests * (2 if c >= 64 else 1), False, 0, api))
    return rows


def start_proxy(up: str, policy: Path, tmp: Path, name: str, **env: str) -> tuple[subprocess.Popen, int]:
    """`promptguard serve` in front of `up` with `policy`, one worker, without the caller's
    PROMPTGUARD_* settings (plus `env`), ready; its port."""
    port = free_port()
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("PROMPTGUARD_")}
    child_env.update(HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false", OMP_NUM_THREADS="1",
                     PYTHONPATH=str(ROOT), **env)
    proc = start([sys.executable, "-c", "from promptguard.cli import main; main()", "serve", "--upstream", up,
                  "--port", str(port), "--policy", str(policy), "--store", str(tmp / f"audit-{name}.sqlite"),
                  "--log-level", "warning"], tmp / f"proxy-{name}.log", env=child_env)
    try:
        wait_ready(f"http://127.0.0.1:{port}/readyz", proc)
    except BaseException:
        stop(proc)
        raise
    return proc, port


def added_row(policy: str, row: dict, base: dict) -> dict:
    """A proxy row with the upstream-alone figures of the same level and the differences."""
    return {"policy": policy, **row, "upstream_p50_ms": base["p50_ms"], "upstream_p99_ms": base["p99_ms"],
            "upstream_rps": base["rps"], "added_p50_ms": row["p50_ms"] - base["p50_ms"],
            "added_p99_ms": row["p99_ms"] - base["p99_ms"]}


def policy_file(kind: str, tmp: Path) -> Path:
    if kind == "full":  # the packaged default policy: rules + embeddings + demonstrations
        from promptguard.policy import default_policy_path

        return default_policy_path()
    p = tmp / "rules.yaml"
    p.write_text(f"version: 1\nname: rules-only\ndetectors:\n  rules:\n"
                 f"    rulesets: [{ROOT / 'policies' / 'rules' / 'default.yaml'}]\n")
    return p


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--policy", choices=["rules", "full", "both"], default="both")
    ap.add_argument("--requests", type=int, default=200, help="requests per concurrency level (x2 at 64)")
    ap.add_argument("--levels", default="1,16,64")
    ap.add_argument("--api", choices=["chat", "responses", "bridge"], default="chat",
                    help="chat completions; the Responses API natively; or bridged to chat completions")
    args = ap.parse_args()
    upstream_api = "responses" if args.api == "responses" else "chat"
    proxy_api = "chat" if args.api == "chat" else "responses"
    levels = [int(x) for x in args.levels.split(",")]
    tmp = Path(tempfile.mkdtemp(prefix="pg-bench-"))
    upstream, up = start_upstream(tmp)
    results: dict = {"machine": {"cpus": os.cpu_count(), "loadavg_start": os.getloadavg()}, "api": args.api,
                     "runs": []}
    try:
        policies = ["rules", "full"] if args.policy == "both" else [args.policy]
        base_rows = baseline(up, levels, args.requests, upstream_api)
        for pol in policies:
            proxy, port = start_proxy(up, policy_file(pol, tmp), tmp, pol,
                                      PROMPTGUARD_RESPONSES_API="bridge" if args.api == "bridge" else "native")
            try:
                pbase = f"http://127.0.0.1:{port}/v1"
                asyncio.run(run_level(pbase, 4, 40, False, 20_000_000, proxy_api))  # warm
                for c in levels:
                    n = args.requests * (2 if c >= 64 else 1)
                    row = asyncio.run(run_level(pbase, c, n, False, 1_000_000 * c, proxy_api))
                    results["runs"].append(added_row(pol, row, base_rows[c]))
                srow = asyncio.run(run_level(pbase, 64, args.requests * 2, True, 30_000_000, proxy_api))
                results["runs"].append({"policy": pol, **srow})
                m = httpx.get(f"http://127.0.0.1:{port}/metrics").text
                results.setdefault("detector_seconds", {})[pol] = _detector_means(m)
            finally:
                stop(proxy)
    finally:
        stop(upstream)
    results["machine"]["loadavg_end"] = os.getloadavg()
    results["logs"] = str(tmp)
    _print(results)
    OUT.mkdir(parents=True, exist_ok=True)
    out = OUT / ("proxy_overhead.json" if args.api == "chat" else f"proxy_overhead_{args.api}.json")
    out.write_text(json.dumps(results, indent=2))
    print(f"\nwrote {out}")


def _detector_means(metrics_text: str) -> dict[str, float]:
    sums: dict[str, float] = {}
    counts: dict[str, float] = {}
    for line in metrics_text.splitlines():
        if line.startswith("promptguard_detector_seconds_sum{") or line.startswith("promptguard_detector_seconds_count{"):
            labels, value = line.rsplit(" ", 1)
            det = labels.split('detector="')[1].split('"')[0]
            stage = labels.split('stage="')[1].split('"')[0]
            key = f"{det}/{stage}"
            (sums if "_sum{" in labels else counts)[key] = float(value)
    return {k: round(1000 * sums[k] / counts[k], 3) for k in sums if counts.get(k)}


def _print(results: dict) -> None:
    print(f"api: {results['api']}; machine: {results['machine']['cpus']} CPUs, load average at start "
          f"{results['machine']['loadavg_start'][0]:.1f}, at end {results['machine']['loadavg_end'][0]:.1f}")
    hdr = f"{'policy':7} {'conc':>4} {'mode':6} {'n':>5} {'err':>4} {'blk':>4} {'p50 ms':>8} {'p99 ms':>8} " \
          f"{'up p50':>7} {'up p99':>7} {'+p50':>7} {'+p99':>7} {'req/s':>7} {'up req/s':>8}"
    print(hdr)
    print("-" * len(hdr))
    for r in results["runs"]:
        if r["stream"]:
            print(f"{r['policy']:7} {r['concurrency']:>4} {'stream':6} {r['n']:>5} {r['errors']:>4} {r['blocked']:>4} "
                  f"{r['p50_ms']:>8.1f} {r['p99_ms']:>8.1f} {'':>7} {'':>7} {'':>7} {'':>7} {r['rps']:>7.1f}")
        else:
            print(f"{r['policy']:7} {r['concurrency']:>4} {'json':6} {r['n']:>5} {r['errors']:>4} {r['blocked']:>4} "
                  f"{r['p50_ms']:>8.1f} {r['p99_ms']:>8.1f} {r['upstream_p50_ms']:>7.1f} {r['upstream_p99_ms']:>7.1f} "
                  f"{r['added_p50_ms']:>7.1f} {r['added_p99_ms']:>7.1f} {r['rps']:>7.1f} {r['upstream_rps']:>8.1f}")
    for r in results["runs"]:
        if r["errors"]:
            print(f"errors ({r['policy']}, c={r['concurrency']}, stream={r['stream']}): {r['error_kinds']}")
    for pol, d in results.get("detector_seconds", {}).items():
        print(f"mean detector time ({pol}): " + ", ".join(f"{k} {v:.2f} ms" for k, v in sorted(d.items())))


if __name__ == "__main__":
    main()
