"""The level-0 energy of a ddaebm model file as a PyTorch module, built from the same weights as
bench/numpy_energy.py: what a team serving the network with PyTorch would run. Used by
bench/scoring/throughput.py (eager, and torch.compile where it works)."""
from __future__ import annotations

import numpy as np
import torch

from numpy_energy import NumpyEnergy


class TorchEnergy(torch.nn.Module):
    """E(x) = -(g(u, 0) + log base(x)), float32, inference only."""

    def __init__(self, ref: NumpyEnergy):
        super().__init__()
        t = lambda a: torch.from_numpy(np.array(a, dtype=np.float32, copy=True))  # noqa: E731
        self.mean, self.inv_std = t(ref.mean), t(ref.inv_std)
        self.clip = ref.clip
        self.base = None if ref.base is None else float(ref.base)
        layers = ref.x_branch + [ref.head_x] + ref.head_rest
        self.weights = [t(w) for w, _, _ in layers]
        self.biases = [t(b) for _, b, _ in layers]
        self.slopes = [None if a is None else float(a) for _, _, a in layers]
        self.mixture = None
        if ref.mixture is not None:
            w, c, q = ref.mixture
            self.mixture = (t(w), t(c), None if q is None else t(q))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xn = (x - self.mean) * self.inv_std
        h = xn / torch.sqrt(1 + (xn / self.clip) ** 2) if self.clip > 0 else xn
        for w, b, a in zip(self.weights, self.biases, self.slopes):
            h = torch.addmm(b, h, w)
            if a is not None:
                h = torch.nn.functional.leaky_relu(h, a)
        energy = -h[:, 0]
        if self.base is not None:
            energy = energy + self.base * (xn * xn).sum(1)
        if self.mixture is not None:
            w, c, q = self.mixture
            if q is None:
                logits = torch.cat([xn * xn, xn], 1) @ w + c
            else:
                logits = torch.addmm(c + (xn * xn).sum(1, keepdim=True) * q, xn, w)
            energy = energy - torch.logsumexp(logits, 1)
        return energy
