//! Case 10, accounts: PBKDF2 at the default count (client side) and a whole SCRAM login over
//! the tracker link, as times with no baseline; then a group download (GRANT, ticket, pieces)
//! against the same file downloaded publicly from the same holder, alternating in the same run
//! (goal >= 0.97x public).

use std::error::Error;
use std::fs;
use std::net::TcpListener;
use std::path::Path;
use std::time::{Duration, Instant};

use super::common::{TempDir, free_bytes, random_file, rate, secs, start_peer, timed_download};
use super::report::{Section, median, target};
use super::{Bench, MIB, Res};
use torrentphile::tracker::{Tracker, TrackerConfig};

/// Login at the default PBKDF2 count (the client's derivation alone, and a whole login over
/// the tracker link), then the same file fetched as a group file (GRANT, TICKET, pieces) and
/// as a public one from one holder, alternating in the same run.
pub fn accounts_case(b: &mut Bench, s: &mut Section) -> Res<()> {
    use torrentphile::auth::scram::ClientKeys;
    use torrentphile::protocol::AccountRequest as R;
    use torrentphile::tracker::accounts::{AccountsConfig, DEFAULT_ITERATIONS};
    let (size, runs) = (b.scale.transfer, b.scale.runs);
    if free_bytes(Path::new("/tmp")).unwrap_or(u64::MAX) < 3 * size {
        s.note("skipped: not enough free disk space under /tmp");
        return Ok(());
    }
    let derive: Vec<f64> = (0..runs.max(3))
        .map(|_| {
            let t = Instant::now();
            let _ = ClientKeys::derive(b"bench password", b"0123456789abcdef", DEFAULT_ITERATIONS);
            secs(t) * 1000.0
        })
        .collect();
    let dir = TempDir::new(b.root.join("accounts"))?;
    let config = TrackerConfig {
        idle: Duration::from_secs(300),
        accounts: AccountsConfig::default(),
        ..TrackerConfig::one_host()
    };
    let tracker = Tracker::start(TcpListener::bind("127.0.0.1:0")?, config)?;
    let holder_at = dir.0.join("holder");
    let (file, _, _) = random_file(&holder_at, "big.bin", size)?;
    let holder = start_peer(tracker.addr(), &holder_at)?;
    let fail = |e: String| -> Box<dyn Error> { e.into() };
    holder.create_user("alice", "alice pw").map_err(fail)?;
    holder.login("alice", "alice pw").map_err(fail)?;
    holder
        .account(R::CreateGroup { group: "g".into() })
        .map_err(fail)?;
    holder.upload_group(&file, "g").map_err(fail)?;
    let (mut logins, mut public, mut group) = (Vec::new(), Vec::new(), Vec::new());
    for r in 0..runs {
        let (took, _) = timed_download(tracker.addr(), &dir.0.join(format!("pub{r}")), "big.bin")?;
        public.push(rate(size, took));
        let dl = dir.0.join(format!("grp{r}"));
        let bob = start_peer(tracker.addr(), &dl)?;
        if r == 0 {
            bob.create_user("bob", "bob pw").map_err(fail)?;
        }
        let t = Instant::now();
        bob.login("bob", "bob pw").map_err(fail)?;
        logins.push(secs(t) * 1000.0);
        if r == 0 {
            bob.account(R::Join { group: "g".into() }).map_err(fail)?;
            holder
                .account(R::Accept {
                    group: "g".into(),
                    user: "bob".into(),
                })
                .map_err(fail)?;
        }
        let out = dir.0.join(format!("grp-out{r}"));
        fs::create_dir_all(&out)?;
        let t = Instant::now();
        bob.download_group("g", "big.bin", &out).map_err(fail)?;
        group.push(rate(size, secs(t)));
        let _ = bob.logout();
        drop(bob);
        let _ = fs::remove_dir_all(&dl);
        let _ = fs::remove_dir_all(&out);
    }
    s.row(
        format!("PBKDF2-HMAC-SHA1, {DEFAULT_ITERATIONS} iterations (client side)"),
        "ms",
        derive,
    );
    s.row(
        "login over the tracker link (SCRAM, password)",
        "ms",
        logins,
    );
    let ratio = median(&group) / median(&public);
    s.row("public download, 1 holder", "MB/s", public);
    let row = s.row("group download (ticket), 1 holder", "MB/s", group);
    row.vs = format!("{ratio:.2}x public");
    row.target = target(">= 0.97x public", ratio >= 0.97);
    s.note(format!(
        "{} MiB random file from one in-process holder; the group download asks GINFO, GWHOHAS, \
         GRANT, presents the ticket, then fetches through the multi-holder downloader (a ticket on each worker connection); the public \
         one uses the multi-holder downloader. {DEFAULT_ITERATIONS} iterations: about 50 ms per \
         password login on a laptop core, paid by the client (the tracker never runs PBKDF2), \
         and by an attacker per guess against a stolen state folder",
        size / MIB
    ));
    Ok(())
}
