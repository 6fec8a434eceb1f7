"""The level-0 energy of a ddaebm model file in plain numpy (no ddaebm code): the reference of
bench/scoring/throughput.py and the decomposition bench/ood/correction.py reports."""
from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np


def read_safetensors(path: Path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Every f32 tensor of a .safetensors file, and its __metadata__."""
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    meta = header.pop("__metadata__", {})
    base = 8 + n
    tensors = {}
    for name, info in header.items():
        assert info["dtype"] == "F32", (name, info["dtype"])
        lo, hi = info["data_offsets"]
        tensors[name] = np.frombuffer(raw[base + lo:base + hi], dtype="<f4").reshape(info["shape"])
    return tensors, meta


class NumpyEnergy:
    """The level-0 energy E(x) = -f(x, 0) of docs/method.md (networks) plus ddaebm's base measure and soft clip,
    written the way one would in numpy: float32, pre-transposed weights, the level-0 t-branch
    computed once."""

    def __init__(self, path: Path):
        t, meta = read_safetensors(path)
        m = json.loads(meta["ddaebm"])
        net = m["network"]
        self.mean = np.asarray(m["normalization"]["mean"], np.float32)
        self.inv_std = (1.0 / np.asarray(m["normalization"]["std"], np.float32)).astype(np.float32)
        self.clip = float(net.get("input_soft_clip", 0.0))
        s = float(net.get("base_std", 0.0))
        self.base = np.float32(0.5 / s**2) if s > 0 else None
        # Mixture base measure at level 0: log p(x) = logsumexp_j(c_j + x²·(−½/v_j) + x·(μ_j/v_j)).
        self.mixture = None
        if net.get("base_components", 0) > 0:
            lw = t["energy.base.log_weights"].astype(np.float64)
            mu = t["energy.base.means"][0].astype(np.float64)
            var = t["energy.base.variances"][0].astype(np.float64)
            c = lw - 0.5 * (np.log(2 * np.pi * var) + mu**2 / var).sum(1)
            if (var == var[:, :1]).all():
                # Spherical components (what the trainer fits): x²·(−½/v_j) is ‖x‖²·(−½/v_j), and
                # the product only needs x·(μ_j/v_j), as ddaebm computes it.
                w, q = (mu / var).T, -0.5 / var[:, 0]
            else:
                w, q = np.concatenate([(-0.5 / var).T, (mu / var).T]), None
            self.mixture = (np.ascontiguousarray(w.astype(np.float32)), c.astype(np.float32),
                            None if q is None else q.astype(np.float32))

        def mlp(prefix: str, n: int):
            layers = []
            for i in range(n):
                w = np.ascontiguousarray(t[f"{prefix}.linear{i}.weight"].T)
                b = t[f"{prefix}.linear{i}.bias"]
                a = t.get(f"{prefix}.act{i}.weight")
                layers.append((w, b, None if a is None else np.float32(np.clip(a[0], 0, 1))))
            return layers

        nb, nh = len(net["branch_widths"]), len(net["head_widths"]) + 1
        self.x_branch = mlp("energy.x_branch", nb)
        t_branch = mlp("energy.t_branch", nb)
        half = net["time_embed_dim"] // 2
        emb0 = np.concatenate([np.zeros(half), np.ones(half), np.zeros(net["time_embed_dim"] - 2 * half)])
        self.ht = self._run(t_branch, emb0.astype(np.float32)[None, :])
        head = mlp("energy.head", nh)
        # The head's first layer splits into an x part and a constant t part.
        w0, b0, a0 = head[0]
        bx = self.x_branch[-1][0].shape[1]
        self.head_x = (np.ascontiguousarray(w0[:bx]), (b0 + self.ht @ w0[bx:]).ravel().astype(np.float32), a0)
        self.head_rest = head[1:]

    @staticmethod
    def _run(layers, h):
        for w, b, a in layers:
            h = h @ w + b
            if a is not None:
                h = np.maximum(h, a * h)
        return h

    def __call__(self, x: np.ndarray) -> np.ndarray:
        correction, log_base = self.parts(x)
        return -(correction + log_base)

    def parts(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The two terms of f(x, 0) = correction + log base: the MLP's learned log-ratio and the
        base measure's (unnormalised, for the isotropic base) log-density. E(x) = -(sum)."""
        xn = (x - self.mean) * self.inv_std
        u = xn / np.sqrt(1 + (xn / self.clip) ** 2) if self.clip > 0 else xn
        h = self._run(self.x_branch, u)
        h = self._run([self.head_x] + self.head_rest, h)
        log_base = np.zeros(len(x), np.float32)
        if self.base is not None:
            log_base = log_base - self.base * np.einsum("ij,ij->i", xn, xn)
        if self.mixture is not None:
            w, c, q = self.mixture
            if q is None:
                logits = np.concatenate([xn * xn, xn], axis=1) @ w + c
            else:
                logits = xn @ w + (c + np.einsum("ij,ij->i", xn, xn)[:, None] * q)
            top = logits.max(1)
            log_base = log_base + top + np.log(np.exp(logits - top[:, None]).sum(1))
        return h[:, 0], log_base
