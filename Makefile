# cpo: common tasks. `make help` lists them.
CARGO ?= cargo
OUT ?= out/demo
N ?= 1000000

.PHONY: help demo fleet-demo test test-rules lint fmt schemas bench bench-data bench-safety bench-smtp clean

help:
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

demo: ## Run the bundled campaign end to end in one process (embedded mode; replaces the last demo run)
	$(CARGO) run --release --quiet -- run --force --out $(OUT)

fleet-demo: ## The bundled campaign through six worker processes on the local RabbitMQ and Redis (OUT=DIR)
	$(CARGO) build --release --quiet
	deploy/fleet-demo.sh $(OUT)

test: ## All tests (unit, integration, fixtures)
	$(CARGO) test --workspace --all-targets

test-rules: ## Check the Prometheus config and alert rules and run their unit tests (promtool)
	promtool check config deploy/prometheus/prometheus.yml
	promtool test rules deploy/prometheus/alerts_test.yml

lint: ## rustfmt and clippy, warnings are errors
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

schemas: ## Regenerate schemas/ from the Rust types
	UPDATE_SCHEMAS=1 $(CARGO) test -p cpo-shared --test schemas
	UPDATE_SCHEMAS=1 $(CARGO) test -p cpo-gateway --test openapi

bench-data: ## Generate $(N) synthetic customers into target/bench/customers.csv
	mkdir -p target/bench
	$(CARGO) build --release --quiet
	./target/release/cpo gen-data --customers $(N) --seed 1 --out target/bench/customers.csv

bench: bench-data ## Time `cpo run` on $(N) customers (wall time and peak memory)
	/usr/bin/time -v ./target/release/cpo run --quiet --force --customers target/bench/customers.csv --out target/bench/out 2>&1 \
		| grep -E 'campaign|customers:|messages:|Elapsed|Maximum resident'

HATECHECK ?= ../shared/benchmarks/hatecheck/test_suite_cases.csv

bench-safety: ## Score the embedded screen on HateCheck per functionality; fails below the floors (HATECHECK=CSV)
	$(CARGO) run --release --quiet -p cpo-safety --example hatecheck -- $(HATECHECK) --gate

SMTP_MESSAGES ?= 20000
SMTP_POOLS ?= 1 2 4 8

bench-smtp: ## One SMTP sink (lettre, pooled) vs Postfix smtp-source into Postfix smtp-sink, 3 runs per pool size (needs Debian postfix)
	$(CARGO) build --release --quiet -p cpo-delivery --example smtp_bench
	deploy/bench-smtp.sh $(SMTP_MESSAGES) "$(SMTP_POOLS)" 3

clean:
	rm -rf out target/bench
