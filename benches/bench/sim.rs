//! Case 8: the wall time of `make sim`'s classic scenario, the built binary as a whole
//! process. An absolute target (< 2 s); no baseline.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::common::{TempDir, secs, wait_bounded};
use super::report::{Section, median, target};
use super::{BIN, Bench, Res};

/// Case 8: `sim --scenario classic` by the built binary, whole-process wall time.
pub fn sim(b: &mut Bench, s: &mut Section) -> Res<()> {
    let dir = TempDir::new(b.root.join("sim"))?;
    let mut times = Vec::new();
    for _ in 0..b.scale.sim_runs {
        let mut cmd = Command::new(BIN);
        cmd.args("sim --scenario classic --tracker-port 0 --base-port 0 --quiet --root".split(' '));
        let t = Instant::now();
        wait_bounded(
            &mut cmd.arg(&dir.0).stdout(Stdio::null()).spawn()?,
            Duration::from_secs(60),
            |_| {},
        )?;
        times.push(secs(t));
    }
    let m = median(&times);
    s.row("sim --scenario classic, built binary", "s", times)
        .target = target("< 2 s", m < 2.0);
    s.note(format!("wall time of `{BIN} sim ...` as a whole process"));
    Ok(())
}
