//! What the process itself needs: logging, the signals that stop a run,
//! the allocator's arenas, and the peak memory report the tests read.

/// Log to stderr: warnings, or more with `-v` (`-vv`, `-vvv`); `BUNDLE_LOG`
/// takes a filter of its own (`bundle=debug`).
pub fn init_logging(verbose: u8) {
    let level = match verbose {
        0 => "warn",
        1 => "bundle=info",
        2 => "bundle=debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("BUNDLE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(
            std::io::IsTerminal::is_terminal(&std::io::stderr())
                && std::env::var_os("NO_COLOR").is_none(),
        )
        .with_target(false)
        .init();
}

/// The first of SIGINT, SIGTERM and SIGHUP to arrive: its name and number.
pub async fn interrupted() -> (&'static str, i32) {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).ok();
    let mut hup = signal(SignalKind::hangup()).ok();
    let next = |s: &mut Option<tokio::signal::unix::Signal>| {
        let s = s.take();
        async move {
            match s {
                Some(mut s) => {
                    s.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => ("SIGINT", 2),
        _ = next(&mut term) => ("SIGTERM", 15),
        _ = next(&mut hup) => ("SIGHUP", 1),
    }
}

/// With `BUNDLE_REPORT_PEAK_MEMORY=1`, print this process's peak resident
/// memory (VmHWM) on stderr as it ends: how the tests measure that memory
/// stays bounded whatever a server or an archive sends.
pub fn report_peak_memory() {
    if std::env::var_os("BUNDLE_REPORT_PEAK_MEMORY").is_none_or(|v| v != "1") {
        return;
    }
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    if let Some(line) = status.lines().find(|l| l.starts_with("VmHWM:")) {
        let kib = line
            .trim_start_matches("VmHWM:")
            .trim()
            .trim_end_matches("kB")
            .trim();
        eprintln!("bundle: peak memory {kib} KiB");
    }
}

/// glibc gives each thread that allocates its own arena (up to 8 per core),
/// and memory freed in one is not reused by another: with downloads, file
/// writes and scans on several threads, peak memory for a 130 MB set of
/// wheels was 125–140 MB, against 90 MB with two arenas (measured; the time
/// did not change). Called before any thread starts.
pub fn fewer_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter; no other thread
    // exists yet.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}
