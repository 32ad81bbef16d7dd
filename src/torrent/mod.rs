//! .torrent files (BEP 3): the bencode format, the metainfo a download needs, and making and
//! showing torrents the way mktorrent and Transmission do.
//!
//! - [`bencode`]: strict decoder, canonical encoder. Bytes only.
//! - [`metainfo`]: a parsed, validated torrent: name, piece length and hashes, files with
//!   offsets, info-hash over the raw `info` bytes. What a download is driven by.
//! - [`create`]: walk a file or folder, hash its pieces on every core, lay out the bytes.
//! - [`cli`]: `torrentphile torrent create|show`.
//! - [`wire`]: a torrent's name (`bt-<info-hash>`) and `FILE` line on Torrentphile's wire.
//!
//! Nothing here opens a socket; only `create` (reading the data) and `cli` touch the disk.

pub mod bencode;
pub mod cli;
pub mod create;
pub mod metainfo;
pub mod wire;

pub use metainfo::{FileEntry, Metainfo, MetainfoError};
