//! Ctrl-C handling: long loops poll [`requested`] between blocks, write their
//! checkpoint and exit cleanly instead of dying mid-write.

use std::sync::atomic::{AtomicBool, Ordering};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Installs the Ctrl-C handler (idempotent; a second Ctrl-C kills the process).
pub fn install() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = ctrlc::set_handler(|| {
            if INTERRUPTED.swap(true, Ordering::SeqCst) {
                std::process::exit(130);
            }
            eprintln!("\ninterrupt: finishing the current block and writing a checkpoint (Ctrl-C again to kill)");
        });
    });
}

/// Whether Ctrl-C was pressed.
pub fn requested() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// Exit code of a run stopped by Ctrl-C after writing its checkpoint.
pub const EXIT_INTERRUPTED: i32 = 130;

/// The error a command returns after it stopped on Ctrl-C and saved its work;
/// `main` prints the message and exits with [`EXIT_INTERRUPTED`].
#[derive(Debug)]
pub struct Interrupted(pub String);

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Interrupted {}

/// Test hook: with `FIELDFLOW_STOP_AFTER_BLOCKS=k` in the environment a run
/// behaves as if Ctrl-C came after its k-th written block (used by the
/// resume tests, which need an interruption at a known point).
pub fn simulated(blocks_written: usize) -> bool {
    std::env::var("FIELDFLOW_STOP_AFTER_BLOCKS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .is_some_and(|k| blocks_written >= k)
}
