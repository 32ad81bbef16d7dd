//! Case 2, swarm: one seeder and 8, then 16 downloaders starting at once (`sim::swarm_run`):
//! total time, the seeder's upload in copies of the file, the aggregate verified rate.
//! Baselines in the same run: one downloader alone, SHA-1 on 2 threads (case 1's, or measured
//! here), and a plain TCP copy fan-out to as many receivers. Goals: aggregate >= 0.7x SHA-1 on
//! 2 threads, >= 0.6x the fan-out (proposed); the seeder uploads <= 1.5 copies.

use std::fs;

use super::common::{TempDir, rate};
use super::report::{Section, best_run, median, num, target};
use super::tcp::tcp_fanout;
use super::transfer::sha1_rate;
use super::{Bench, MIB, Res};
use torrentphile::sha1::Backend;
use torrentphile::sim::{SimConfig, swarm_run, write_random};
use torrentphile::util::Rng;

/// Case 2: one seeder, 8 and 16 downloaders at once.
pub fn swarm(b: &mut Bench, s: &mut Section) -> Res<()> {
    let dir = TempDir::new(b.root.join("swarm"))?;
    let (mib, runs) = (b.scale.swarm_mib, b.scale.runs.min(3));
    let hash2 = b.sha1_2t.unwrap_or_else(|| {
        let mut data = vec![0u8; (mib * MIB) as usize];
        Rng::new(7).fill(&mut data);
        sha1_rate(Backend::best(), &data, 2)
    });
    let run = |downloaders: usize| -> Res<(f64, f64)> {
        let (root, narrate) = (dir.0.clone(), false);
        let (tracker_port, base_port, size_mib) = (0, 0, mib);
        let config = SimConfig {
            root,
            tracker_port,
            base_port,
            size_mib,
            downloaders,
            narrate,
            random: false,
        };
        let r = swarm_run(&config, true)?;
        let _ = fs::remove_dir_all(dir.0.join("swarm"));
        Ok((r.elapsed.as_secs_f64(), r.seeder_copies()))
    };
    // The rebased baseline: the same bytes moved by plain TCP copies, one sender fanning the
    // file out to n receivers at once, each writing its own file to disk as a download does.
    let src = dir.0.join("fanout-src.bin");
    write_random(&src, mib * MIB, 9)?;
    let mut fanout = std::collections::BTreeMap::new();
    for n in [8usize, 16] {
        let rates = (0..runs)
            .map(|_| Ok(rate(n as u64 * mib * MIB, tcp_fanout(&src, &dir.0, n)?)))
            .collect::<Res<Vec<f64>>>()?;
        fanout.insert(n, (median(&rates), best_run(&rates)));
        s.row(
            format!("baseline: plain TCP copy fan-out to {n}"),
            "MB/s",
            rates,
        );
    }
    let _ = fs::remove_file(&src);
    let alone = (0..runs)
        .map(|_| Ok(run(1)?.0))
        .collect::<Res<Vec<f64>>>()?;
    let alone_m = median(&alone);
    s.row("1 downloader alone: time", "s", alone);
    for n in [8usize, 16] {
        let (mut times, mut copies) = (Vec::new(), Vec::new());
        for _ in 0..runs {
            let (t, c) = run(n)?;
            times.push(t);
            copies.push(c);
        }
        let rates: Vec<f64> = times
            .iter()
            .map(|&t| rate(n as u64 * mib * MIB, t))
            .collect();
        let (tm, cm, rm) = (median(&times), median(&copies), median(&rates));
        let best_f = best_run(&rates) / fanout[&n].1;
        let row = s.row(format!("{n} downloaders: total time"), "s", times);
        row.vs = format!("{:.2}x the time of 1 alone", tm / alone_m);
        let row = s.row(format!("{n} downloaders: seeder upload"), "copies", copies);
        row.target = target("<= 1.5 copies", cm <= 1.5);
        let row = s.row(
            format!("{n} downloaders: aggregate verified"),
            "MB/s",
            rates,
        );
        let f = rm / fanout[&n].0;
        row.vs = format!(
            "{:.2}x sha1 2T ({} MB/s), {f:.2}x TCP fan-out",
            rm / hash2,
            num(hash2)
        );
        row.target = target(">= 0.7x sha1 2T", rm >= 0.7 * hash2);
        let what = format!("swarm 1 -> {n} aggregate vs sha1 on 2 threads");
        let r = rm / hash2;
        b.goal(&what, format!("{r:.2}x"), ">= 0.7x", r >= 0.7);
        let what = format!("swarm 1 -> {n} aggregate vs a plain TCP copy fan-out (proposed)");
        b.goal_best(&what, f, best_f, ">= 0.6x", f >= 0.6);
    }
    s.note(format!(
        "sim::swarm_run: 1 seeder and the downloaders in this process, {mib} MiB random file, \
         all starting at once; time is until the last copy is verified. The TCP fan-out \
         sends the same size to n receivers at once over n connections (sendfile out, \
         positioned writes in, each file fdatasync'd every 250 ms and fsync'd at the end): \
         the same bytes into the same number of files with no protocol and no hashing"
    ));
    Ok(())
}
