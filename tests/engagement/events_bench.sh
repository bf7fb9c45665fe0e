#!/bin/bash
# The "Events into the store" benchmark (docs/BENCHMARKS.md): cpo worker gateway +
# cpo worker events on the local RabbitMQ, Redis and a PostgreSQL database of its
# own, loaded by wrk with events_bench.lua; counts the rows of the events table.
# usage: tests/engagement/events_bench.sh BIN SECONDS CONNECTIONS
set -u
BIN=$1; D=$2; C=$3
cd "$(dirname "$0")/../.."
B=target/bench/ev; rm -rf $B; mkdir -p $B
DB=cpo_bench_ev_$$
psql -h 127.0.0.1 -U postgres -qAtc "CREATE DATABASE $DB"
export CPO__STORE__URL=postgres://postgres@127.0.0.1:5432/$DB
export CPO__AMQP__PREFIX=cpo.bench$$. CPO__REDIS__KEY_PREFIX=cpo:bench$$: CPO__SECURITY__ADDRESS_KEY=bench CPO__GATEWAY__CPO__TOKEN=bench-token CPO__WORKER__BIND=127.0.0.1 CPO__SECURITY__SIGNING_KEY=bench-sign CPO__SECURITY__PSEUDONYM_KEY=bench-pseudo CPO__SECURITY__AUDIT_KEY=bench-audit
$BIN worker events --port 18091 2>$B/events.log & EV=$!
$BIN worker gateway --port 18090 2>$B/gateway.log & GW=$!
for i in $(seq 100); do curl -s -o /dev/null http://127.0.0.1:18090/healthz && break; sleep 0.2; done
count() { psql -h 127.0.0.1 -U postgres -d $DB -qAtc "SELECT count(*) FROM events"; }
r0=$(count); t0=$(date +%s.%N)
CPO_BENCH_RUN=r$$ wrk -t2 -c$C -d${D}s -s tests/engagement/events_bench.lua http://127.0.0.1:18090/webhooks/cpo
r1=$(count); t1=$(date +%s.%N)
# drain: wait until the count stops moving
prev=-1; cur=$r1
while [ "$cur" != "$prev" ]; do prev=$cur; sleep 1; cur=$(count); done
t2=$(date +%s.%N)
echo "rows during run: $((r1-r0)) in $(echo "$t1-$t0"|bc) s => $(echo "($r1-$r0)/($t1-$t0)"|bc) rows/s"
echo "rows total: $cur, drained $(echo "$t2-$t0-1"|bc) s after start => $(echo "$cur/($t2-$t0-1)"|bc) rows/s"
grep -c . $B/gateway.log; tail -3 $B/gateway.log; tail -3 $B/events.log
uptime
kill $GW $EV; wait $GW $EV 2>/dev/null
psql -h 127.0.0.1 -U postgres -qAtc "DROP DATABASE $DB WITH (FORCE)"
rm -rf $B
