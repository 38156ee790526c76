#!/usr/bin/env bash
# Starts a 3-member detcd cluster on this machine (clients on 127.0.0.1:2379, 22379, 32379;
# peers on 12380, 22380, 32380; data in ./infra1.detcd ...), waits for Ctrl-C, then stops it.
# Usage, from the repository root: cargo build --release && docs/cluster/start-3.sh
set -euo pipefail
DETCD=${DETCD:-target/release/detcd}
CLUSTER='infra1=http://127.0.0.1:12380,infra2=http://127.0.0.1:22380,infra3=http://127.0.0.1:32380'
CLIENT_PORTS=(2379 22379 32379)
PEER_PORTS=(12380 22380 32380)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait' EXIT INT TERM
for index in 0 1 2; do
  name="infra$((index + 1))"
  "$DETCD" serve --name "$name" \
    --listen-client-urls "http://127.0.0.1:${CLIENT_PORTS[$index]}" \
    --advertise-client-urls "http://127.0.0.1:${CLIENT_PORTS[$index]}" \
    --listen-peer-urls "http://127.0.0.1:${PEER_PORTS[$index]}" \
    --initial-advertise-peer-urls "http://127.0.0.1:${PEER_PORTS[$index]}" \
    --initial-cluster-token detcd-cluster-1 --initial-cluster "$CLUSTER" \
    --initial-cluster-state new --data-dir "$name.detcd" &
  pids+=($!)
done
echo "detcd cluster up: etcdctl --endpoints=127.0.0.1:2379,127.0.0.1:22379,127.0.0.1:32379 member list"
wait
