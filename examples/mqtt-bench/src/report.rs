//! The result of one run: a human-readable summary and one JSON line.

use std::fmt::Write as _;

/// Everything a scenario measured; `None` fields are printed as `null`.
#[derive(Debug, Default, Clone)]
pub(crate) struct Report {
    pub(crate) scenario: &'static str,
    pub(crate) label: Option<String>,
    pub(crate) version: &'static str,
    pub(crate) qos: Option<u8>,
    pub(crate) payload: usize,
    pub(crate) publishers: usize,
    pub(crate) subscribers: usize,
    /// Messages the publishers sent (QoS 1/2: also the ones not acknowledged).
    pub(crate) published: u64,
    /// QoS 1/2 messages whose flow completed (PUBACK / PUBCOMP).
    pub(crate) acked: Option<u64>,
    /// Deliveries expected by all subscribers together.
    pub(crate) expected: u64,
    /// Distinct deliveries.
    pub(crate) delivered: u64,
    pub(crate) lost: u64,
    pub(crate) duplicated: u64,
    pub(crate) unexpected: u64,
    pub(crate) qos2_id_reuse: u64,
    pub(crate) qos2_retransmits: u64,
    /// Time from the first publish to the last delivery.
    pub(crate) seconds: f64,
    /// Deliveries per second.
    pub(crate) rate: Option<f64>,
    /// Publish rate actually achieved (latency mode).
    pub(crate) publish_rate: Option<f64>,
    pub(crate) p50_ms: Option<f64>,
    pub(crate) p99_ms: Option<f64>,
    pub(crate) max_ms: Option<f64>,
    pub(crate) samples: Option<u64>,
    pub(crate) connections: Option<u64>,
    pub(crate) connect_failures: Option<u64>,
    pub(crate) connects_per_s: Option<f64>,
    pub(crate) rss_before_kib: Option<u64>,
    pub(crate) rss_after_kib: Option<u64>,
    pub(crate) rss_kib_per_conn: Option<f64>,
    /// Whether the run ended on the idle timeout rather than on completion.
    pub(crate) timed_out: bool,
    pub(crate) errors: Vec<String>,
}

fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn opt_f(v: Option<f64>, decimals: usize) -> String {
    match v {
        Some(x) if x.is_finite() => format!("{x:.decimals$}"),
        _ => "null".to_owned(),
    }
}

fn opt_u(v: Option<u64>) -> String {
    v.map_or_else(|| "null".to_owned(), |x| x.to_string())
}

impl Report {
    /// One JSON object on one line.
    pub(crate) fn to_json(&self) -> String {
        let label = self
            .label
            .as_deref()
            .map_or_else(|| "null".to_owned(), json_str);
        let qos = self
            .qos
            .map_or_else(|| "null".to_owned(), |q| q.to_string());
        let errors: Vec<String> = self.errors.iter().map(|e| json_str(e)).collect();
        format!(
            concat!(
                "{{\"scenario\":{},\"label\":{},\"version\":{},\"qos\":{},\"payload\":{},",
                "\"publishers\":{},\"subscribers\":{},\"published\":{},\"acked\":{},",
                "\"expected\":{},\"delivered\":{},\"lost\":{},\"duplicated\":{},",
                "\"unexpected\":{},\"qos2_id_reuse\":{},\"qos2_retransmits\":{},",
                "\"seconds\":{:.4},\"rate\":{},\"publish_rate\":{},",
                "\"p50_ms\":{},\"p99_ms\":{},\"max_ms\":{},\"samples\":{},",
                "\"connections\":{},\"connect_failures\":{},\"connects_per_s\":{},",
                "\"rss_before_kib\":{},\"rss_after_kib\":{},\"rss_kib_per_conn\":{},",
                "\"timed_out\":{},\"errors\":[{}]}}"
            ),
            json_str(self.scenario),
            label,
            json_str(self.version),
            qos,
            self.payload,
            self.publishers,
            self.subscribers,
            self.published,
            opt_u(self.acked),
            self.expected,
            self.delivered,
            self.lost,
            self.duplicated,
            self.unexpected,
            self.qos2_id_reuse,
            self.qos2_retransmits,
            self.seconds,
            opt_f(self.rate, 1),
            opt_f(self.publish_rate, 1),
            opt_f(self.p50_ms, 3),
            opt_f(self.p99_ms, 3),
            opt_f(self.max_ms, 3),
            opt_u(self.samples),
            opt_u(self.connections),
            opt_u(self.connect_failures),
            opt_f(self.connects_per_s, 1),
            opt_u(self.rss_before_kib),
            opt_u(self.rss_after_kib),
            opt_f(self.rss_kib_per_conn, 3),
            self.timed_out,
            errors.join(","),
        )
    }

