/work/main/target-old/release/deps/torrentphile-5cd6d77304799a36.d: src/main.rs

/work/main/target-old/release/deps/torrentphile-5cd6d77304799a36: src/main.rs

src/main.rs:
