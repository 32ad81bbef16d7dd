/work/main/target-old/release/deps/getopts-a62c800ec5dee6d3.d: /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/getopts-0.2.24/src/lib.rs

/work/main/target-old/release/deps/libgetopts-a62c800ec5dee6d3.rlib: /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/getopts-0.2.24/src/lib.rs

/work/main/target-old/release/deps/libgetopts-a62c800ec5dee6d3.rmeta: /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/getopts-0.2.24/src/lib.rs

/root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/getopts-0.2.24/src/lib.rs:
