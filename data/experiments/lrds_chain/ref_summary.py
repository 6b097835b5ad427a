import json, subprocess, sys, math
for f in sys.argv[1:]:
    out = subprocess.run(["strings", "-n", "6", f], capture_output=True, text=True).stdout
    line = [l for l in out.splitlines() if l.startswith('{"lrds"')][0]
    # the JSON may be followed by garbage; decode the first object
    obj, _ = json.JSONDecoder().raw_decode(line)
    r = obj["lrds"]["reference"]
    print(f)
    for j, (w, m, c) in enumerate(zip(r["weights"], r["means"], r["covs"])):
        d = len(m); mid = 49
        sd = [math.sqrt(c[i][i]) for i in range(d)]
        p_pos = 0.5 * math.erfc(-m[mid] / (sd[mid] * math.sqrt(2)))
        print(f"  comp {j}: weight {w:.4f}  mean[9,24,49,74,89] = {[round(m[i],3) for i in (9,24,49,74,89)]}  sd[24,49,74] = {[round(sd[i],3) for i in (24,49,74)]}  P(x49>=0) = {p_pos:.3g}")
