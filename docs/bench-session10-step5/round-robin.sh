#!/bin/bash
# round-robin: base (9d01775), vector loads only, vector loads + shared prefetch
for round in 1 2 3; do
  for b in base pf0 new; do
    setsid bash -c 'echo -10 > /proc/self/autogroup && exec "$@"' bash /tmp/pp-$b bench --workload hot-point,hot-scan --impl raw,pagepool,pagepool-shared --threads 2 --seconds 1.5 --dir /work/benchdata --json /tmp/rr-$b-$round.json > /tmp/rr-$b-$round.txt 2>&1
  done
done
