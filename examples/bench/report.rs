//! The table and the JSON file.

use std::path::Path;

use serde_json::json;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Metric {
    TasksPerSec,
    AllWokenSecs,
    P50Micros,
    P99Micros,
    Page0Micros,
    Page10kMicros,
    PageDeepOffsetMicros,
    PageDeepCursorMicros,
    BytesPerRecord,
    BytesPerCaller,
    BytesPerHubWaiter,
    RoundTripMicros,
}

impl Metric {
    pub fn name(self) -> &'static str {
        match self {
            Metric::TasksPerSec => "tasks/s",
            Metric::AllWokenSecs => "all woken (s)",
            Metric::P50Micros => "wake p50 (µs)",
            Metric::P99Micros => "wake p99 (µs)",
            Metric::Page0Micros => "page at offset 0 (µs)",
            Metric::Page10kMicros => "page at offset 10,000 (µs)",
            Metric::PageDeepOffsetMicros => "page 3/4 deep, by offset (µs)",
            Metric::PageDeepCursorMicros => "page 3/4 deep, by cursor (µs)",
            Metric::BytesPerRecord => "bytes per record",
            Metric::BytesPerCaller => "bytes per waiting caller",
            Metric::BytesPerHubWaiter => "bytes per hub waiter",
            Metric::RoundTripMicros => "round trip (µs)",
        }
    }

    pub fn key(self) -> &'static str {
        match self {
            Metric::TasksPerSec => "tasks_per_s",
            Metric::AllWokenSecs => "all_woken_s",
            Metric::P50Micros => "p50_us",
            Metric::P99Micros => "p99_us",
            Metric::Page0Micros => "page0_us",
            Metric::Page10kMicros => "page10000_us",
            Metric::PageDeepOffsetMicros => "page_deep_offset_us",
            Metric::PageDeepCursorMicros => "page_deep_cursor_us",
            Metric::BytesPerRecord => "bytes_per_record",
            Metric::BytesPerCaller => "bytes_per_waiter",
            Metric::BytesPerHubWaiter => "bytes_per_hub_waiter",
            Metric::RoundTripMicros => "round_trip_us",
        }
    }

    fn higher_is_better(self) -> bool {
        matches!(self, Metric::TasksPerSec)
    }
}

struct Row {
    label: String,
    workload: String,
    system: String,
    metric: Metric,
    rounds: Vec<f64>,
}

impl Row {
    fn median(&self) -> Option<f64> {
        let mut sorted = self.rounds.clone();
        sorted.sort_by(f64::total_cmp);
        sorted.get(sorted.len() / 2).copied()
    }
}

pub struct Report {
    quick: bool,
    rows: Vec<Row>,
}

impl Report {
    pub fn new(quick: bool) -> Report {
        Report {
            quick,
            rows: Vec::new(),
        }
    }

    pub fn add(
        &mut self,
        label: &str,
        workload: &str,
        system: &str,
        metric: Metric,
        rounds: Vec<f64>,
    ) {
        self.rows.push(Row {
            label: label.to_owned(),
            workload: workload.to_owned(),
            system: system.to_owned(),
            metric,
            rounds,
        });
    }

    /// One block per workload and metric: the median of the rounds, the ratio to the block's
    /// first row, and how many times better than flowrra when it ran.
    pub fn print_table(&self) {
        let mut blocks: Vec<(&str, Metric)> = Vec::new();
        for row in &self.rows {
            if !blocks.contains(&(row.label.as_str(), row.metric)) {
                blocks.push((row.label.as_str(), row.metric));
            }
        }
        println!();
        if self.quick {
            println!("(--quick: smoke-run sizes; these numbers are not comparable to a full run)");
        }
        for (label, metric) in blocks {
            let rows: Vec<&Row> = self
                .rows
                .iter()
                .filter(|row| row.label == label && row.metric == metric)
                .collect();
            let first = rows.first().and_then(|row| row.median());
            let flowrra = rows
                .iter()
                .find(|row| row.system.starts_with("flowrra"))
                .and_then(|row| row.median());
            println!("\n{} | {}", rows[0].workload, metric.name());
            println!(
                "  {:<28} {:>14} {:>10} {:>14} {:>7}",
                "system", "median", "÷ first", "× vs flowrra", "rounds"
            );
            for row in rows {
                let median = row.median();
                let ratio = match (median, first) {
                    (Some(m), Some(f)) if f != 0.0 => format!("{:.2}", m / f),
                    _ => "-".to_owned(),
                };
                let better = match (median, flowrra) {
                    (Some(m), Some(p)) if m != 0.0 && p != 0.0 => {
                        let times = if metric.higher_is_better() {
                            m / p
                        } else {
                            p / m
                        };
                        format!("{times:.2}x")
                    }
                    _ => "-".to_owned(),
                };
                let median = median.map_or("failed".to_owned(), format_value);
                println!(
                    "  {:<28} {:>14} {:>10} {:>14} {:>7}",
                    row.system,
                    median,
                    ratio,
                    better,
                    row.rounds.len()
                );
            }
        }
        println!();
    }

    pub fn write_json(&self, path: &Path) -> std::io::Result<()> {
        let rows: Vec<_> = self
            .rows
            .iter()
            .map(|row| {
                json!({
                    "workload": row.label,
                    "description": row.workload,
                    "system": row.system,
                    "metric": row.metric.key(),
                    "median": row.median(),
                    "rounds": row.rounds,
                })
            })
            .collect();
        let document = json!({
            "quick": self.quick,
            "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            "results": rows,
        });
        std::fs::write(path, serde_json::to_vec_pretty(&document)?)
    }
}

fn format_value(value: f64) -> String {
    if value >= 100.0 {
        format!("{value:.0}")
    } else if value >= 1.0 {
        format!("{value:.2}")
    } else {
        format!("{value:.4}")
    }
}
