//! `bundle recipes`: the built-in recipes.

use bundle::config::recipe;
use bundle::Error;

use super::{outln, print_json};

pub fn run(json: bool) -> Result<(), Error> {
    let list = recipe::builtin();
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
