/work/main/target-old/release/deps/bench-e4e29fc69a8f54a7.d: benches/bench.rs benches/bench/accounts.rs benches/../tests/hostile/bind.rs benches/bench/bittorrent.rs benches/bench/cluster.rs benches/bench/common.rs benches/bench/hostile.rs benches/bench/latency.rs benches/bench/memory.rs benches/bench/report.rs benches/bench/servers.rs benches/bench/sim.rs benches/bench/swarm.rs benches/bench/tcp.rs benches/bench/tracker.rs benches/bench/transfer.rs

/work/main/target-old/release/deps/bench-e4e29fc69a8f54a7: benches/bench.rs benches/bench/accounts.rs benches/../tests/hostile/bind.rs benches/bench/bittorrent.rs benches/bench/cluster.rs benches/bench/common.rs benches/bench/hostile.rs benches/bench/latency.rs benches/bench/memory.rs benches/bench/report.rs benches/bench/servers.rs benches/bench/sim.rs benches/bench/swarm.rs benches/bench/tcp.rs benches/bench/tracker.rs benches/bench/transfer.rs

benches/bench.rs:
benches/bench/accounts.rs:
benches/../tests/hostile/bind.rs:
benches/bench/bittorrent.rs:
benches/bench/cluster.rs:
benches/bench/common.rs:
benches/bench/hostile.rs:
benches/bench/latency.rs:
benches/bench/memory.rs:
benches/bench/report.rs:
benches/bench/servers.rs:
benches/bench/sim.rs:
benches/bench/swarm.rs:
benches/bench/tcp.rs:
benches/bench/tracker.rs:
benches/bench/transfer.rs:

# env-dep:CARGO_BIN_EXE_torrentphile=/work/main/target-old/release/torrentphile
# env-dep:CARGO_MANIFEST_DIR=/work/wt-old
# env-dep:CARGO_TARGET_TMPDIR=/work/main/target-old/tmp
