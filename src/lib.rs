//! Torrentphile: a small BitTorrent-like file sharing system, written to be read.
//!
//! A **tracker** knows which peer holds which file; **peers** serve the files in their folder
//! and fetch files from each other, in verified pieces, from every holder at once. Everything
//! speaks one line protocol you can type with `nc` (see PROTOCOL.md). Blocking sockets, one
//! thread per connection, and shared state behind a `Mutex`: no async, no magic.
//!
//! Read the modules in this order:
//!
//! - [`protocol`]: every message as a Rust type, parsed from and printed to one line. No I/O
//!   at all, so the whole wire format is unit-tested with strings.
//! - [`conn`]: one TCP connection: bounded line reads, `DATA` blocks, timeouts, `--trace`.
//!   The only place that turns socket bytes into lines.
//! - [`server`]: the accept loop both servers share: a thread per connection, a connection
//!   cap answered with `ERR busy`, and a stop that never hangs; plus the per-connection
//!   read-parse-answer loop. [`admission`] decides who gets a connection slot (a cap per
//!   remote address; at the global cap the heaviest address's longest-idle connection goes).
//! - [`tracker`]: the directory. `tracker::registry` is its state (pure maps and rules);
//!   `tracker` wires it to the server, holding the registry's one mutex only inside `handle`.
//! - [`peer`]: a peer. `store` is its folder, `server` answers other peers, `link` is its one
//!   connection to the tracker, `picker` chooses pieces, `download` fetches from all holders
//!   at once, `shell` is the prompt.
//! - [`cli`]: the command line (getopts per subcommand); it checks every value and calls the
//!   modules above. `main.rs` only hands it the arguments.
//! - [`raft`]: the Raft consensus algorithm as a pure state machine (no I/O, no clock) and its
//!   messages as protocol lines; the replicated journal behind several trackers.
//! - [`sim`]: the simulations `make sim` and `make swarm` run.
//! - [`relay`]: a TCP relay that adds latency, to see what a slow link does (used by the
//!   benchmarks and the network tests too).
//! - [`torrent`]: .torrent files: strict bencode, metainfo (BEP 3), create and show.
//! - [`bt`]: the real BitTorrent protocol as pure values: the peer wire (BEP 3) with a bounded
//!   incremental decoder, the HTTP announce (BEP 23 compact peers), one connection's state.
//! - [`signal`]: Ctrl-C for `get` (end the progress line, keep the pieces) and `SIGTTIN` for
//!   `peer --shell` in the background; the C library's `signal`, Linux only.
//! - [`rlimit`]: the open-files limit: the tracker raises it to the hard limit at start and
//!   says its real connection ceiling; the C library's `getrlimit`/`setrlimit`, Linux only.
//! - [`sha1`]: SHA-1 on the CPU's SHA extensions when it has them, `sha1_smol` otherwise.
//! - [`util`]: a small random number generator (std has none).
//! - [`journal`]: the tracker's append-only journal of record lines (checksummed, fsynced in
//!   batches, replayed at start, compacted into a snapshot).
//! - [`auth`]: accounts and groups (pure state changed by replayable records) and the crypto
//!   under them: HMAC-SHA1, PBKDF2, base64, the SCRAM-SHA-1 login. No sockets.
//!
//! ARCHITECTURE.md draws the map and lists the invariants.

pub mod admission;
pub mod auth;
pub mod bt;
pub mod cli;
pub mod conn;
pub mod journal;
pub mod peer;
pub mod protocol;
pub mod raft;
pub mod relay;
pub mod rlimit;
pub mod server;
pub mod sha1;
pub mod signal;
pub mod sim;
pub mod torrent;
pub mod tracker;
pub mod util;
