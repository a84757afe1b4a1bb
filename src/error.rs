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

/// The candidate closest to `name` (ignoring case and `-`, `_`, `.`), when
/// it is close enough to be a likely typo: for "did you mean" hints.
pub fn closest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let key = |s: &str| -> Vec<char> {
        s.chars()
            .filter(|c| !matches!(c, '-' | '_' | '.'))
            .flat_map(char::to_lowercase)
            .collect()
    };
    let wanted = key(name);
    candidates
        .into_iter()
        .map(|c| (distance(&wanted, &key(c)), c))
        .filter(|(d, c)| *d <= (wanted.len().max(c.len()) / 3).clamp(1, 3) && *c != name)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Levenshtein distance between two strings of chars.
fn distance(a: &[char], b: &[char]) -> usize {
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// The causes of an error to show under its message: each source in turn,
/// leaving out one whose text the message (or an earlier cause) already
/// holds, as when a wrapper puts its source's text after its own words.
pub fn causes(e: &dyn std::error::Error) -> Vec<String> {
    let mut shown = e.to_string();
    let mut out = Vec::new();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !shown.contains(&text) {
            shown.push('\n');
            shown.push_str(&text);
            out.push(text);
        }
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::closest;

    #[test]
    fn did_you_mean() {
        let recipes = ["lua5.3", "sqlite-utils", "deno"];
        assert_eq!(closest("lua53", recipes), Some("lua5.3"));
        assert_eq!(closest("sqlite_utils", recipes), Some("sqlite-utils"));
        assert_eq!(closest("sqlite-util", recipes), Some("sqlite-utils"));
        assert_eq!(closest("numpy", recipes), None);
        let targets = ["ubuntu-20.04", "chatgpt-2023", "ubuntu-20.04-arm64"];
        assert_eq!(closest("ubuntu-20.4", targets), Some("ubuntu-20.04"));
        assert_eq!(closest("chatgpt2023", targets), Some("chatgpt-2023"));
        assert_eq!(closest("ubuntu-99", targets), None);
    }
}
