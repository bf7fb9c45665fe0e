#!/usr/bin/env bash
# Messages per second from one delivery worker's SMTP sink (cpo_delivery
# SmtpSink, lettre, pooled) into Postfix's smtp-sink, next to Postfix's own
# smtp-source load generator into the same smtp-sink, at the same
# concurrency and message size. Prints one line per run and the ratio.
#
#   deploy/bench-smtp.sh [MESSAGES] [POOLS] [RUNS]
#   e.g. deploy/bench-smtp.sh 20000 "1 2 4 8" 3
#
# Needs Postfix's smtp-sink and smtp-source (Debian `postfix`; the postfix
# daemon is not started) and a release build of the example
# (`cargo build --release -p cpo-delivery --example smtp_bench`).
# Outputs go under target/bench/smtp and are deleted at the end.
set -euo pipefail

MESSAGES=${1:-20000}
POOLS=${2:-"1 2 4 8"}
RUNS=${3:-3}
PORT=${SMTP_BENCH_PORT:-2526}
TARGET=${CARGO_TARGET_DIR:-target}
BENCH=$TARGET/release/examples/smtp_bench
SINK=${SMTP_SINK:-/usr/sbin/smtp-sink}
SOURCE=${SMTP_SOURCE:-/usr/sbin/smtp-source}
OUT=target/bench/smtp

for bin in "$SINK" "$SOURCE"; do
    [ -x "$bin" ] || { echo "bench-smtp: $bin not found (apt-get install postfix)" >&2; exit 1; }
done
[ -x "$BENCH" ] || { echo "bench-smtp: $BENCH not built (cargo build --release -p cpo-delivery --example smtp_bench)" >&2; exit 1; }

mkdir -p "$OUT"
SIZE=$("$BENCH" --size)
SINK_PID=
cleanup() {
    if [ -n "$SINK_PID" ]; then kill "$SINK_PID" 2>/dev/null || true; wait "$SINK_PID" 2>/dev/null || true; fi
    rm -rf "$OUT"
}
trap cleanup EXIT

# smtp-sink: ESMTP with PIPELINING advertised (its default), discards the
# mail; -u is required when started as root.
user_opt=()
[ "$(id -u)" = 0 ] && user_opt=(-u nobody)
"$SINK" "${user_opt[@]}" 127.0.0.1:"$PORT" 256 >"$OUT/smtp-sink.log" 2>&1 &
SINK_PID=$!
for _ in $(seq 50); do
    (exec 3<>/dev/tcp/127.0.0.1/"$PORT") 2>/dev/null && break
    sleep 0.1
done
kill -0 "$SINK_PID" || { echo "bench-smtp: smtp-sink did not start:" >&2; cat "$OUT/smtp-sink.log" >&2; exit 1; }

now() { date +%s.%N; }
echo "messages=$MESSAGES size=${SIZE}B runs=$RUNS load: $(cut -d' ' -f1-3 /proc/loadavg)"
for pool in $POOLS; do
    for run in $(seq "$RUNS"); do
        # -d: keep each session open for the next message (like the pool).
        start=$(now)
        "$SOURCE" -d -s "$pool" -m "$MESSAGES" -l "$SIZE" \
            -f news@northwind-outfitters.example.com -t customer@example.net \
            -M northwind-outfitters.example.com 127.0.0.1:"$PORT" >"$OUT/source.log" 2>&1 \
            || { echo "bench-smtp: smtp-source failed:" >&2; cat "$OUT/source.log" >&2; exit 1; }
        end=$(now)
        src=$(echo "$MESSAGES / ($end - $start)" | bc -l)
        line=$("$BENCH" --url smtp://127.0.0.1:"$PORT" --messages "$MESSAGES" --pool "$pool")
        ours=${line##*per_second=}
        printf 'pool=%s run=%s smtp-source=%.0f/s cpo-smtp-sink=%s/s ratio=%.2f load=%s\n' \
            "$pool" "$run" "$src" "$ours" "$(echo "$ours / $src" | bc -l)" "$(cut -d' ' -f1 /proc/loadavg)"
    done
done
