//! Progress reporting. Library code calls a [`Reporter`]; only the CLI draws.

/// Pipeline stages, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Plan,
    Fetch,
    Stage,
    /// Docker work: apt packages, wheels built from sdists.
    Build,
    Check,
    Assemble,
    /// Running the bundle in the target's sandbox image.
    Verify,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Plan => "resolving",
            Stage::Fetch => "fetching",
            Stage::Stage => "staging",
            Stage::Build => "building",
            Stage::Check => "checking",
            Stage::Assemble => "assembling",
            Stage::Verify => "verifying",
        }
    }
}

/// Receives progress events. Every method has a no-op default.
pub trait Reporter: Send + Sync {
    /// A stage begins.
    fn stage(&self, _stage: Stage) {}
    /// The resolver looks at a package.
    fn resolving(&self, _package: &str) {}
    /// The fetch stage will bring `files` files (`bytes` in all, when known).
    fn fetch_planned(&self, _files: usize, _bytes: Option<u64>) {}
    /// A transfer begins; `total` is its size when known.
    fn download_start(&self, _id: u64, _label: &str, _total: Option<u64>) {}
    /// `bytes` more bytes of transfer `id` arrived.
    fn download_progress(&self, _id: u64, _bytes: u64) {}
    /// Transfer `id` ended (successfully or not).
    fn download_done(&self, _id: u64) {}
    /// A long step begins inside a stage (a Docker command, an image
    /// build). Its id is unique in the process; steps may overlap.
    fn step_start(&self, _id: StepId, _what: &str) {}
    /// Step `id` ended after `seconds` (successfully or not).
    fn step_done(&self, _id: StepId, _seconds: f64) {}
    /// Something the user should know that does not stop the work.
    fn warn(&self, _message: &str) {}
}

/// The id of a step, unique in the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StepId(pub u64);

static NEXT_STEP: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// A step in progress: reported when made, and done when dropped (so a
/// step cut short by an error is closed too).
pub struct Step<'a> {
    reporter: &'a dyn Reporter,
    id: StepId,
    started: std::time::Instant,
}

impl<'a> Step<'a> {
    /// Begin a step named `what`.
    pub fn start(reporter: &'a dyn Reporter, what: &str) -> Step<'a> {
        let id = StepId(NEXT_STEP.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
        reporter.step_start(id, what);
        Step {
            reporter,
            id,
            started: std::time::Instant::now(),
        }
    }

    /// How long it has run.
    pub fn elapsed(&self) -> std::time::Duration {
        self.started.elapsed()
    }
}

impl Drop for Step<'_> {
    fn drop(&mut self) {
        self.reporter
            .step_done(self.id, self.started.elapsed().as_secs_f64());
    }
}

/// A reporter that discards everything.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoReporter;

impl Reporter for NoReporter {}
