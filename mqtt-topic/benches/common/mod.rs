//! The realistic subscription shape shared by the benchmarks:
//! `tenant/{t}/site/{s}/device/{d}/{metric}`, 10 sites per tenant, 100 devices per site,
//! 10 metrics per device, with about 10 % `+` filters and 1 % `#` filters.

#![allow(dead_code)]

pub(crate) const METRICS: [&str; 10] = [
    "temperature",
    "humidity",
    "pressure",
    "co2",
    "voltage",
    "current",
    "power",
    "rssi",
    "battery",
    "status",
];
pub(crate) const SITES: u64 = 10;
pub(crate) const DEVICES: u64 = 100;

/// A small deterministic PRNG (xorshift64*), so the benchmarks need no extra dependency.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// The topic universe for `n` subscriptions: `n / 10` devices (at least 100), grouped in
/// sites of 100 devices and tenants of 10 sites.
#[derive(Clone, Copy)]
pub(crate) struct Universe {
    pub(crate) tenants: u64,
    pub(crate) sites: u64,
}

impl Universe {
    pub(crate) fn for_subscriptions(n: u64) -> Self {
        let devices = (n / 10).max(DEVICES);
        let sites = devices.div_ceil(DEVICES);
        Self {
            tenants: sites.div_ceil(SITES),
            sites: sites.min(SITES),
        }
    }

    pub(crate) fn topic_count(&self) -> u64 {
        self.tenants * self.sites * DEVICES * METRICS.len() as u64
    }

    /// A random topic name of the universe.
    pub(crate) fn name(&self, rng: &mut Rng) -> String {
        format!(
            "tenant/{}/site/{}/device/{}/{}",
            rng.below(self.tenants),
            rng.below(self.sites),
            rng.below(DEVICES),
            METRICS[rng.below(METRICS.len() as u64) as usize]
        )
    }

    /// The `i`-th topic name, to enumerate the whole universe.
    pub(crate) fn nth_name(&self, i: u64) -> String {
        let m = i % 10;
        let d = (i / 10) % DEVICES;
        let s = (i / 10 / DEVICES) % self.sites;
        let t = i / 10 / DEVICES / self.sites;
        format!("tenant/{t}/site/{s}/device/{d}/{}", METRICS[m as usize])
    }

    /// A random filter: 89 % exact names, 10 % with one `+` level (tenant, site, device or
    /// metric), 1 % ending in `#` (at tenant 10 %, site 30 %, device 60 % of the time).
    pub(crate) fn filter(&self, rng: &mut Rng) -> String {
        let t = rng.below(self.tenants).to_string();
        let s = rng.below(self.sites).to_string();
        let d = rng.below(DEVICES).to_string();
        let m = METRICS[rng.below(METRICS.len() as u64) as usize].to_string();
        let roll = rng.below(100);
        if roll < 89 {
            format!("tenant/{t}/site/{s}/device/{d}/{m}")
        } else if roll < 99 {
            let mut parts = [t, s, d, m];
            parts[rng.below(4) as usize] = "+".to_owned();
            let [t, s, d, m] = parts;
            format!("tenant/{t}/site/{s}/device/{d}/{m}")
        } else {
            match rng.below(10) {
                0 => format!("tenant/{t}/#"),
                1..=3 => format!("tenant/{t}/site/{s}/#"),
                _ => format!("tenant/{t}/site/{s}/device/{d}/#"),
            }
        }
    }

    /// `n` subscriptions: (filter, client key, QoS).
    pub(crate) fn subscriptions(&self, n: u64, seed: u64) -> Vec<(String, u64, u8)> {
        let mut rng = Rng::new(seed);
        (0..n)
            .map(|i| (self.filter(&mut rng), i, (i % 3) as u8))
            .collect()
    }
}
