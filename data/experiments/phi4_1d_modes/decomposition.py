"""What the tilted 1D phi4 chain's "+" mode is made of (exploration, numpy).

A transfer-operator sweep (trapezoid on every site, spacing sigma_K/4, so the
log ratios agree with the Rust oracle only to ~0.07) that fixes the sign of
the middle site (index 49) and of one more site q, and prints, for each tilt b,
P(phi_q < 0 | phi_m > 0) for q = 5, 15, 25, 40 and E[phi_m | phi_m > 0].

Run: python3 decomposition.py   (needs numpy)
"""
import numpy as np

N, a, beta = 100, 0.1, 20.0
an = a * N
c = 0.5 * beta * an
h = (1 / np.sqrt(beta * an)) / 4
v = np.arange(-3.0, 3.0 + h / 2, h)
K = h * np.exp(-c * (v[:, None] - v[None, :]) ** 2)
m = 49


def sweep(b):
    lw = -beta * (0.25 * (1 - v * v) ** 2 + b * v) / an
    w = np.exp(lw - lw.max())
    left = []
    f = np.exp(-c * v * v)
    for _ in range(N):
        left.append(f)
        f = (f * w) @ K
        f = f / f.max()
    right = [None] * N
    f = np.exp(-c * v * v)
    for i in range(N - 1, -1, -1):
        right[i] = f
        f = K @ (f * w)
        f = f / f.max()
    return w, left, right


for b in [0.0, 0.025, 0.05, 0.075, 0.1]:
    w, left, right = sweep(b)
    dens = left[m] * w * right[m]
    pos = v > 0
    row = [f"b = {b}: log(w+/w-) ~ {np.log(dens[pos].sum() / dens[~pos].sum()):.3f}"]
    for q in [5, 15, 25, 40]:
        M = np.diag(left[q] * w)
        for k in range(m - q):
            M = M @ K
            if k < m - q - 1:
                M = M * w[None, :]
            M /= M.max()
        J = M * (w * right[m])[None, :]
        pp, pn = J[np.ix_(v > 0, pos)].sum(), J[np.ix_(v < 0, pos)].sum()
        row.append(f"P(phi_{q} < 0 | phi_m > 0) = {pn / (pp + pn):.3g}")
    dp = dens[pos] / dens[pos].sum()
    row.append(f"E[phi_m | phi_m > 0] = {(v[pos] * dp).sum():.3f}")
    print("; ".join(row))

# The weight the phase decomposition leaves out: sites N/4 and 3N/4 (indices
# 25, 75) of opposite signs, per sign of the middle site.
print()
for b in [0.0, 0.025, 0.05, 0.075, 0.1]:
    lw = -beta * (0.25 * (1 - v * v) ** 2 + b * v) / an
    w = np.exp(lw - lw.max())
    masks = {"-": v < 0, "+": v > 0}
    out = {}
    for s25 in "-+":
        for sm in "-+":
            for s75 in "-+":
                f = np.exp(-c * v * v)
                log_s = 0.0
                for i in range(N):
                    g = f * w
                    if i == 25:
                        g = g * masks[s25]
                    if i == m:
                        g = g * masks[sm]
                    if i == 75:
                        g = g * masks[s75]
                    if i == N - 1:
                        f = g * np.exp(-c * v * v)
                        break
                    f = g @ K
                    p = f.max()
                    f = f / p
                    log_s += np.log(p)
                out[s25 + sm + s75] = np.log(f.sum()) + log_s
    def lse(keys):
        x = np.array([out[k] for k in keys])
        return x.max() + np.log(np.exp(x - x.max()).sum())
    plus = lse([k for k in out if k[1] == "+"])
    minus = lse([k for k in out if k[1] == "-"])
    mixed_plus = lse([k for k in out if k[1] == "+" and k[0] != k[2]])
    mixed_minus = lse([k for k in out if k[1] == "-" and k[0] != k[2]])
    print(f"b = {b}: log P(mixed | phi_m > 0) = {mixed_plus - plus:.2f}, log P(mixed | phi_m < 0) = {mixed_minus - minus:.2f}")
