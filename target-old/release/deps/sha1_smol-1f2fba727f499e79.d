/work/main/target-old/release/deps/sha1_smol-1f2fba727f499e79.d: /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/sha1_smol-1.0.1/src/lib.rs /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/sha1_smol-1.0.1/src/simd.rs

/work/main/target-old/release/deps/libsha1_smol-1f2fba727f499e79.rlib: /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/sha1_smol-1.0.1/src/lib.rs /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/sha1_smol-1.0.1/src/simd.rs

/work/main/target-old/release/deps/libsha1_smol-1f2fba727f499e79.rmeta: /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/sha1_smol-1.0.1/src/lib.rs /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/sha1_smol-1.0.1/src/simd.rs

/root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/sha1_smol-1.0.1/src/lib.rs:
/root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/sha1_smol-1.0.1/src/simd.rs:
