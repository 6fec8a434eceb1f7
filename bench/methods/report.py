"""The training methods side by side: markdown tables from bench/methods' results.

  python3 bench/methods/report.py [-o bench/methods/results.md]

Reads results-toy.jsonl (from `xtask methods-toy`, run by run.sh) and results-gcd-ood.json
(bench/ood/run.py with --method gcd), and the stored default-method run of bench/ood
(results-ddaebm-a.json, results-ddaebm-b.json) for the same tasks and seed. Standard library only.
"""

import argparse
import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
OOD = HERE.parent / "ood"


def toy_table(lines):
    """One row per (data, sampler, τ): the τ = 0 runs repeat the data and DDPM lines."""
    out = ["| data | sampler | τ | modes | within 3σ | sliced W1 to held-out data | energy AUROC, data vs between modes | training s |",
           "|---|---|---:|---:|---:|---:|---:|---:|"]
    seen = set()
    for r in sorted(lines, key=lambda r: (r["toy"] != "8 Gaussians", ORDER.index(r["sampler"].split("-")[0]), -r.get("tau", 0))):
        key = (r["toy"], r["sampler"], r.get("tau"))
        if key in seen:
            continue
        seen.add(key)
        if r["sampler"] == "data":
            out.append(f"| {r['toy']} | held-out data (reference) | | {r['modes']} | {r['within_3_sigma']:.3f} "
                       f"| {r['sliced_w1']:.4f} | {r['oracle_energy_auroc']:.4f} (true density) | |")
            continue
        tau = "" if "tau" not in r else f"{r['tau']:g}"
        auroc = f"{r['energy_auroc']:.4f}" if "energy_auroc" in r else ""
        out.append(f"| {r['toy']} | {r['sampler']} | {tau} | {r['modes']}/{r['of']} | {r['within_3_sigma']:.3f} "
                   f"| {r['sliced_w1']:.4f} | {auroc} | {r.get('seconds', 0):.0f} |")
    return out


ORDER = ["data", "ddpm", "gcd", "ddaebm"]


def ood_rows(path, detector, seed=0):
    if not path.is_file():
        return {}
    rows = json.loads(path.read_text())["results"]
    return {r["task"]: r for r in rows if r["detector"] == detector and r["seed"] == seed and "error" not in r}


def ood_table(gcd, default):
    out = ["| task | d | GCD AUROC | default (DDAEBM) AUROC | better | GCD fit s | default fit s |",
           "|---|---:|---:|---:|---|---:|---:|"]
    tasks = sorted(set(gcd) & set(default))
    for t in tasks:
        g, d = gcd[t], default[t]
        better = "GCD" if g["auroc"] > d["auroc"] + 5e-4 else ("default" if d["auroc"] > g["auroc"] + 5e-4 else "tie")
        out.append(f"| {t} | {g['d']} | {g['auroc']:.4f} | {d['auroc']:.4f} | {better} | {g['fit_s']:.0f} | {d['fit_s']:.0f} |")
    if tasks:
        mg = sum(gcd[t]["auroc"] for t in tasks) / len(tasks)
        md = sum(default[t]["auroc"] for t in tasks) / len(tasks)
        out.append(f"| **mean** ({len(tasks)} tasks) | | **{mg:.4f}** | **{md:.4f}** | | | |")
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-o", "--out", type=Path, default=HERE / "results.md")
    args = ap.parse_args()
    toy = [json.loads(l) for l in (HERE / "results-toy.jsonl").read_text().splitlines() if l.strip()]
    gcd = ood_rows(HERE / "results-gcd-ood.json", "ddaebm-gcd")
    default = {}
    for name in ("results-ddaebm-a.json", "results-ddaebm-b.json"):
        default.update(ood_rows(OOD / name, "ddaebm"))
    text = ["## Samplers and energies on 2-D data (seed 0)", ""] + toy_table(toy)
    text += ["", "## GCD as a detector (bench/ood tasks, seed 0)", ""] + ood_table(gcd, default)
    args.out.write_text("\n".join(text) + "\n")
    print("\n".join(text))


if __name__ == "__main__":
    main()
