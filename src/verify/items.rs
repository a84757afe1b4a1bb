//! Steps that prove many things at once (every file loads, every program
//! starts, every module imports) run one script in the sandbox and report
//! one [`Item`] per thing. The script marks each item's output with a line
//! `::bundle-item::` and tab-separated fields; [`blocks`] reads them back.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::Step;

/// The outcome of one item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Fail,
    Skipped,
}

/// One thing a step proved (or could not): a file, a program, a module.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Item {
    /// What it is: `bin/jq`, `numpy: numpy/core/_multiarray_umath...so`,
    /// `import numpy`.
    pub name: String,
    pub status: Status,
    /// Why it failed or was skipped, with a hint; for a pass, what showed it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

impl Item {
    pub fn new(name: impl Into<String>, status: Status, detail: impl Into<String>) -> Item {
        Item {
            name: name.into(),
            status,
            detail: detail.into(),
        }
    }
}

/// The marker that starts an item's block in a step's output.
pub const ITEM: &str = "::bundle-item::";

/// One item's block: the marker line's fields, then the lines up to the
/// next marker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    pub fields: Vec<String>,
    pub lines: Vec<String>,
}

impl Block {
    /// The value of the last `::bundle-<tag>::VALUE` line, if any.
    pub fn tagged(&self, tag: &str) -> Option<&str> {
        let marker = format!("::bundle-{tag}::");
        self.lines
            .iter()
            .rev()
            .find_map(|l| l.strip_prefix(marker.as_str()))
    }

    /// The lines that are not markers.
    pub fn text(&self) -> Vec<&str> {
        self.lines
            .iter()
            .map(String::as_str)
            .filter(|l| !l.starts_with("::bundle-"))
            .collect()
    }
}

/// The blocks of a step's output (what precedes the first marker is
/// returned apart: the script's own messages).
pub fn blocks(output: &str) -> (Vec<String>, Vec<Block>) {
    let mut before = Vec::new();
    let mut out: Vec<Block> = Vec::new();
    for line in output.lines() {
        if let Some(rest) = line.strip_prefix(ITEM) {
            out.push(Block {
                fields: rest
                    .split('\t')
                    .skip_while(|f| f.is_empty())
                    .map(str::to_string)
                    .collect(),
                lines: Vec::new(),
            });
        } else if let Some(b) = out.last_mut() {
            b.lines.push(line.to_string());
        } else {
            before.push(line.to_string());
        }
    }
    (before, out)
}

/// A step made of items: it fails when one fails; its output lists what
/// failed, then what was skipped, then the counts.
pub fn step(name: &str, items: Vec<Item>, elapsed: Duration, command: Option<String>) -> Step {
    let count = |s: Status| items.iter().filter(|i| i.status == s).count();
    let (pass, fail, skipped) = (
        count(Status::Pass),
        count(Status::Fail),
        count(Status::Skipped),
    );
    let mut output = String::new();
    for (status, word) in [(Status::Fail, "FAIL"), (Status::Skipped, "skipped")] {
        for i in items.iter().filter(|i| i.status == status) {
            output.push_str(&format!("{word} {}: {}\n", i.name, i.detail));
        }
    }
    output.push_str(&format!(
        "{} item(s): {pass} pass, {fail} fail, {skipped} skipped\n",
        items.len()
    ));
    Step {
        name: name.to_string(),
        ok: fail == 0,
        seconds: elapsed.as_secs_f64(),
        command,
        output,
        items,
    }
}

/// `text`'s last non-empty lines, at most `n`, joined by " | " (an item's
/// detail stays on one line).
pub fn last_lines(text: &[&str], n: usize) -> String {
    let kept: Vec<&str> = text
        .iter()
        .map(|l| l.trim())
        .filter(|l| !l.is_empty())
        .collect();
    kept[kept.len().saturating_sub(n)..].join(" | ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_split_at_markers_and_keep_the_fields() {
        let out = "hello\n::bundle-item::\tbin/a\tbinary\nline 1\n::bundle-rc::0\n::bundle-item::\tlib/b\nx\n::bundle-rc::127\n";
        let (before, blocks) = blocks(out);
        assert_eq!(before, ["hello"]);
        assert_eq!(blocks.len(), 2);
        assert_eq!(blocks[0].fields, ["bin/a", "binary"]);
        assert_eq!(blocks[0].text(), ["line 1"]);
        assert_eq!(blocks[0].tagged("rc"), Some("0"));
        assert_eq!(blocks[1].tagged("rc"), Some("127"));
        assert_eq!(blocks[1].tagged("missing"), None);
    }

    #[test]
    fn a_step_fails_with_any_failed_item_and_lists_it() {
        let items = vec![
            Item::new("bin/a", Status::Pass, ""),
            Item::new("bin/b", Status::Fail, "libx.so.1 not found"),
            Item::new("import gui", Status::Skipped, "verify.skip_imports"),
        ];
        let s = step("loads", items, Duration::from_millis(5), None);
        assert!(!s.ok);
        assert_eq!(
            s.output,
            "FAIL bin/b: libx.so.1 not found\nskipped import gui: verify.skip_imports\n3 item(s): 1 pass, 1 fail, 1 skipped\n"
        );
        let s = step(
            "loads",
            vec![Item::new("bin/a", Status::Pass, "")],
            Duration::ZERO,
            None,
        );
        assert!(s.ok);
        assert_eq!(
            last_lines(&["a", "", "b ", "c"], 2),
            "b | c",
            "the end, one line"
        );
    }
}
