"""A dual-cone projector for UPGrad that needs only scipy (a polytask dependency).

torchjd's default projector solves its quadratic program with ``quadprog`` (the extra
``torchjd[quadprog_projector]``), which polytask does not install. The program is small (one
variable per task) and has only lower bounds, so scipy's bounded-variable least squares solves
it exactly; using it everywhere keeps results independent of which extras are installed.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import lsq_linear
from torchjd.linalg import DualConeProjector


class LeastSquaresProjector(DualConeProjector):
    r"""For each row u of ``U``, the w = argmin_v vᵀGv subject to v ≥ u (Proposition 1 of Quinton
    & Rey 2024, "Jacobian Descent for Multi-Objective Optimization"). With G = LLᵀ (Cholesky)
    vᵀGv = ‖Lᵀv‖², a least-squares problem with lower bounds (BVLS, Stark & Parker 1995).

    Like torchjd's quadprog projector, G is first divided by its trace and ``reg_eps``·I is added,
    so that the Cholesky factor exists even for linearly dependent task gradients.
    """

    def __init__(self, norm_eps: float = 1e-4, reg_eps: float = 1e-4) -> None:
        self.norm_eps = norm_eps
        self.reg_eps = reg_eps

    def __call__(self, U: torch.Tensor, G: torch.Tensor) -> torch.Tensor:
        gramian = G.detach().cpu().double().numpy()
        m = gramian.shape[0]
        trace = float(np.trace(gramian))
        gramian = gramian / trace if trace >= self.norm_eps else np.zeros_like(gramian)
        factor = np.linalg.cholesky(gramian + self.reg_eps * np.eye(m)).T
        rows = U.detach().cpu().double().numpy().reshape(-1, m)
        solved = [lsq_linear(factor, np.zeros(m), bounds=(u, np.inf), method="bvls").x for u in rows]
        return torch.as_tensor(np.stack(solved).reshape(U.shape), device=G.device, dtype=G.dtype)
