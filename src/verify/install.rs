//! Steps 2-3: what PROMPT.txt tells the sandbox to run, as it stands:
//! unpack (for an archive), then install.py or install.sh.

use std::time::Duration;

use crate::docker::{sh_quote, Run};
use crate::report::Reporter;

use super::bundle::Bundle;
use super::{run_step, Step, VerifyError};
use crate::config::target::Target;

/// The prompt's Python code, split where it starts the installer:
/// (unpack part, install part).
fn prompt_code(prompt: &str) -> Option<PromptCode> {
    for (fence, interpreter, marker) in [
        ("```python\n", "python3", "import subprocess"),
        ("```sh\n", "sh", "\nsh "),
    ] {
        let Some(at) = prompt.find(fence) else {
            continue;
        };
        let start = at + fence.len();
        let end = start + prompt[start..].find("```")?;
        let code = &prompt[start..end];
        let (unpack, install) = match code.rfind(marker) {
            Some(i) if marker.starts_with('\n') => (&code[..i + 1], &code[i + 1..]),
            Some(i) => (&code[..i], &code[i..]),
            None if marker.starts_with('\n') && code.starts_with("sh ") => ("", code),
            None => ("", code),
        };
        return Some(PromptCode {
            interpreter,
            unpack: unpack.to_string(),
            install: install.to_string(),
        });
    }
    None
}

/// The code block of a PROMPT.txt, split where it starts the installer.
struct PromptCode {
    /// `python3` or `sh`.
    interpreter: &'static str,
    /// Checks and unpacks the uploads (empty for a folder).
    unpack: String,
    /// Runs install.py or install.sh.
    install: String,
}

/// Steps 2-3. What PROMPT.txt tells the sandbox to run: unpack (for an archive),
/// then install.py (its checks run as steps of their own).
pub(super) async fn prompt_steps(
    c: &impl Run,
    bundle: &Bundle,
    target: &Target,
    timeout: Option<Duration>,
    reporter: &dyn Reporter,
) -> Result<Vec<Step>, VerifyError> {
    let up = target.upload_dir.trim_end_matches('/').to_string();
    let Some(PromptCode {
        interpreter,
        unpack,
        install,
    }) = prompt_code(bundle.prompt.as_deref().unwrap_or(""))
    else {
        return Err(VerifyError::NotABundle {
            path: bundle.dir.clone(),
            message: "PROMPT.txt has no ```python or ```sh code block".into(),
        });
    };
    let python = |name: &str, code: &str| {
        let script = format!(
            "cd {up} && cat > /tmp/bundle-{name}.{ext} <<'BUNDLE_EOF'\n{code}\nBUNDLE_EOF\n{interpreter} /tmp/bundle-{name}.{ext}",
            up = sh_quote(&up),
            ext = if interpreter == "sh" { "sh" } else { "py" }
        );
        (
            format!(
                "PROMPT.txt code: {}",
                // The line that runs the installer, else the last one.
                code.lines()
                    .find(|l| l.contains("install.py") || l.contains("install.sh"))
                    .or_else(|| code.trim_end().lines().last())
                    .unwrap_or("")
                    .trim()
            ),
            script,
        )
    };
    let mut programs: Vec<(String, String, Option<String>)> = Vec::new();
    // A folder is uploaded unpacked: only an archive needs the unpack code.
    if bundle.delivery.archive.is_some() && !unpack.trim().is_empty() {
        let (shown, script) = python("unpack", &unpack);
        programs.push(("unpack".into(), script, Some(shown)));
    }
    let (shown, script) = python("install", &install);
    let installer = if interpreter == "sh" {
        "install.sh"
    } else {
        "install.py"
    };
    programs.push((installer.into(), script, Some(shown)));
    let mut steps = Vec::new();
    for (name, script, shown) in programs {
        let env = ["BUNDLE_INSTALL_NO_CHECK=1"];
        let step = run_step(c, &name, &script, shown, timeout, &env, reporter).await?;
        let ok = step.ok;
        steps.push(step);
        if !ok {
            break;
        }
    }
    Ok(steps)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompt_code_splits_unpack_from_install() {
        let prompt = "I uploaded x.zip.\n\n```python\nimport zipfile\nzipfile.ZipFile(\"/mnt/data/x.zip\").extractall(\"/mnt/data\")\nimport subprocess, sys\nsubprocess.run([sys.executable, \"/mnt/data/x/install.py\"], check=True)\n```\n";
        let code = prompt_code(prompt).unwrap();
        assert_eq!(code.interpreter, "python3");
        assert!(code.unpack.contains("extractall"));
        assert!(code.install.starts_with("import subprocess"));
        assert!(code.install.contains("install.py"));
        let prompt = "I uploaded x.tar.gz.\n\n```sh\nset -e\ncd /mnt/data\ntar -xzf x.tar.gz\nsh /mnt/data/x/install.sh\n```\n";
        let code = prompt_code(prompt).unwrap();
        assert_eq!(code.interpreter, "sh");
        assert_eq!(code.unpack, "set -e\ncd /mnt/data\ntar -xzf x.tar.gz\n");
        assert_eq!(code.install, "sh /mnt/data/x/install.sh\n");
    }
}
