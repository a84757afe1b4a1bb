//! Whether a package is for the target: its `os`, `cpu` and `libc` lists
//! (names, or `!name` to exclude), read as npm reads them, against the
//! target's values rather than the host's.

use crate::config::target::{Arch, Target};

/// The target as npm names platforms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Platform {
    pub os: &'static str,
    pub cpu: &'static str,
    pub libc: &'static str,
}

impl Platform {
    pub fn of(target: &Target) -> Platform {
        Platform {
            os: "linux",
            cpu: match target.arch {
                Arch::X86_64 => "x64",
                Arch::Aarch64 => "arm64",
            },
            libc: "glibc",
        }
    }

    /// Why a package with these lists is not for this platform, or None.
    pub fn refuses(&self, os: &[String], cpu: &[String], libc: &[String]) -> Option<String> {
        for (what, list, value) in [
            ("os", os, self.os),
            ("cpu", cpu, self.cpu),
            ("libc", libc, self.libc),
        ] {
            if !allowed(list, value) {
                return Some(format!(
                    "it is for {what} {} and the target is {value}",
                    list.join(", ")
                ));
            }
        }
        None
    }
}

fn allowed(list: &[String], value: &str) -> bool {
    let mut listed = false;
    for entry in list {
        match entry.strip_prefix('!') {
            Some(not) if not == value => return false,
            Some(_) => {}
            None if entry == value || entry == "any" => return true,
            None => listed = true,
        }
    }
    !listed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_and_negations_as_npm_reads_them() {
        let p = Platform {
            os: "linux",
            cpu: "arm64",
            libc: "glibc",
        };
        let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(p.refuses(&[], &[], &[]), None);
        assert_eq!(
            p.refuses(&v(&["linux"]), &v(&["arm64"]), &v(&["glibc"])),
            None
        );
        assert!(p.refuses(&v(&["linux"]), &v(&["x64"]), &[]).is_some());
        assert!(p.refuses(&v(&["linux"]), &[], &v(&["musl"])).is_some());
        assert!(p.refuses(&v(&["!linux"]), &[], &[]).is_some());
        assert_eq!(p.refuses(&v(&["!win32"]), &v(&["!x64"]), &[]), None);
        assert!(p
            .refuses(&v(&["darwin"]), &[], &[])
            .unwrap()
            .contains("os darwin"));
    }
}
