"""Build the markdown results table from results.jsonl and the /usr/bin/time files."""
import json, os, re
D = os.path.dirname(os.path.abspath(__file__))
rows = [json.loads(l) for l in open(os.path.join(D, "results.jsonl")) if l.strip()]
def elapsed(tag):
    p = os.path.join(D, tag + ".time")
    if not os.path.exists(p): return None
    m = re.search(r"Elapsed \(wall clock\).*: (?:(\d+):)?(\d+):([\d.]+)", open(p).read())
    h, mnt, s = m.groups()
    return int(h or 0) * 3600 + int(mnt) * 60 + float(s)
print("| target | d | seed | mode weights (sampled ± s.e.) | exact | TV | 1st/2nd half heavy | global acc prod | global acc train (last 3 loops) | local acc prod | chains/mode start → end-train | chains hopping in prod | sampling wall s | process wall s |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for r in rows:
    f, w = r["mode_frac"], r["true_w"]
    tv = 0.5 * sum(abs(a - b) for a, b in zip(f, w))
    tag = f"flowmc_{r['target']}_d{r['d']}_s{r['seed']}"
    fs = "/".join(f"{a:.3f}" for a in f) + " ± " + "/".join(f"{a:.3f}" for a in r["mode_frac_se"])
    ws = "/".join(f"{a:.3f}" for a in w)
    k = int(max(range(len(w)), key=lambda i: w[i]))
    halves = f"{r['mode_frac_prod_first_half'][k]:.3f}/{r['mode_frac_prod_second_half'][k]:.3f}"
    el = elapsed(tag)
    print(f"| {r['target']} | {r['d']} | {r['seed']} | {fs} | {ws} | {tv:.3f} | {halves} | {r['global_acc_prod']:.3f} | "
          f"{r['global_acc_train_last3']:.3f} | {r['local_acc_prod']:.3f} | {r['chains_per_mode_at_start']} → {r['chains_per_mode_end_training']} | "
          f"{r['chains_visiting_gt1_mode_prod']}/{r['cfg']['n_chains']} | {r['wall_s']:.1f} | {el if el is None else round(el,1)} |")
