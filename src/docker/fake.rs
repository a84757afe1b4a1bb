//! A scripted container for unit tests: it answers commands by pattern,
//! serves files, and records what it was asked to do. No daemon needed.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use super::{DockerError, ExecOptions, ExecOutput, Members, Run};

/// One scripted answer: exit code and output, or a time-out.
#[derive(Debug, Clone)]
pub struct Answer {
    pub code: i64,
    pub stdout: String,
    pub timed_out: bool,
}

impl Answer {
    pub fn ok(stdout: &str) -> Answer {
        Answer {
            code: 0,
            stdout: stdout.to_string(),
            timed_out: false,
        }
    }
    pub fn fail(code: i64, stdout: &str) -> Answer {
        Answer {
            code,
            stdout: stdout.to_string(),
            timed_out: false,
        }
    }
    pub fn timeout() -> Answer {
        Answer {
            code: 124,
            stdout: String::new(),
            timed_out: true,
        }
    }
}

/// A container that runs nothing: each command gets the answers of the
/// first pattern it contains (in turn, the last one repeating), else exit
/// 0 with no output.
#[derive(Default)]
pub struct FakeContainer {
    answers: Mutex<Vec<(String, Vec<Answer>)>>,
    files: BTreeMap<String, Vec<u8>>,
    /// Every script run, in order.
    pub log: Mutex<Vec<String>>,
    /// Every folder something was copied into.
    pub copied_in: Mutex<Vec<String>>,
}

impl FakeContainer {
    pub fn new() -> FakeContainer {
        FakeContainer::default()
    }

    /// Commands containing `pattern` get these answers, in turn.
    pub fn answer(self, pattern: &str, answers: Vec<Answer>) -> FakeContainer {
        self.answers
            .lock()
            .unwrap()
            .push((pattern.to_string(), answers));
        self
    }

    /// A file the container holds.
    pub fn file(mut self, path: &str, data: &[u8]) -> FakeContainer {
        self.files.insert(path.to_string(), data.to_vec());
        self
    }

    /// The scripts run that contain `pattern`.
    pub fn ran(&self, pattern: &str) -> usize {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.contains(pattern))
            .count()
    }
}

impl Run for FakeContainer {
    fn image(&self) -> &str {
        "fake:latest"
    }

    fn exec(
        &self,
        script: &str,
        _options: &ExecOptions,
    ) -> impl Future<Output = Result<ExecOutput, DockerError>> + Send {
        self.log.lock().unwrap().push(script.to_string());
        let mut answers = self.answers.lock().unwrap();
        let answer = answers
            .iter_mut()
            .find(|(p, _)| script.contains(p.as_str()))
            .map(|(_, list)| {
                if list.len() > 1 {
                    list.remove(0)
                } else {
                    list[0].clone()
                }
            })
            .unwrap_or_else(|| Answer::ok(""));
        std::future::ready(Ok(ExecOutput {
            code: answer.code,
            stdout: answer.stdout,
            stderr: String::new(),
            elapsed: Duration::from_millis(1),
            timed_out: answer.timed_out,
        }))
    }

    fn copy_out_members(
        &self,
        path: &str,
    ) -> impl Future<Output = Result<Members, DockerError>> + Send {
        // As the archive endpoint names them: from the path's last part on.
        let base = path.rsplit('/').next().unwrap_or(path);
        let members = self
            .files
            .iter()
            .filter_map(|(p, d)| {
                let rest = p.strip_prefix(path)?;
                (rest.is_empty() || rest.starts_with('/'))
                    .then(|| (format!("{base}{rest}"), Some(d.clone())))
            })
            .collect();
        std::future::ready(Ok(members))
    }

    fn copy_in(
        &self,
        dir: &str,
        _tar: Vec<u8>,
    ) -> impl Future<Output = Result<(), DockerError>> + Send {
        self.copied_in.lock().unwrap().push(dir.to_string());
        std::future::ready(Ok(()))
    }

    fn copy_in_file(
        &self,
        dir: &str,
        _tar: &std::path::Path,
    ) -> impl Future<Output = Result<(), DockerError>> + Send {
        self.copied_in.lock().unwrap().push(dir.to_string());
        std::future::ready(Ok(()))
    }
}
