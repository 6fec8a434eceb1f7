"""The training methods side by side: markdown tables from bench/methods' results.

  python3 bench/methods/report.py [-o bench/methods/results.md]

Reads results-toy.jsonl (from `xtask methods-toy`, run by run.sh) and results-gcd-ood.json
(bench/ood/run.py with --method gcd), the DCD parts (results-dcd-toy.jsonl,
results-dcd-ablation.jsonl, results-dcd-digits.jsonl, results-dcd-ood.json) where present, and
the stored default-method run of bench/ood (results-ddaebm-a.json, results-ddaebm-b.json) for
the same tasks and seed. Standard library only.
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


def ood_table(gcd, default, name="GCD"):
    out = [f"| task | d | {name} AUROC | default (DDAEBM) AUROC | better | {name} fit s | default fit s |",
           "|---|---:|---:|---:|---|---:|---:|"]
    tasks = sorted(set(gcd) & set(default))
    for t in tasks:
        g, d = gcd[t], default[t]
        better = name if g["auroc"] > d["auroc"] + 5e-4 else ("default" if d["auroc"] > g["auroc"] + 5e-4 else "tie")
        out.append(f"| {t} | {g['d']} | {g['auroc']:.4f} | {d['auroc']:.4f} | {better} | {g['fit_s']:.0f} | {d['fit_s']:.0f} |")
    if tasks:
        mg = sum(gcd[t]["auroc"] for t in tasks) / len(tasks)
        md = sum(default[t]["auroc"] for t in tasks) / len(tasks)
        out.append(f"| **mean** ({len(tasks)} tasks) | | **{mg:.4f}** | **{md:.4f}** | | | |")
    return out


def jsonl(name):
    path = HERE / name
    if not path.is_file():
        return []
    return [json.loads(l) for l in path.read_text().splitlines() if l.strip()]


def dcd_toy_table(lines):
    """DCD against short-run CD: one row per (data, base, method), the data line first."""
    out = ["| data | energy base | method | modes | within 3σ | sliced W1 | energy AUROC, data vs between modes | training s |",
           "|---|---|---|---:|---:|---:|---:|---:|"]
    seen = set()
    order = {"data": 0, "dcd": 1, "short": 2}
    for r in sorted(lines, key=lambda r: (r["toy"] != "8 Gaussians", r["sampler"] != "data",
                                          r.get("base", "") != "mixture", order[r["sampler"].split("-")[0]])):
        key = (r["toy"], r["sampler"], r.get("base"))
        if key in seen:
            continue
        seen.add(key)
        if r["sampler"] == "data":
            out.append(f"| {r['toy']} | | held-out data (reference) | {r['modes']} | {r['within_3_sigma']:.3f} "
                       f"| {r['sliced_w1']:.4f} | {r['oracle_energy_auroc']:.4f} (true density) | |")
            continue
        base = {"mixture": "mixture (default)", "iso": "isotropic Gaussian"}[r["base"]]
        method = "**DCD**" if r["sampler"].startswith("dcd") else "short-run CD"
        out.append(f"| {r['toy']} | {base} | {method} | {r['modes']}/{r['of']} | {r['within_3_sigma']:.3f} "
                   f"| {r['sliced_w1']:.4f} | {r['energy_auroc']:.4f} | {r['seconds']:.0f} |")
    return out


def dcd_ablation_table(lines):
    out = ["| K (steps per chain) | c (step scale) | modes | within 3σ | sliced W1 | energy AUROC | training s |",
           "|---:|---:|---:|---:|---:|---:|---:|"]
    rows = [r for r in lines if r["sampler"] != "data"]
    for r in sorted(rows, key=lambda r: (r["langevin_steps"], r["step_scale"])):
        out.append(f"| {r['langevin_steps']} | {r['step_scale']:g} | {r['modes']}/{r['of']} | {r['within_3_sigma']:.3f} "
                   f"| {r['sliced_w1']:.4f} | {r['energy_auroc']:.4f} | {r['seconds']:.0f} |")
    return out


def dcd_digits_tables(lines):
    """Near/far-OOD and denoising tables, one block of rows per energy base."""
    names = {"dcd": "**DCD**", "short-run-cd": "short-run CD", "ddaebm": "default (DDAEBM)"}
    bases = {"mixture": "mixture (default)", "iso": "isotropic Gaussian"}
    ood = ["| energy base | method | AUROC 5–9 (near) | AUROC uniform noise | AUROC inverted | fit s |",
           "|---|---|---:|---:|---:|---:|"]
    for r in lines:
        ood.append(f"| {bases[r.get('base', 'mixture')]} | {names[r['method']]} | {r['auroc_near_5_9']:.4f} "
                   f"| {r['auroc_uniform_noise']:.4f} | {r['auroc_inverted']:.4f} | {r['fit_seconds']:.0f} |")
    methods = list(dict.fromkeys(r["method"] for r in lines))
    den = ["| energy base | noise σ | noisy input | " + " | ".join(names[m] for m in methods) + " | best (ties within 0.05 dB) |",
           "|---|---:|---:|" + "---:|" * len(methods) + "---|"]
    for base in dict.fromkeys(r.get("base", "mixture") for r in lines):
        by = {r["method"]: r for r in lines if r.get("base", "mixture") == base}
        first = next(iter(by.values()))
        for i, x in enumerate(first["denoising"]):
            noisy = x["psnr_noisy"]
            vals = {m: by[m]["denoising"][i]["psnr_denoised"] for m in methods if m in by}
            top = max(vals.values())
            best = [names[m].strip("*") for m, v in vals.items() if v >= top - 0.05]
            verdict = " = ".join(best) + (" (none beats the input)" if top < noisy else "")
            den.append(f"| {bases[base]} | {x['sigma']:g} | {noisy:.2f} | "
                       + " | ".join(f"{vals[m]:.2f}" if m in vals else "" for m in methods) + f" | {verdict} |")
    return ood, den


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
    dcd_toy = jsonl("results-dcd-toy.jsonl")
    if dcd_toy:
        text += ["", "## DCD and short-run CD on 2-D data (seed 0, same settings and budget)", ""]
        text += dcd_toy_table(dcd_toy)
    ablation = jsonl("results-dcd-ablation.jsonl")
    if ablation:
        text += ["", "## DCD: chain length K and step scale c (8 Gaussians, 1000 iterations, seed 0)", ""]
        text += dcd_ablation_table(ablation)
    digits = jsonl("results-dcd-digits.jsonl")
    if digits:
        ood, den = dcd_digits_tables(digits)
        text += ["", "## Digits as 64-feature vectors: near/far OOD (seed 0)", ""] + ood
        text += ["", "## Digits: denoising PSNR in dB (held-out digits 0–4, seed 0)", ""] + den
    dcd = ood_rows(HERE / "results-dcd-ood.json", "ddaebm-dcd")
    if dcd:
        text += ["", "## DCD as a detector (bench/ood tasks, seed 0)", ""] + ood_table(dcd, default, "DCD")
    args.out.write_text("\n".join(text) + "\n")
    print("\n".join(text))


if __name__ == "__main__":
    main()
