"""Is a Gaussian (Laplace) proposal per phase good enough for the tilted 1D phi^4
chain (N = 100, a = 0.1, beta = 20), where the trained flows are not (ESS ~ 0.003)?

Per phase (sign s = +1, -1): minimize u = beta U from phi = s (Newton on the
tridiagonal Hessian), then draw phi ~ N(phi*, H^-1) and importance-weight by
p~/q. Prints, per phase and tilt b: ESS/N, KL(q || p), the log Z_phase estimate and the
weighted share of samples with the middle site >= 0 (the benchmark's mode
label), then log Z+ - log Z- as the estimate of log(w+/w-) against the transfer-
operator values quoted in docs/RESULTS.md. Seconds.
Usage: python3 laplace.py [N_SAMPLES] [SEED]  (needs numpy: e.g. target/peers/bin/python,
the flowMC venv of `cargo xtask reproduce modes --peers`); outputs laplace_s1.txt, laplace_s2.txt
"""
import sys
import numpy as np

N, A, BETA = 100, 0.1, 20.0
EXACT = {0.0: 0.0, 0.025: -7.7917, 0.05: -15.5665, 0.075: -22.0269, 0.1: -23.4009}
MID = (N - 1) // 2


def energy(phi, b):
    """beta U for rows of phi (Dirichlet ends phi_0 = phi_{N+1} = 0)."""
    p = np.pad(phi, [(0, 0), (1, 1)])
    grad = (A * N / 2) * np.sum(np.diff(p, axis=1) ** 2, axis=1)
    pot = np.sum((1 - phi**2) ** 2 / 4 + b * phi, axis=1) / (A * N)
    return BETA * (grad + pot)


def gradient_and_hessian(phi, b):
    p = np.pad(phi, 1)
    g = BETA * (A * N * (2 * phi - p[:-2] - p[2:]) + (phi**3 - phi + b) / (A * N))
    diag = BETA * (2 * A * N + (3 * phi**2 - 1) / (A * N))
    off = -BETA * A * N * np.ones(N - 1)
    H = np.diag(diag) + np.diag(off, 1) + np.diag(off, -1)
    return g, H


def phase_minimum(sign, b):
    phi = sign * np.ones(N)
    for _ in range(100):
        g, H = gradient_and_hessian(phi, b)
        step = np.linalg.solve(H, g)
        phi -= step
        if np.max(np.abs(step)) < 1e-13:
            break
    return phi, gradient_and_hessian(phi, b)[1]


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
    rng = np.random.default_rng(int(sys.argv[2]) if len(sys.argv) > 2 else 1)
    for b, exact in EXACT.items():
        parts = []
        for sign in (+1, -1):
            mu, H = phase_minimum(sign, b)
            if np.sign(mu[MID]) != sign:
                print(f"b = {b}: no {sign:+d} phase minimum (Newton went to the other phase)")
                parts.append(None)
                continue
            L = np.linalg.cholesky(H)  # H = L L^T, x = mu + L^-T z
            z = rng.standard_normal((n, N))
            x = mu + np.linalg.solve(L.T, z.T).T
            log_q = -0.5 * np.sum(z**2, axis=1) + np.sum(np.log(np.diag(L))) - 0.5 * N * np.log(2 * np.pi)
            log_w = -energy(x, b) - log_q
            m = log_w.max()
            w = np.exp(log_w - m)
            log_z = m + np.log(w.mean())
            ess = w.sum() ** 2 / (w**2).sum() / n
            # Error of log Z from the weights' relative standard error.
            err = w.std() / w.mean() / np.sqrt(n)
            plus = np.sum(w * (x[:, MID] >= 0)) / w.sum()
            parts.append((log_z, err, plus))
            kl = log_z - log_w.mean()  # KL(q || p restricted to the phase)
            print(f"b = {b:5.3f} phase {sign:+d}: ESS/N {ess:.3f}, KL(q||p) {kl:.3f}, log Z_phase {log_z:.4f} ± {err:.4f}, "
                  f"share of middle >= 0 {plus:.6f}")
        if all(parts):
            (zp, ep, _), (zm, em, _) = parts
            est, e = zp - zm, np.hypot(ep, em)
            print(f"b = {b:5.3f}: log Z+ - log Z- = {est:.4f} ± {e:.4f}   exact log(w+/w-) {exact:.4f}"
                  f"   ({(est - exact) / e:+.1f}σ)")


if __name__ == "__main__":
    main()
