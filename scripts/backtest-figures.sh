#!/usr/bin/env bash
# The detection figures every change is held to: native months with grants
# (1000 identities x 30 days, seeds 7, 8, 9) and the real-attack splice in
# CloudTrail form without grants (seed 12, the development detonations in
# both variants). Fleets are simulated once into DIR and reused.
#
#   scripts/backtest-figures.sh BIN DIR [TAG]
#
# Writes DIR/TAG-SEED.json (backtest --json) and prints one line per fleet:
# recall / precision / false alerts per 1k identity-days / alerts, the
# weakest classes, and for the splice the techniques caught per variant and
# the alerts per caught incident.
set -euo pipefail
bin=$(realpath "$1"); dir=$2; tag=${3:-run}
attacks=$(realpath "$(dirname "$0")/../../shared/datasets/attacks/stratus-dev")
mkdir -p "$dir"; cd "$dir"

for seed in 7 8 9; do
  [ -s "ev$seed.jsonl" ] || "$bin" simulate --identities 1000 --days 30 --seed "$seed" \
    --out "ev$seed.jsonl" --grants-out "gr$seed.jsonl" --labels-out "lb$seed.jsonl" >/dev/null
done
[ -s sp12.jsonl ] || "$bin" simulate --identities 1000 --days 30 --seed 12 --format cloudtrail \
  --attacks "$attacks" --out sp12.jsonl --grants-out sg12.jsonl --labels-out sl12.jsonl >/dev/null

for seed in 7 8 9; do
  "$bin" backtest --events "ev$seed.jsonl" --labels "lb$seed.jsonl" --grants "gr$seed.jsonl" --json \
    > "$tag-$seed.json" &
done
"$bin" backtest --events sp12.jsonl --labels sl12.jsonl --json > "$tag-12.json" &
wait

python3 - "$tag" <<'EOF'
import json, sys
tag = sys.argv[1]
for seed in ("7", "8", "9", "12"):
    r = json.load(open(f"{tag}-{seed}.json"))
    o = r["overall"]
    prec = "-" if o["precision"] is None else f'{o["precision"]:.3f}'
    api = o.get("alerts_per_incident") or {}
    weak = sorted((c["recall"], name) for name, c in r["classes"].items() if c["recall"] is not None and c["recall"] < 1)
    line = (f'seed {seed}: {o["recall"]:.3f} / {prec} / {o["false_per_1k_identity_days"]:.2f} / {o["alerts"]}'
            f'  per incident {api.get("mean", 0):.2f}/{api.get("max", 0)}'
            f'  below 1: ' + ", ".join(f"{n} {v:.2f}" for v, n in weak))
    if "techniques" in r:
        per = {}
        for t, vs in r["techniques"].items():
            for v, s in vs.items():
                per.setdefault(v, [0, 0])
                per[v][0] += s["caught"] > 0
                per[v][1] += 1
        line += "  techniques " + ", ".join(f"{v} {c}/{n}" for v, (c, n) in sorted(per.items()))
        missed = [f"{t} ({v})" for t, vs in r["techniques"].items() for v, s in vs.items() if s["caught"] == 0]
        if missed:
            line += "  missed: " + "; ".join(missed)
    print(line)
EOF
