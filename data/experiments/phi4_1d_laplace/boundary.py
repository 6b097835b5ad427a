"""The tilted 1D phi^4 chain by importance sampling with Gaussians only (no flows):
the two phases' Laplace Gaussians (laplace.py), then a third on the mode
boundary phi_49 = 0 (Newton with the middle site pinned, from the heavier
phase; the precision of phi_49 given the rest replaced by |Schur complement|),
all three drawn alike (balance heuristic). Prints log(w+/w-) with both
proposals against the transfer operator, per tilt b: the two phases alone
are off by 70-370 sigma at b >= 0.075, the three within ~1 sigma everywhere.
Usage: python3 boundary.py [N_SAMPLES per component] (numpy; output: boundary.txt)
"""
import os
import sys
import numpy as np
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from laplace import energy, gradient_and_hessian, phase_minimum, EXACT, N, MID

def pinned_minimum(b, start, value=0.0):
    phi = start.copy(); phi[MID] = value
    free = np.arange(N) != MID
    for _ in range(200):
        g, H = gradient_and_hessian(phi, b)
        step = np.linalg.solve(H[np.ix_(free, free)], g[free])
        phi[free] -= step
        if np.max(np.abs(step)) < 1e-13: break
    return phi, gradient_and_hessian(phi, b)[1]

def gauss(mu, H):
    ev, V = np.linalg.eigh(H)
    if ev[0] < 0: print(f"   negative eigenvalues {ev[ev<0]}, next {ev[ev>0][:2]}")
    H = (V * np.abs(ev)) @ V.T
    L = np.linalg.cholesky(H)
    return mu, L

def draw(rng, comp, n):
    mu, L = comp
    z = rng.standard_normal((n, N))
    return mu + np.linalg.solve(L.T, z.T).T

def logq(comp, x):
    mu, L = comp
    z = (x - mu) @ L   # z = L^T (x - mu)  -> row form (x-mu) L
    return -0.5*np.sum(z**2,1) + np.sum(np.log(np.diag(L))) - 0.5*N*np.log(2*np.pi)

n = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
rng = np.random.default_rng(1)
for b, exact in EXACT.items():
    comps = []
    for s in (+1, -1):
        mu, H = phase_minimum(s, b)
        comps.append(gauss(mu, H))
    # majority phase: lower energy
    maj = min(comps, key=lambda c: energy(c[0][None], b)[0])
    pm, Hp = pinned_minimum(b, maj[0])
    free = np.arange(N) != MID
    hm = Hp[free, MID]
    schur = Hp[MID, MID] - hm @ np.linalg.solve(Hp[np.ix_(free, free)], hm)
    Hs = Hp.copy(); Hs[MID, MID] += abs(schur) - schur
    print(f"   schur {schur:.4f}")
    comps.append((pm, np.linalg.cholesky(Hs)))
    print(f"b={b}: pinned min energy {energy(pm[None],b)[0]:.3f}, phases {[round(energy(c[0][None],b)[0],3) for c in comps[:2]]}, pinned profile mid+-5 {np.round(pm[MID-5:MID+6],2)}")
    for use in ([0,1],[0,1,2]):
        xs = np.concatenate([draw(rng, comps[k], n) for k in use])
        lq = np.logaddexp.reduce(np.stack([logq(comps[k], xs) for k in use]), axis=0) - np.log(len(use))
        lw = -energy(xs, b) - lq
        w = np.exp(lw - lw.max())
        a = (xs[:, MID] >= 0).astype(float)
        r = np.sum(w*a)/np.sum(w)
        err = np.sqrt(np.sum((w*(a-r))**2))/np.sum(w)
        lr = np.log(r/(1-r)); elr = err/(r*(1-r))
        print(f"   comps {use}: log(w+/w-) {lr:.4f} ± {elr:.4f}  exact {exact}  ({(lr-exact)/elr:+.1f}σ)  ESS/N {np.sum(w)**2/np.sum(w*w)/len(w):.3f}")
