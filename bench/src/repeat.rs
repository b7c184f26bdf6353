//! Repeated runs of one case: the case reported is the median run, with the
//! minimum, maximum and every run's rate beside it.

use anyhow::Result;

use crate::report::Case;

/// Runs `measure` `repeats` times (at least once) and combines the runs;
/// stops at the first failure.
pub fn repeat(repeats: usize, mut measure: impl FnMut() -> Result<Case>) -> Result<Case> {
    let repeats = repeats.max(1);
    let mut runs = Vec::with_capacity(repeats);
    for i in 0..repeats {
        let case = measure()?;
        if repeats > 1 {
            eprintln!(
                "  run {}/{repeats}: {} {} B: {:.3} Mpps",
                i + 1,
                case.name,
                case.frame_size,
                case.mpps
            );
        }
        runs.push(case);
    }
    Ok(combine(runs).expect("at least one run"))
}

/// The median of `values` (the mean of the middle two for an even count).
pub fn median(values: &[f64]) -> Option<f64> {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| !v.is_nan()).collect();
    if sorted.is_empty() {
        return None;
    }
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    Some(if sorted.len() % 2 == 1 {
        sorted[mid]
    } else {
        (sorted[mid - 1] + sorted[mid]) / 2.0
    })
}

/// Combines single runs of one case: its fields come from the run at the
/// (lower) middle of the rates; the rate is the median, with min, max and
/// the runs in order; CPU per packet is the median of the runs that have it.
pub fn combine(runs: Vec<Case>) -> Option<Case> {
    let rates: Vec<f64> = runs.iter().map(|c| c.mpps).collect();
    let cpu: Vec<f64> = runs.iter().filter_map(|c| c.cpu_ns_per_packet).collect();
    let mut order: Vec<usize> = (0..runs.len()).collect();
    order.sort_by(|&a, &b| rates[a].total_cmp(&rates[b]));
    let middle = *order.get((order.len().max(1) - 1) / 2)?;
    let mut case = runs.into_iter().nth(middle)?;
    let mpps = median(&rates)?;
    case.set_rate(mpps * 1e6);
    case.mpps_min = rates.iter().copied().fold(f64::INFINITY, f64::min);
    case.mpps_max = rates.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    case.runs = rates;
    case.cpu_ns_per_packet = median(&cpu);
    Some(case)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(mpps: f64, cpu: Option<f64>, tag: u32) -> Case {
        Case::new("x", "k", 64, mpps * 1e6)
            .with_cpu(cpu)
            .with("tag", tag)
    }

    #[test]
    fn the_median_run_with_its_spread() {
        let c = combine(vec![
            run(3.0, Some(300.0), 0),
            run(1.0, Some(100.0), 1),
            run(2.0, None, 2),
        ])
        .unwrap();
        assert_eq!((c.mpps, c.mpps_median), (2.0, 2.0));
        assert_eq!((c.mpps_min, c.mpps_max), (1.0, 3.0));
        assert_eq!(c.runs, vec![3.0, 1.0, 2.0]);
        assert_eq!(c.cpu_ns_per_packet, Some(200.0));
        assert_eq!(c.extra["tag"], 2);
        assert!((c.ns_per_pkt - 500.0).abs() < 1e-9);
    }

    #[test]
    fn an_even_count_takes_the_middle_two() {
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&[]), None);
        let c = combine(vec![run(1.0, None, 0), run(3.0, None, 1)]).unwrap();
        assert_eq!((c.mpps, c.extra["tag"].as_u64()), (2.0, Some(0)));
        assert_eq!(c.cpu_ns_per_packet, None);
    }
}
