//! A random fault schedule for the simulated cluster: in each round one node may crash,
//! crash and restart, restart, be cut off by a random partition, or the partition heals;
//! every node that leads proposes a command; then time runs for 10 to 70 ms. Part of `Sim`
//! (a child module); what the schedule is checked against is the caller's business.

use torrentphile::util::Rng;

use super::{RELIABLE, Sim, UNRELIABLE};

impl Sim {
    /// Run `rounds` rounds of a random schedule drawn from this sim's seed, on a reliable or
    /// an unreliable network (drawn too). Commands are named `<prefix>-<k>`.
    pub fn random_schedule(&mut self, rounds: usize, prefix: &str) {
        let mut rng = Rng::new(self.seed);
        self.faults = if rng.below(2) == 0 {
            RELIABLE
        } else {
            UNRELIABLE
        };
        let ids = self.ids();
        let mut k = 0;
        for _ in 0..rounds {
            let id = ids[rng.below(ids.len())];
            match rng.below(9) {
                0 => self.crash(id),
                5 => {
                    self.crash(id);
                    self.restart(id);
                }
                1 | 2 => self.restart(id),
                3 => {
                    let mut order = ids.clone();
                    rng.shuffle(&mut order);
                    let cut = 1 + rng.below(order.len() - 1);
                    self.partition(&[&order[..cut], &order[cut..]]);
                }
                4 => self.heal(),
                _ => {}
            }
            for leader in self.leaders_now() {
                self.propose(leader, &format!("{prefix}-{k}"));
                k += 1;
            }
            self.run(10 + rng.below(60) as u64);
        }
    }
}
