//! `ddaebm-train`: fit, score, sample, evaluate, calibrate and inspect ddaebm detectors. The
//! subcommands live in `cli/`; this file sets up the allocator, the thread count and the error
//! reporting.

mod cli;

use std::process::ExitCode;

use clap::Parser;
use ddaebm_train::fit::Interrupted;

use cli::Cli;

/// Training allocates and frees a buffer per tensor operation (hundreds per step, up to a few
/// hundred KB each); mimalloc reuses them where glibc's malloc unmaps and re-faults the large
/// ones (`bench/train_speed.sh`, see BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc's option enum (the same in its v2 and v3 headers;
/// libmimalloc-sys names no constant for it).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Tells mimalloc to keep freed memory instead of returning it to the system after 10 ms: a
/// training step frees and re-allocates the same buffers, and handing them back made every step
/// fault fresh zeroed pages in. The
/// process holds on to its peak working set, which training reaches every step anyway.
fn keep_freed_memory() {
    // SAFETY: sets one integer option; mimalloc reads options atomically.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
    debug_assert_eq!(
        unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) },
        -1
    );
}

fn main() -> ExitCode {
    keep_freed_memory();
    // One line, never a backtrace, if something unexpected happens.
    std::panic::set_hook(Box::new(|info| {
        let msg = info.to_string().replace('\n', " ");
        eprintln!("error: internal error: {msg}");
    }));
    let cli = Cli::parse();
    let threads = cli.command.training_threads();
    if let Some(n) = threads.filter(|&n| n > 0) {
        if std::env::var_os("RAYON_NUM_THREADS").is_none() {
            // Before any tensor operation: candle sizes its thread pools on first use.
            std::env::set_var("RAYON_NUM_THREADS", n.to_string());
        }
    }
    match std::panic::catch_unwind(|| cli::run(cli)) {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(e)) => match e.downcast_ref::<Interrupted>() {
            Some(stopped) => {
                eprintln!("{stopped}");
                ExitCode::from(130)
            }
            None => {
                eprintln!("error: {e:#}");
                ExitCode::FAILURE
            }
        },
        Err(_) => ExitCode::from(101),
    }
}
