//! Progress on stderr: a spinner for the stage, a bar per download. Drawn
//! only when stderr is a terminal; `-v` logs the same events instead.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::atomic::Ordering;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use bundle::report::{Reporter, Stage, StepId};

use super::human_size;

/// Draws progress on stderr (only when it is a terminal).
pub struct CliReporter {
    multi: MultiProgress,
    spinner: ProgressBar,
    bars: Mutex<HashMap<u64, ProgressBar>>,
    /// Steps in progress, by id (they may overlap).
    steps: Mutex<HashMap<StepId, String>>,
    started: Instant,
    /// Files the fetch stage will bring, and how many are done.
    planned: std::sync::atomic::AtomicUsize,
    done: std::sync::atomic::AtomicUsize,
    /// When each stage began, in order.
    stages: Mutex<Vec<(Stage, Instant)>>,
}

impl CliReporter {
    pub fn new(quiet: bool) -> CliReporter {
        let target = if quiet || !std::io::stderr().is_terminal() {
            ProgressDrawTarget::hidden()
        } else {
            ProgressDrawTarget::stderr()
        };
        let multi = MultiProgress::with_draw_target(target);
        let spinner = multi.add(ProgressBar::new_spinner());
        spinner.set_style(
            ProgressStyle::with_template("{spinner:.cyan} {msg}").expect("valid template"),
        );
        spinner.enable_steady_tick(Duration::from_millis(100));
        CliReporter {
            multi,
            spinner,
            bars: Mutex::new(HashMap::new()),
            steps: Mutex::new(HashMap::new()),
            started: Instant::now(),
            planned: Default::default(),
            done: Default::default(),
            stages: Default::default(),
        }
    }

    pub fn finish(&self) {
        self.spinner.finish_and_clear();
        let _ = self.multi.clear();
    }

    /// Seconds spent in each stage so far (a stage entered twice counts
    /// both times), keyed by its name: `resolving`, `fetching`, ...
    pub fn timings(&self) -> std::collections::BTreeMap<&'static str, f64> {
        let stages = self.stages.lock().expect("poisoned");
        // Every stage of a build is listed, 0 for one that did nothing.
        let mut out: std::collections::BTreeMap<&'static str, f64> = [
            Stage::Plan,
            Stage::Fetch,
            Stage::Stage,
            Stage::Build,
            Stage::Check,
            Stage::Assemble,
        ]
        .iter()
        .map(|s| (s.as_str(), 0.0))
        .collect();
        for (i, (stage, began)) in stages.iter().enumerate() {
            let ended = stages.get(i + 1).map_or_else(Instant::now, |(_, t)| *t);
            let seconds = ended.duration_since(*began).as_secs_f64();
            *out.entry(stage.as_str()).or_insert(0.0) += (seconds * 1000.0).round() / 1000.0;
        }
        out
    }
}

impl Reporter for CliReporter {
    fn stage(&self, stage: Stage) {
        self.stages
            .lock()
            .expect("poisoned")
            .push((stage, Instant::now()));
        self.spinner.set_message(stage.as_str().to_string());
        tracing::info!(
            elapsed_ms = self.started.elapsed().as_millis() as u64,
            "stage: {}",
            stage.as_str()
        );
    }
    fn resolving(&self, package: &str) {
        self.spinner.set_message(format!("resolving {package}"));
        tracing::debug!("resolving {package}");
    }
    fn download_start(&self, id: u64, label: &str, total: Option<u64>) {
        let bar = self.multi.add(ProgressBar::new(total.unwrap_or(0)));
        bar.set_style(
            ProgressStyle::with_template(
                "  {bar:30.cyan/blue} {bytes:>10}/{total_bytes:<10} {wide_msg}",
            )
            .expect("valid template"),
        );
        bar.set_message(label.to_string());
        self.bars.lock().expect("poisoned").insert(id, bar);
        tracing::info!("downloading {label}");
    }
    fn download_progress(&self, id: u64, bytes: u64) {
        if let Some(b) = self.bars.lock().expect("poisoned").get(&id) {
            b.inc(bytes);
        }
    }
    fn fetch_planned(&self, files: usize, bytes: Option<u64>) {
        self.planned.store(files, Ordering::Relaxed);
        let size = bytes
            .map(|b| format!(", {}", human_size(b)))
            .unwrap_or_default();
        self.spinner
            .set_message(format!("fetching {files} files{size}"));
    }
    fn download_done(&self, id: u64) {
        if let Some(b) = self.bars.lock().expect("poisoned").remove(&id) {
            b.finish_and_clear();
            self.multi.remove(&b);
        }
        let planned = self.planned.load(Ordering::Relaxed);
        if planned > 0 {
            let done = self.done.fetch_add(1, Ordering::Relaxed) + 1;
            self.spinner.set_message(format!(
                "fetching: {} of {planned} downloaded",
                done.min(planned)
            ));
        }
    }
    fn step_start(&self, id: StepId, what: &str) {
        self.spinner.set_message(what.to_string());
        tracing::info!("{what}");
        self.steps
            .lock()
            .expect("poisoned")
            .insert(id, what.to_string());
    }
    fn step_done(&self, id: StepId, seconds: f64) {
        if let Some(what) = self.steps.lock().expect("poisoned").remove(&id) {
            tracing::info!("{what}: {seconds:.1} s");
        }
    }
    fn warn(&self, message: &str) {
        self.multi.suspend(|| eprintln!("warning: {message}"));
    }
}
