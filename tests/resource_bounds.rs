//! Scoring memory stays bounded: a huge batch is processed in chunks (its peak memory is far
//! below one activation tensor for the whole batch), and thousands of calls do not make the
//! resident set grow. Linux only (reads /proc/self/status); elsewhere the test says it skips.
//!
//! One test in its own binary, so no other test's allocations move the numbers.

mod support;

use ddaebm::model::CHUNK_ROWS;
use support::{random_model, rows, status_bytes, Kind};

const DIM: usize = 4;
const MIB: f64 = 1024.0 * 1024.0;

/// Resets the peak resident set (VmHWM) to the current one; false where the kernel refuses.
fn reset_peak() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

#[test]
fn scoring_memory_is_bounded() {
    if status_bytes("VmRSS:").is_none() {
        eprintln!("skipped: /proc/self/status is not readable here");
        return;
    }
    // The trainer's default energy network: 2 × 128 hidden units in the head.
    let width = 128;
    let model = random_model(DIM, &[width, width], Kind::BaseMeasure);

    // --- a huge batch is scored in chunks ---
    let n = 500_000;
    let x = rows(n, DIM, 0);
    model
        .energy(&x[..2 * CHUNK_ROWS * DIM], 2 * CHUNK_ROWS)
        .unwrap(); // warm-up at chunk size
    let peak_reset = reset_peak();
    let before = status_bytes("VmHWM:").unwrap();
    let energy = model.energy(&x, n).unwrap();
    let growth = status_bytes("VmHWM:").unwrap().saturating_sub(before);
    assert_eq!(energy.len(), n);
    assert!(energy.iter().all(|e| !e.is_nan()));
    // One (n, width) f32 activation for the whole batch; an unchunked pass holds several.
    let one_activation = (n * width * 4) as u64;
    println!(
        "huge batch: {n} rows, peak grew by {:.1} MiB (one unchunked activation: {:.1} MiB; \
         peak reset: {peak_reset})",
        growth as f64 / MIB,
        one_activation as f64 / MIB
    );
    assert!(
        growth < one_activation / 2,
        "peak memory grew by {growth} bytes for {n} rows (one activation is {one_activation})"
    );

    // --- thousands of calls: the resident set settles ---
    let batch = rows(64, DIM, 1);
    let mut round = |i: usize| {
        let r = i % 4;
        match r {
            0 => assert_eq!(model.energy(&batch, 64).unwrap().len(), 64),
            1 => assert_eq!(model.screen(&batch, 64).unwrap().is_ood.len(), 64),
            2 => assert_eq!(model.pvalues(&batch, 64).unwrap().len(), 64),
            _ => assert_eq!(model.sample(16, i as u64).unwrap().len(), 16 * DIM),
        }
    };
    let (warm_up, calls) = (400, 4000);
    (0..warm_up).for_each(&mut round);
    let rss_warm = status_bytes("VmRSS:").unwrap();
    (warm_up..warm_up + calls / 2).for_each(&mut round);
    let rss_half = status_bytes("VmRSS:").unwrap();
    (warm_up + calls / 2..warm_up + calls).for_each(&mut round);
    let rss_end = status_bytes("VmRSS:").unwrap();
    let growth = rss_end.saturating_sub(rss_warm);
    println!(
        "long loop: {calls} calls after {warm_up} warm-up calls; RSS {:.1} -> {:.1} -> {:.1} MiB",
        rss_warm as f64 / MIB,
        rss_half as f64 / MIB,
        rss_end as f64 / MIB
    );
    // A leak of even 1 KiB per call would add ~4 MiB.
    assert!(
        growth < 4 * 1024 * 1024,
        "RSS grew by {growth} bytes over {calls} calls"
    );
}
