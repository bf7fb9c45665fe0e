#!/usr/bin/env bash
# Run the bundled campaign through the fleet: six worker processes on the local
# RabbitMQ and Redis, the campaign enqueued as a CRM would, then collected.
# Usage: deploy/fleet-demo.sh OUT_DIR [CUSTOMERS_CSV]
# Environment: CPO_BIN (default target/release/cpo), CPO_DEMO_READY_TIMEOUT
# (seconds the workers may take to become ready, default 60).
#
# Each worker gets a port nothing listens on yet, and must answer /readyz
# while its own process is alive: a worker that exits or never becomes ready
# fails the demo (another run's worker on a fixed port cannot answer for it).
# Whatever happens, the workers are stopped and the demo's queues and Redis
# keys removed (`cpo teardown`).
set -euo pipefail
out=${1:?usage: fleet-demo.sh OUT_DIR [CUSTOMERS_CSV]}
customers=${2:-data/customers.csv}
cpo=${CPO_BIN:-target/release/cpo}
ready_timeout=${CPO_DEMO_READY_TIMEOUT:-60}

# A prefix of its own, so the demo never mixes with other runs on the same broker.
run_id="demo$$"
export CPO__AMQP__PREFIX="cpo.${run_id}."
export CPO__REDIS__KEY_PREFIX="cpo:${run_id}:"
export CPO__SECURITY__SIGNING_KEY="${CPO__SECURITY__SIGNING_KEY:-fleet-demo-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')}"
export CPO__SECURITY__PSEUDONYM_KEY="${CPO__SECURITY__PSEUDONYM_KEY:-fleet-demo-pseudonyms}"
export CPO__SECURITY__AUDIT_KEY="${CPO__SECURITY__AUDIT_KEY:-fleet-demo-audit-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')}"
# The send-batch key is passed to experimentation and delivery only (below).
batch_key="${CPO__SECURITY__BATCH_KEY:-fleet-demo-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')}"
unset CPO__SECURITY__BATCH_KEY
export CPO__GENERATION__BRAND="Northwind Outfitters"
# The keyed hash of addresses in suppressions (experimentation and delivery).
export CPO__SECURITY__ADDRESS_KEY="${CPO__SECURITY__ADDRESS_KEY:-fleet-demo-addresses}"
# The demo's endpoints are for this machine only.
export CPO__WORKER__BIND=127.0.0.1
work="$out/fleet"
mkdir -p "$work"
# A new prefix keeps no audit heads: the last demo's logs cannot be continued.
rm -f "$work/outbox.jsonl" "$work"/audit-*.jsonl
export CPO__WORKER__AUDIT_DIR="$work"
export CPO__WORKER__OUTBOX="$work/outbox.jsonl"
# The system of record: CPO__STORE__URL (postgres://...) when set, else a SQLite
# file the demo's processes share (they all run on this machine).
# A demo's record starts empty, like its prefix (the campaign id repeats).
if [ -z "${CPO__STORE__URL:-}" ]; then
  rm -f "$work"/cpo.sqlite*
  export CPO__STORE__URL="sqlite://$work/cpo.sqlite"
fi
echo "fleet demo: queues ${CPO__AMQP__PREFIX}*, Redis keys ${CPO__REDIS__KEY_PREFIX}*, logs in $work" >&2

stages=(segmentation retrieval generation safety experimentation delivery)
pids=()
ports=()

stop_workers() {
  local pid _
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  # A worker drains in-flight work on SIGTERM; one that hangs is killed.
  for pid in "${pids[@]}"; do
    for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  pids=()
}

cleanup() {
  local status=$?
  trap - EXIT INT TERM
  stop_workers
  # The workers declared the prefix's queues as they started: remove them
  # (and the Redis keys) whether the demo succeeded or not.
  if ! "$cpo" teardown >/dev/null 2>"$work/teardown.log"; then
    echo "fleet demo: teardown failed (see $work/teardown.log); run \`CPO__AMQP__PREFIX=${CPO__AMQP__PREFIX} CPO__REDIS__KEY_PREFIX=${CPO__REDIS__KEY_PREFIX} cpo teardown\`" >&2
    if [ "$status" -eq 0 ]; then status=1; fi
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

fail() {
  echo "fleet demo: $*" >&2
  exit 1
}

# Something answers on the port (a connection succeeds).
port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

next_port=$((20000 + RANDOM % 20000))
for stage in "${stages[@]}"; do
  while port_in_use "$next_port"; do next_port=$((next_port + 1)); done
  case "$stage" in
    experimentation|delivery)
      CPO__SECURITY__BATCH_KEY="$batch_key" "$cpo" worker "$stage" --port "$next_port" 2>"$work/$stage.log" & ;;
    *) "$cpo" worker "$stage" --port "$next_port" 2>"$work/$stage.log" & ;;
  esac
  pids+=("$!")
  ports+=("$next_port")
  next_port=$((next_port + 1))
done

# Wait until every worker is ready; one that exits or takes too long fails the demo.
deadline=$((SECONDS + ready_timeout))
for i in "${!stages[@]}"; do
  stage=${stages[$i]}
  until curl -fs "http://127.0.0.1:${ports[$i]}/readyz" >/dev/null 2>&1; do
    if ! kill -0 "${pids[$i]}" 2>/dev/null; then
      tail -n 5 "$work/$stage.log" >&2 || true
      fail "the $stage worker exited before it was ready (log: $work/$stage.log)"
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      tail -n 5 "$work/$stage.log" >&2 || true
      fail "the $stage worker was not ready within ${ready_timeout} s (log: $work/$stage.log)"
    fi
    sleep 0.1
  done
done
# A port taken between the check and the worker's bind: its worker exits, and
# what answered was not it.
for i in "${!stages[@]}"; do
  kill -0 "${pids[$i]}" 2>/dev/null || fail "the ${stages[$i]} worker exited (log: $work/${stages[$i]}.log)"
done

campaign_id=$(grep -E '^campaign_id:' data/campaign.yaml | awk '{print $2}')
"$cpo" enqueue data/campaign.yaml --customers "$customers"
"$cpo" collect "$campaign_id" --out "$out" --outbox "$work/outbox.jsonl" --timeout 600
echo "fleet demo done: $out/outbox.jsonl, $out/summary.json"
