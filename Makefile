# Torrentphile: the commands a user needs. `make sim` and `make test` are the two that matter.
CARGO    ?= cargo
BIN      := target/release/torrentphile
SIM_ROOT ?= /tmp
SIM_TRACKER_PORT ?= 8000
SIM_BASE_PORT    ?= 10000

.PHONY: all build sim swarm test test-tools bench bench-tools bench-quick test-net fmt lint clean

all: build

build:
	$(CARGO) build --release

## The classic simulation: a tracker on 8000, five peers on 10000-10004 in $(SIM_ROOT)/1000x.
sim: build
	$(BIN) sim --scenario classic --root $(SIM_ROOT) --tracker-port $(SIM_TRACKER_PORT) --base-port $(SIM_BASE_PORT)

## One seeder and 8 downloaders of a 256 MiB random file, all at once.
swarm: build
	$(BIN) sim --scenario swarm --root $(SIM_ROOT) --tracker-port 0 --base-port 0

## Every test: unit, end to end, the protocol document's transcripts, the labs, the bench
## harness once.
test: test-tools
	$(CARGO) test --all-targets -- --test-threads=2

# Tools some tests run against (the labs use nc; the .torrent tests compare with mktorrent,
# transmission-show and aria2c). As root we install the missing ones from Debian; otherwise
# the tests that need them say they skipped.
TEST_TOOLS := nc:netcat-openbsd aria2c:aria2 mktorrent:mktorrent transmission-show:transmission-cli
test-tools:
	@missing=""; for t in $(TEST_TOOLS); do command -v $${t%%:*} >/dev/null || missing="$$missing $${t#*:}"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "test: installing$$missing"; \
	    (apt-get install -y -qq $$missing || (apt-get update -qq && apt-get install -y -qq $$missing)) >/dev/null 2>&1 || \
	      echo "test: could not install$$missing; the tests that need them will say they skipped"; \
	  else echo "test: missing$$missing (apt-get install$$missing); the tests that need them will say they skipped"; fi; \
	fi

## The benchmarks (release build, several minutes); results go to BENCH.md.
bench: bench-tools
	$(CARGO) bench --bench bench

# The comparison with a real BitTorrent client needs Debian's aria2 and mktorrent; as root we
# install them, otherwise that case is skipped with a message.
bench-tools:
	@if ! command -v aria2c >/dev/null || ! command -v mktorrent >/dev/null; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    (apt-get update -qq && apt-get install -y -qq aria2 mktorrent) >/dev/null 2>&1 || \
	      echo "bench: could not install aria2 and mktorrent; the aria2c case will be skipped"; \
	  else echo "bench: aria2c or mktorrent missing (apt-get install aria2 mktorrent); that case will be skipped"; fi; \
	fi

bench-quick:
	$(CARGO) bench --bench bench -- --quick

## Tests across network namespaces (needs root and iproute2).
test-net: build
	bash tests/net/run.sh $(BIN)

fmt:
	$(CARGO) fmt

lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings

clean:
	$(CARGO) clean