    /// A few lines for a human.
    pub(crate) fn summary(&self) -> String {
        let mut s = String::new();
        let _ = write!(s, "{}", self.scenario);
        if let Some(l) = &self.label {
            let _ = write!(s, " [{l}]");
        }
        let _ = write!(s, ", MQTT {}", self.version);
        if let Some(q) = self.qos {
            let _ = write!(s, ", QoS {q}");
        }
        if self.publishers + self.subscribers > 0 {
            let _ = write!(
                s,
                ", {} pub / {} sub, {} B payload",
                self.publishers, self.subscribers, self.payload
            );
        }
        s.push('\n');
        if self.scenario != "idle" {
            let _ = write!(s, "  published  {}", self.published);
            if let Some(a) = self.acked {
                let _ = write!(s, " (acknowledged {a})");
            }
            let _ = writeln!(
                s,
                "\n  delivered  {} of {} expected: lost {}, duplicated {}",
                self.delivered, self.expected, self.lost, self.duplicated
            );
            if self.unexpected + self.qos2_id_reuse + self.qos2_retransmits > 0 {
                let _ = writeln!(
                    s,
                    "  unexpected {}, QoS 2 packet id reused while in flight {}, QoS 2 retransmits {}",
                    self.unexpected, self.qos2_id_reuse, self.qos2_retransmits
                );
            }
            let _ = write!(s, "  time       {:.3} s", self.seconds);
            if self.timed_out {
                s.push_str(" (ended on the idle timeout)");
            }
            s.push('\n');
            if let Some(r) = self.rate {
                let _ = writeln!(s, "  rate       {r:.0} deliveries/s");
            }
            if let Some(r) = self.publish_rate {
                let _ = writeln!(s, "  publish    {r:.0} msg/s");
            }
            if let (Some(p50), Some(p99), Some(max)) = (self.p50_ms, self.p99_ms, self.max_ms) {
                let _ = writeln!(
                    s,
                    "  latency    p50 {p50:.3} ms, p99 {p99:.3} ms, max {max:.3} ms ({} samples)",
                    self.samples.unwrap_or_default()
                );
            }
        } else {
            let _ = writeln!(
                s,
                "  connections {} ({} failed) in {:.3} s: {:.0} connects/s",
                self.connections.unwrap_or_default(),
                self.connect_failures.unwrap_or_default(),
                self.seconds,
                self.connects_per_s.unwrap_or_default()
            );
            if let (Some(b), Some(a)) = (self.rss_before_kib, self.rss_after_kib) {
                let _ = writeln!(
                    s,
                    "  broker RSS  {b} KiB -> {a} KiB: {:.2} KiB per connection",
                    self.rss_kib_per_conn.unwrap_or_default()
                );
            }
        }
        for e in &self.errors {
            let _ = writeln!(s, "  error: {e}");
        }
        s
    }
}

/// The `q` quantile (0..=1) of sorted samples.
pub(crate) fn quantile(sorted: &[u32], q: f64) -> Option<u32> {
    if sorted.is_empty() {
        return None;
    }
    let last = sorted.len() - 1;
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let i = ((last as f64) * q).round() as usize;
    sorted.get(i.min(last)).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles() {
        let v: Vec<u32> = (1..=100).collect();
        assert_eq!(quantile(&v, 0.5), Some(51));
        assert_eq!(quantile(&v, 0.99), Some(99));
        assert_eq!(quantile(&v, 1.0), Some(100));
        assert_eq!(quantile(&[], 0.5), None);
    }

    #[test]
    fn json_is_one_line() {
        let r = Report {
            scenario: "fan-in",
            errors: vec!["a \"b\"\nc".to_owned()],
            ..Report::default()
        };
        let j = r.to_json();
        assert!(!j.contains('\n'));
        assert!(j.contains(r#""errors":["a \"b\"\nc"]"#));
        assert!(j.contains(r#""p50_ms":null"#));
    }
}
