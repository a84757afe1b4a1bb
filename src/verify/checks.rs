//! The recipe's checks, each a step, run as the user runs them: the
//! sandbox's own PATH, and the bundle's programs by their full paths.

use std::time::Duration;

use crate::config::target::Target;
use crate::docker::{sh_quote, Run};
use crate::report::Reporter;

use super::bundle::Bundle;
use super::{run_step, Step, VerifyError};

/// sandbox's own PATH, and the bundle's programs by their full paths.
pub(super) async fn check_steps(
    c: &impl Run,
    bundle: &Bundle,
    target: &Target,
    timeout: Option<Duration>,
    reporter: &dyn Reporter,
) -> Result<Vec<Step>, VerifyError> {
    let home_dir = bundle.home(target);
    let mut steps = Vec::new();
    for check in &bundle.manifest.checks {
        let command = bundle.manifest.check_command(&check.run, &home_dir);
        let mut step = run_step(
            c,
            &format!("check: {}", check.run),
            &format!("cd {}; {command}", sh_quote(&home_dir)),
            Some(command.clone()),
            timeout,
            &[],
            reporter,
        )
        .await?;
        if let Some(expect) = &check.expect {
            if step.ok && !step.output.contains(expect.as_str()) {
                step.ok = false;
                step.output = format!("expected {expect:?} in the output:\n{}", step.output);
            }
        }
        steps.push(step);
    }
    Ok(steps)
}
