"""PyTorch side of `cargo xtask compare torch` (issue 16, "Speed").

The tutorial flow on 2D phi^4 (Albergo et al., arXiv 2101.08176): 16 affine
couplings with checkerboard masks, circular-padded conv 1->8->8->2, kernel 3,
LeakyReLU (slope 0.01), tanh outputs; trained by reverse KL, written the way
users of the PyTorch lattice-flow codes write it. One step = draw z ~ N(0, I),
x = f(z), log q = log N(z) - log|det df/dz|, loss = mean(log q + S(x)) with
S = sum_x [sum_mu (phi(x+mu) - phi(x))^2 + m2 phi^2 + lam phi^4], backward,
Adam (lr 1e-3, default betas and eps) -- the same step as fieldflow's
`rkl_step_rate` example.

Protocol (identical to the fieldflow side): --warmup untimed steps, then timed
steps until at least --min-steps steps and --min-seconds seconds have passed.
Prints one JSON line per batch size on stdout, with the process CPU time of
the timed steps (all threads; steps per CPU-second are less sensitive to other
processes on a shared machine than steps per second).

Cross-check (--check FILE, no timing): FILE is written by fieldflow's
`rkl_step_rate --check-out FILE` (parameters in fieldflow's layout, the base
draws z, fieldflow's loss and gradient). The same parameters are loaded into
this model -- conv weight W[co, tap*cin + ci] with taps row-major over
(dy, dx) in {-1, 0, 1}^2 is torch's weight[co, ci, dy+1, dx+1]; bias after
the weights; fieldflow freezes the sites with (i + j + layer) even -- and
the loss and gradient at the same z are compared (relative to the largest
entry). Prints one JSON line.

usage: python torch_tutorial_bench.py [--L 8] [--batches 64,1024] [--threads 2]
           [--dtype float64|float32] [--warmup 3] [--min-steps 5] [--min-seconds 3]
           [--check FILE]
"""
import argparse
import json
import math
import sys
import time

import torch


def positive_int(s):
    v = int(s)
    if v < 1:
        raise argparse.ArgumentTypeError(f"{s}: expected an integer >= 1")
    return v


