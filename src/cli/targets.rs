//! `bundle targets`: the built-in target profiles.

use bundle::config::target::{self, Target};
use bundle::Error;

use super::{outln, print_json};

pub fn run(json: bool) -> Result<(), Error> {
    let mut rows = Vec::new();
    for n in target::builtin_names() {
        let t = Target::load(&n)?;
        rows.push(t);
    }
    if json {
        let v: Vec<_> = rows
            .iter()
            .map(|t| {
                serde_json::json!({
                    "name": t.name,
                    "description": t.description,
                    "platform": t.platform,
                    "glibc": t.glibc_str(),
                    "python": t.python.to_string(),
                    "preinstalled": t.preinstalled.len(),
                    "default": t.name == target::DEFAULT_TARGET,
                })
            })
            .collect();
        print_json(&v);
    } else {
        for t in rows {
            let default = if t.name == target::DEFAULT_TARGET {
                " (default)"
            } else {
                ""
            };
            outln!(
                "{:<20} {} glibc {} Python {}, {} preinstalled{default}\n{:<20} {}",
                t.name,
                t.platform,
                t.glibc_str(),
                t.python,
                t.preinstalled.len(),
                "",
                t.description
            );
        }
    }
    Ok(())
}
