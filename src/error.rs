//! One discipline for errors: each stage has its own error type, with its
//! own I/O variants and typed causes (`#[source]`), and each error knows the
//! hint to show and the exit status it means. The CLI prints the cause
//! chain, then the hint, and exits with the status.

/// Exit status: the work failed (no resolution, a hash mismatch, an
/// incompatible binary, an unreachable server).
pub const WORK_FAILED: i32 = 1;
/// Exit status: bad usage or input (arguments, a recipe, a target, a lock).
pub const BAD_INPUT: i32 = 2;
/// Exit status of a run stopped by Ctrl-C (128 + SIGINT).
pub const INTERRUPTED: i32 = 130;

/// What the command line needs of an error besides its message.
pub trait Diagnose: std::error::Error {
    /// A suggestion for the user, when there is one.
    fn hint(&self) -> Option<String> {
        None
    }

    /// The exit status this error means: [`WORK_FAILED`] unless it says
    /// otherwise.
    fn exit_code(&self) -> i32 {
        WORK_FAILED
    }
}
