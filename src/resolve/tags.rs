//! PEP 425 / PEP 600 wheel tags for a target machine.
//!
//! The order follows `packaging.tags.sys_tags()` for CPython on glibc Linux:
//! the interpreter's own ABI first, then `abi3`, then `none`, each across the
//! manylinux ladder from the target's glibc down (with the legacy aliases
//! `manylinux2014`, `manylinux2010`, `manylinux1` at their glibc), then
//! `linux_<arch>`; then pure-Python tags.

use std::collections::HashMap;

use crate::config::target::Target;

/// Tag priority table: lower index = preferred.
#[derive(Debug, Clone)]
pub struct TagPolicy {
    order: Vec<String>,
    index: HashMap<String, usize>,
}

/// A wheel file name split into its parts (PEP 427).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WheelName {
    pub name: String,
    pub version: String,
    pub build: Option<String>,
    pub python: Vec<String>,
    pub abi: Vec<String>,
    pub platform: Vec<String>,
}

impl WheelName {
    /// Parse `{name}-{version}(-{build})?-{python}-{abi}-{platform}.whl`.
    pub fn parse(filename: &str) -> Option<WheelName> {
        let stem = filename.strip_suffix(".whl")?;
        let parts: Vec<&str> = stem.split('-').collect();
        let (name, version, build, py, abi, plat) = match parts.as_slice() {
            [n, v, py, abi, plat] => (*n, *v, None, *py, *abi, *plat),
            [n, v, b, py, abi, plat] => (*n, *v, Some(b.to_string()), *py, *abi, *plat),
            _ => return None,
        };
        let split = |s: &str| s.split('.').map(str::to_string).collect::<Vec<_>>();
        Some(WheelName {
            name: name.to_string(),
            version: version.to_string(),
            build,
            python: split(py),
            abi: split(abi),
            platform: split(plat),
        })
    }

    /// Every `python-abi-platform` triple the compressed tag set expands to.
    pub fn tags(&self) -> impl Iterator<Item = String> + '_ {
        self.python.iter().flat_map(move |py| {
            self.abi.iter().flat_map(move |abi| {
                self.platform
                    .iter()
                    .map(move |plat| format!("{py}-{abi}-{plat}"))
            })
        })
    }
}

/// Platform tags for glibc Linux, most specific first.
fn manylinux_platforms(arch: &str, glibc: (u32, u32)) -> Vec<String> {
    let mut out = Vec::new();
    // packaging: on x86 the oldest manylinux glibc is 2.5, elsewhere 2.17.
    let oldest_minor = if arch == "x86_64" || arch == "i686" {
        5
    } else {
        17
    };
    let (major, minor) = glibc;
    if major == 2 {
        for m in (oldest_minor..=minor).rev() {
            out.push(format!("manylinux_2_{m}_{arch}"));
            let legacy = match m {
                17 => Some("manylinux2014"),
                12 => Some("manylinux2010"),
                5 => Some("manylinux1"),
                _ => None,
            };
            if let Some(legacy) = legacy {
                out.push(format!("{legacy}_{arch}"));
            }
        }
    }
    out.push(format!("linux_{arch}"));
    out
}

impl TagPolicy {
    /// The wheel tags the target's CPython accepts, best first.
    pub fn for_target(target: &Target) -> TagPolicy {
        TagPolicy::cpython(
            target.python_major_minor(),
            target.arch.as_str(),
            target.glibc,
        )
    }

    /// Tags for CPython `major.minor` on glibc Linux with the given architecture.
    pub fn cpython(py: (u64, u64), arch: &str, glibc: (u32, u32)) -> TagPolicy {
        let (major, minor) = py;
        let platforms = manylinux_platforms(arch, glibc);
        let interp = format!("cp{major}{minor}");
        let own_abi = if major == 3 && minor < 8 {
            format!("cp{major}{minor}m")
        } else {
            interp.clone()
        };
        let mut order = Vec::new();
        // cpython_tags
        for plat in &platforms {
            order.push(format!("{interp}-{own_abi}-{plat}"));
        }
        let abi3 = major == 3 && minor >= 2;
        if abi3 {
            for plat in &platforms {
                order.push(format!("{interp}-abi3-{plat}"));
            }
        }
        for plat in &platforms {
            order.push(format!("{interp}-none-{plat}"));
        }
        if abi3 {
            for m in (2..minor).rev() {
                for plat in &platforms {
                    order.push(format!("cp{major}{m}-abi3-{plat}"));
                }
            }
        }
        // compatible_tags
        let py_versions: Vec<String> = std::iter::once(format!("py{major}{minor}"))
            .chain(std::iter::once(format!("py{major}")))
            .chain((0..minor).rev().map(|m| format!("py{major}{m}")))
            .collect();
        for pyv in &py_versions {
            for plat in &platforms {
                order.push(format!("{pyv}-none-{plat}"));
            }
        }
        order.push(format!("{interp}-none-any"));
        for pyv in &py_versions {
            order.push(format!("{pyv}-none-any"));
        }
        let mut index = HashMap::new();
        for (i, t) in order.iter().enumerate() {
            index.entry(t.clone()).or_insert(i);
        }
        TagPolicy { order, index }
    }

    /// All supported tags, most preferred first.
    pub fn ordered(&self) -> &[String] {
        &self.order
    }

