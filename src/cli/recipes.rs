//! `bundle recipes`: the built-in recipes.

use bundle::config::recipe;
use bundle::Error;

use super::{outln, print_json};

/// `--show NAME` prints a recipe; `--new` a commented template.
pub fn run(json: bool, show: Option<String>, new: bool) -> Result<(), Error> {
    if new {
        super::out(recipe::TEMPLATE);
        return Ok(());
    }
    if let Some(name) = show {
        let text = bundle::config::items::text_of(&name, None).ok_or_else(|| {
            let names: Vec<String> = bundle::config::items::builtin()
                .into_iter()
                .map(|(n, _)| n)
                .collect();
            let close = bundle::error::closest(&name, names.iter().map(String::as_str))
                .map(|c| format!(" (did you mean `{c}`?)"))
                .unwrap_or_default();
            Error::Usage(format!(
                "no recipe `{name}`{close}: known are {}; `bundle recipes --new` prints a template",
                names.join(", ")
            ))
        })?;
        super::out(&text);
        return Ok(());
    }
    let list = bundle::config::items::builtin();
    if json {
        let v: Vec<_> = list
            .iter()
            .map(|(n, d)| serde_json::json!({"name": n, "description": d}))
            .collect();
        print_json(&v);
    } else {
        for (n, d) in list {
            outln!("{n:<24} {d}");
        }
    }
    Ok(())
}
