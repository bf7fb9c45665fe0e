#!/usr/bin/env bash
# Run the bundled campaign through the fleet: six worker processes on the local
# RabbitMQ and Redis, the campaign enqueued as a CRM would, then collected.
# Usage: deploy/fleet-demo.sh OUT_DIR [CUSTOMERS_CSV]
set -euo pipefail
out=${1:?usage: fleet-demo.sh OUT_DIR [CUSTOMERS_CSV]}
customers=${2:-data/customers.csv}
cpo=${CPO_BIN:-target/release/cpo}

# A prefix of its own, so the demo never mixes with other runs on the same broker.
run_id="demo$$"
export CPO__AMQP__PREFIX="cpo.${run_id}."
export CPO__REDIS__KEY_PREFIX="cpo:${run_id}:"
export CPO__SECURITY__SIGNING_KEY="${CPO__SECURITY__SIGNING_KEY:-fleet-demo-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')}"
export CPO__SECURITY__PSEUDONYM_KEY="${CPO__SECURITY__PSEUDONYM_KEY:-fleet-demo-pseudonyms}"
# The send-batch key is passed to experimentation and delivery only (below).
batch_key="${CPO__SECURITY__BATCH_KEY:-fleet-demo-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')}"
unset CPO__SECURITY__BATCH_KEY
export CPO__GENERATION__BRAND="Northwind Outfitters"
work="$out/fleet"
mkdir -p "$work"
rm -f "$work/outbox.jsonl"
export CPO__WORKER__AUDIT_DIR="$work"
export CPO__WORKER__OUTBOX="$work/outbox.jsonl"

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT

port=9470
for stage in segmentation retrieval generation safety experimentation delivery; do
  case "$stage" in
    experimentation|delivery)
      CPO__SECURITY__BATCH_KEY="$batch_key" "$cpo" worker "$stage" --port "$port" 2>"$work/$stage.log" & ;;
    *) "$cpo" worker "$stage" --port "$port" 2>"$work/$stage.log" & ;;
  esac
  pids+=("$!")
  port=$((port + 1))
done
# Wait until every worker is ready.
for p in $(seq 9470 9475); do
  for _ in $(seq 1 100); do
    curl -fs "http://127.0.0.1:$p/readyz" >/dev/null 2>&1 && break
    sleep 0.1
  done
done

campaign_id=$(grep -E '^campaign_id:' data/campaign.yaml | awk '{print $2}')
"$cpo" enqueue data/campaign.yaml --customers "$customers"
"$cpo" collect "$campaign_id" --out "$out" --outbox "$work/outbox.jsonl" --timeout 600
cleanup
trap - EXIT
"$cpo" teardown >/dev/null
echo "fleet demo done: $out/outbox.jsonl, $out/summary.json"