def batch_list(s):
    try:
        out = [int(b) for b in s.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{s}: expected comma-separated integers")
    if not out or min(out) < 1:
        raise argparse.ArgumentTypeError(f"{s}: batch sizes must be >= 1")
    return out


p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
p.add_argument("--L", type=int, default=8)
p.add_argument("--batches", type=batch_list, default=[64, 1024])
p.add_argument("--threads", type=positive_int, default=2)
p.add_argument("--dtype", choices=["float64", "float32"], default="float64")
p.add_argument("--m2", type=float, default=-4.0)
p.add_argument("--lam", type=float, default=8.0)
p.add_argument("--warmup", type=int, default=3)
p.add_argument("--min-steps", type=positive_int, default=5)
p.add_argument("--min-seconds", type=float, default=3.0)
p.add_argument("--seed", type=int, default=1)
p.add_argument("--check", metavar="FILE", help="compare loss and gradient with fieldflow's FILE")
a = p.parse_args()
check = None
if a.check:
    try:
        with open(a.check) as f:
            check = json.load(f)
    except (OSError, ValueError) as e:
        p.error(f"--check {a.check}: {e}")
    a.L, a.dtype, a.m2, a.lam = check["lattice"], check["dtype"], check["m2"], check["lambda"]
if a.L < 2:
    p.error(f"--L {a.L}: expected an integer >= 2")
if a.warmup < 0 or not (a.min_seconds >= 0):
    p.error("--warmup and --min-seconds must be >= 0")

torch.set_num_threads(a.threads)
try:
    torch.set_num_interop_threads(1)
except RuntimeError:
    pass  # already set by the environment; no inter-op parallelism is used here
torch.manual_seed(a.seed)
dt = getattr(torch, a.dtype)
torch.set_default_dtype(dt)
L = a.L


def action(phi):
    kin = 0.0
    for mu in (1, 2):
        kin = kin + ((torch.roll(phi, -1, mu) - phi) ** 2).sum((1, 2))
    return kin + (a.m2 * phi**2 + a.lam * phi**4).sum((1, 2))


def checkerboard(parity):
    x = torch.arange(L)[:, None] + torch.arange(L)[None, :]
    return ((x + parity) % 2).to(dt)


class AffineCoupling(torch.nn.Module):
    def __init__(self, parity):
        super().__init__()
        self.register_buffer("m", checkerboard(parity))
        c = [1, 8, 8, 2]
        layers = []
        for i in range(3):
            layers.append(torch.nn.Conv2d(c[i], c[i + 1], 3, padding=1, padding_mode="circular"))
            layers.append(torch.nn.LeakyReLU() if i < 2 else torch.nn.Tanh())
        self.net = torch.nn.Sequential(*layers)

    def forward(self, x):
        frozen = self.m * x
        st = self.net(frozen[:, None])
        s, t = st[:, 0], st[:, 1]
        fx = (1 - self.m) * (x * torch.exp(s) + t) + frozen
        return fx, ((1 - self.m) * s).sum((1, 2))


# The tutorial freezes the sites with (i + j + layer) odd; fieldflow (and so
# the cross-check) the ones with (i + j + layer) even.
first_parity = 1 if check is not None else 0
layers = torch.nn.ModuleList([AffineCoupling((i + first_parity) % 2) for i in range(16)])
n_params = sum(q.numel() for q in layers.parameters())
opt = torch.optim.Adam(layers.parameters(), lr=1e-3)
log_norm = 0.5 * L * L * math.log(2 * math.pi)


def step(batch):
    z = torch.randn(batch, L, L)
    logq = -0.5 * (z**2).sum((1, 2)) - log_norm
    x = z
    for layer in layers:
        x, ld = layer(x)
        logq = logq - ld
    loss = (logq + action(x)).mean()
    opt.zero_grad()
    loss.backward()
    opt.step()
    return loss.item()


def load_fieldflow_params(flat):
    """Copies fieldflow's flat parameter vector into the model."""
    flat = torch.tensor(flat, dtype=dt)
    off = 0
    with torch.no_grad():
        for layer in layers:
            for conv in layer.net:
                if not isinstance(conv, torch.nn.Conv2d):
                    continue
                co, ci, kh, kw = conv.weight.shape
                nw = co * kh * kw * ci
                w = flat[off:off + nw].reshape(co, kh, kw, ci).permute(0, 3, 1, 2)
                conv.weight.copy_(w)
                conv.bias.copy_(flat[off + nw:off + nw + co])
                off += nw + co
    if off != len(flat):
        raise SystemExit(f"--check: {len(flat)} parameters in the file, the model has {off}")


def fieldflow_grad():
    """The model's gradient in fieldflow's flat layout."""
    parts = []
    for layer in layers:
        for conv in layer.net:
            if isinstance(conv, torch.nn.Conv2d):
                parts.append(conv.weight.grad.permute(0, 2, 3, 1).reshape(-1))
                parts.append(conv.bias.grad)
    return torch.cat(parts)


if check is not None:
    load_fieldflow_params(check["params"])
    B = check["batch"]
    z = torch.tensor(check["z"], dtype=dt).reshape(B, L, L)
    logq = -0.5 * (z**2).sum((1, 2)) - log_norm
    x = z
    for layer in layers:
        x, ld = layer(x)
        logq = logq - ld
    loss = (logq + action(x)).mean()
    layers.zero_grad()
    loss.backward()
    g = fieldflow_grad().to(torch.float64)
    g_ff = torch.tensor(check["grad"], dtype=torch.float64)
    print(json.dumps({
        "impl": "torch",
        "check": a.check,
        "dtype": a.dtype,
        "batch": B,
        "loss": loss.item(),
        "fieldflow_loss": check["loss"],
        "loss_rel_err": abs(loss.item() - check["loss"]) / abs(check["loss"]),
        "grad_rel_err": ((g - g_ff).abs().max() / g_ff.abs().max()).item(),
    }))
    sys.exit(0)

for B in a.batches:
    loss = float("nan")
    for _ in range(a.warmup):
        loss = step(B)
    timed = 0
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    while timed < a.min_steps or time.perf_counter() - t0 < a.min_seconds:
        loss = step(B)
        timed += 1
    t = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    print(json.dumps({
        "impl": "torch",
        "torch_version": torch.__version__,
        "mkldnn": torch.backends.mkldnn.is_available(),
        "lattice": L,
        "batch": B,
        "dtype": a.dtype,
        "threads": torch.get_num_threads(),
        "n_params": n_params,
        "steps": timed,
        "seconds": t,
        "steps_per_s": timed / t,
        "cpu_seconds": cpu,
        "steps_per_cpu_s": timed / cpu if cpu > 0 else None,
        "last_loss": loss if math.isfinite(loss) else None,
    }), flush=True)
    print(f"torch L={L} batch={B} threads={a.threads} dtype={a.dtype}: "
          f"{timed / t:.2f} steps/s ({t / timed * 1e3:.2f} ms/step)", file=sys.stderr)