    /// Best (lowest) priority among the wheel's tags, or None when unsupported.
    pub fn priority(&self, wheel: &WheelName) -> Option<usize> {
        // One buffer for every triple: big pages have thousands of files.
        let mut tag = String::new();
        let mut best = None;
        for py in &wheel.python {
            for abi in &wheel.abi {
                for plat in &wheel.platform {
                    tag.clear();
                    for (i, part) in [py, abi, plat].into_iter().enumerate() {
                        if i > 0 {
                            tag.push('-');
                        }
                        tag.push_str(part);
                    }
                    if let Some(&p) = self.index.get(tag.as_str()) {
                        best = Some(best.map_or(p, |b: usize| b.min(p)));
                    }
                }
            }
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_target_profile_gives_its_ladder() {
        let arm = Target::load("ubuntu-20.04-arm64").unwrap();
        assert_eq!(
            TagPolicy::for_target(&arm).ordered()[0],
            "cp38-cp38-manylinux_2_31_aarch64"
        );
    }

    fn cp38() -> TagPolicy {
        TagPolicy::cpython((3, 8), "x86_64", (2, 31))
    }

    #[test]
    fn parses_compressed_tags() {
        let w = WheelName::parse(
            "numpy-1.24.4-cp38-cp38-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
        )
        .unwrap();
        assert_eq!(w.name, "numpy");
        assert_eq!(w.version, "1.24.4");
        assert_eq!(w.platform.len(), 2);
        assert_eq!(w.tags().count(), 2);
        let b = WheelName::parse("pkg-1.0-1build-py3-none-any.whl").unwrap();
        assert_eq!(b.build.as_deref(), Some("1build"));
        assert!(WheelName::parse("pkg-1.0.tar.gz").is_none());
        assert!(WheelName::parse("pkg-1.0-py3.whl").is_none());
    }

    #[test]
    fn manylinux_ladder_goes_down_to_manylinux1_on_x86_64() {
        let p = manylinux_platforms("x86_64", (2, 31));
        assert_eq!(p.first().unwrap(), "manylinux_2_31_x86_64");
        let i2014 = p.iter().position(|s| s == "manylinux2014_x86_64").unwrap();
        assert_eq!(p[i2014 - 1], "manylinux_2_17_x86_64");
        assert!(p.contains(&"manylinux2010_x86_64".to_string()));
        assert!(p.contains(&"manylinux1_x86_64".to_string()));
        assert_eq!(p.last().unwrap(), "linux_x86_64");
        // 2.31 .. 2.5 plus three legacy aliases plus linux_x86_64
        assert_eq!(p.len(), 27 + 3 + 1);
    }

    #[test]
    fn aarch64_ladder_stops_at_2_17() {
        let p = manylinux_platforms("aarch64", (2, 31));
        assert!(p.contains(&"manylinux2014_aarch64".to_string()));
        assert!(!p.iter().any(|s| s.contains("manylinux_2_16")));
        assert!(!p.iter().any(|s| s.contains("manylinux1")));
        assert!(!p.iter().any(|s| s.contains("x86_64")));
    }

    #[test]
    fn cp38_numpy_manylinux2014_is_accepted_where_pip_platform_flag_fails() {
        let t = cp38();
        let numpy = WheelName::parse(
            "numpy-1.24.4-cp38-cp38-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
        )
        .unwrap();
        assert!(t.priority(&numpy).is_some());
        // Too new a glibc is refused.
        let new = WheelName::parse("x-1-cp38-cp38-manylinux_2_34_x86_64.whl").unwrap();
        assert!(t.priority(&new).is_none());
        // Wrong interpreter or architecture is refused.
        let cp39 = WheelName::parse("x-1-cp39-cp39-manylinux2014_x86_64.whl").unwrap();
        assert!(t.priority(&cp39).is_none());
        let arm = WheelName::parse("x-1-cp38-cp38-manylinux2014_aarch64.whl").unwrap();
        assert!(t.priority(&arm).is_none());
        let mac = WheelName::parse("x-1-cp38-cp38-macosx_11_0_x86_64.whl").unwrap();
        assert!(t.priority(&mac).is_none());
    }

    #[test]
    fn priority_order_matches_packaging() {
        let t = cp38();
        let o = t.ordered();
        assert_eq!(o[0], "cp38-cp38-manylinux_2_31_x86_64");
        let pos = |s: &str| o.iter().position(|x| x == s).unwrap();
        assert!(pos("cp38-cp38-linux_x86_64") < pos("cp38-abi3-manylinux_2_31_x86_64"));
        assert!(pos("cp38-abi3-linux_x86_64") < pos("cp38-none-manylinux_2_31_x86_64"));
        assert!(pos("cp38-none-linux_x86_64") < pos("cp37-abi3-manylinux_2_31_x86_64"));
        assert!(pos("cp32-abi3-linux_x86_64") < pos("py38-none-manylinux_2_31_x86_64"));
        assert!(pos("py30-none-linux_x86_64") < pos("cp38-none-any"));
        assert_eq!(o[o.len() - 11], "cp38-none-any");
        assert_eq!(o.last().unwrap(), "py30-none-any");
        assert!(!o.iter().any(|s| s.starts_with("cp39")));
        // pure wheels beat nothing, binary beats pure
        let pure = WheelName::parse("a-1-py3-none-any.whl").unwrap();
        let bin = WheelName::parse("a-1-cp38-cp38-manylinux1_x86_64.whl").unwrap();
        assert!(t.priority(&bin) < t.priority(&pure));
    }

    #[test]
    fn older_python_uses_m_abi() {
        let t = TagPolicy::cpython((3, 7), "x86_64", (2, 31));
        assert_eq!(t.ordered()[0], "cp37-cp37m-manylinux_2_31_x86_64");
        let t = TagPolicy::cpython((3, 11), "aarch64", (2, 31));
        assert_eq!(t.ordered()[0], "cp311-cp311-manylinux_2_31_aarch64");
        let abi3 = WheelName::parse("c-1-cp37-abi3-manylinux2014_aarch64.whl").unwrap();
        assert!(t.priority(&abi3).is_some());
    }
}
