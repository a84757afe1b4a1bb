//! The words of a resolution failure: PubGrub's derivation, told in terms
//! of the target (its preinstalled set is a pseudo-package; the request is
//! the root), through PubGrub's `ReportFormatter`, then what the target has
//! and why each rejected file did not fit.

use pubgrub::{
    DefaultStringReporter, Derived, External, Map, ReportFormatter, Reporter as _, Term,
};

use std::collections::{BTreeSet, HashMap};

use pep440_rs::Version;

use crate::config::target::Target;
use crate::resolve::index::Index;

use super::error::ResolveError;
use super::graph::{Pkg, Range};

/// Formats PubGrub's derivation tree for people who asked for a bundle.
pub struct ConflictFormatter;

/// A package with its range: `app >=2`; `lib` for any version; the request
/// and the target's preinstalled set carry no version.
fn with_range(p: &Pkg, r: &Range) -> String {
    match p {
        Pkg::Root | Pkg::Target(_) => p.to_string(),
        _ if *r == Range::full() => p.to_string(),
        _ => format!("{p} {r}"),
    }
}

impl ConflictFormatter {
    fn depends(&self, p: &Pkg, rp: &Range, dep: &Pkg, rd: &Range) -> String {
        match (p, dep) {
            (Pkg::Root, Pkg::Target(t)) => format!("the bundle is for {t}, as it is"),
            (Pkg::Root, _) => format!("your request needs {}", with_range(dep, rd)),
            (Pkg::Target(t), _) => format!("{t} has {} preinstalled", with_range(dep, rd)),
            _ => format!("{} depends on {}", with_range(p, rp), with_range(dep, rd)),
        }
    }
}

impl ReportFormatter<Pkg, Range, String> for ConflictFormatter {
    type Output = String;

    fn format_external(&self, external: &External<Pkg, Range, String>) -> String {
        match external {
            External::NotRoot(p, _) => format!("we are resolving {p}"),
            External::NoVersions(p, r) => {
                format!(
                    "no version of {} has a file the target can use",
                    with_range(p, r)
                )
            }
            External::Custom(p, r, why) => format!("{} cannot be used: {why}", with_range(p, r)),
            External::FromDependencyOf(p, rp, dep, rd) => self.depends(p, rp, dep, rd),
        }
    }

    fn format_terms(&self, terms: &Map<Pkg, Term<Range>>) -> String {
        let terms: Vec<_> = terms.iter().collect();
        match terms.as_slice() {
            [] | [(Pkg::Root, Term::Positive(_))] => "your request cannot be met".into(),
            [(p, Term::Positive(r))] => format!("{} cannot be used", with_range(p, r)),
            [(p, Term::Negative(r))] => format!("{} is needed", with_range(p, r)),
            [(p1, Term::Positive(r1)), (p2, Term::Negative(r2))]
            | [(p2, Term::Negative(r2)), (p1, Term::Positive(r1))] => self.depends(p1, r1, p2, r2),
            many if many
                .iter()
                .all(|(p, _)| matches!(p, Pkg::Root | Pkg::Target(_))) =>
            {
                let target = many.iter().find_map(|(p, _)| match p {
                    Pkg::Target(t) => Some(t.as_str()),
                    _ => None,
                });
                format!(
                    "your request cannot be met on {}",
                    target.unwrap_or("the target")
                )
            }
            many => {
                let listed: Vec<String> = many
                    .iter()
                    .map(|(p, t)| match t {
                        Term::Positive(r) => with_range(p, r),
                        Term::Negative(r) => format!("not {}", with_range(p, r)),
                    })
                    .collect();
                format!("{} cannot all be used together", listed.join(", "))
            }
        }
    }

    fn explain_both_external(
        &self,
        e1: &External<Pkg, Range, String>,
        e2: &External<Pkg, Range, String>,
        current: &Map<Pkg, Term<Range>>,
    ) -> String {
        format!(
            "Because {} and {}, {}.",
            self.format_external(e1),
            self.format_external(e2),
            self.format_terms(current)
        )
    }

    fn explain_both_ref(
        &self,
        id1: usize,
        d1: &Derived<Pkg, Range, String>,
        id2: usize,
        d2: &Derived<Pkg, Range, String>,
        current: &Map<Pkg, Term<Range>>,
    ) -> String {
        format!(
            "Because {} ({id1}) and {} ({id2}), {}.",
            self.format_terms(&d1.terms),
            self.format_terms(&d2.terms),
            self.format_terms(current)
        )
    }

    fn explain_ref_and_external(
        &self,
        id: usize,
        derived: &Derived<Pkg, Range, String>,
        external: &External<Pkg, Range, String>,
        current: &Map<Pkg, Term<Range>>,
    ) -> String {
        format!(
            "Because {} ({id}) and {}, {}.",
            self.format_terms(&derived.terms),
            self.format_external(external),
            self.format_terms(current)
        )
    }

    fn and_explain_external(
        &self,
        external: &External<Pkg, Range, String>,
        current: &Map<Pkg, Term<Range>>,
    ) -> String {
        format!(
            "And because {}, {}.",
            self.format_external(external),
            self.format_terms(current)
        )
    }

    fn and_explain_ref(
        &self,
        id: usize,
        derived: &Derived<Pkg, Range, String>,
        current: &Map<Pkg, Term<Range>>,
    ) -> String {
        format!(
            "And because {} ({id}), {}.",
            self.format_terms(&derived.terms),
            self.format_terms(current)
        )
    }

    fn and_explain_prior_and_external(
        &self,
        prior: &External<Pkg, Range, String>,
        external: &External<Pkg, Range, String>,
        current: &Map<Pkg, Term<Range>>,
    ) -> String {
        format!(
            "And because {} and {}, {}.",
            self.format_external(prior),
            self.format_external(external),
            self.format_terms(current)
        )
    }
}

/// The report of a resolution that has no solution: PubGrub's derivation,
/// what the target has preinstalled, then why each package with no usable
/// file was refused (those first: the likeliest root causes).
pub(super) async fn no_solution(mut tree: Tree, index: &Index, target: &Target) -> ResolveError {
    let mut missing = HashMap::new();
    let mut needs = Vec::new();
    walk_tree(&tree, &mut missing, &mut needs);
    tree.collapse_no_versions();
    let mut report = DefaultStringReporter::report_with_formatter(&tree, &ConflictFormatter);
    let preinstalled_conflict = tree.packages().iter().any(|p| matches!(p, Pkg::Target(_)));
    append_preinstalled(&mut report, target, &needs);
    let mut listed = Vec::new();
    for (p, range) in missing {
        if let Pkg::Name(n) | Pkg::Extra(n, _) = &p {
            if let Ok(project) = index.project(n).await {
                listed.push((
                    !project.candidates.is_empty(),
                    p.to_string(),
                    project,
                    range,
                ));
            }
        }
    }
    listed.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    for (_, _, project, range) in &listed {
        append_rejections(&mut report, project, range);
    }
    ResolveError::NoSolution {
        target: target.name.clone(),
        report,
        preinstalled_conflict,
    }
}

type Tree = pubgrub::DerivationTree<Pkg, Range, String>;

/// Packages with no usable version (and the range asked), and every
/// "X depends on Y" edge, from a failed resolution.
fn walk_tree(
    tree: &Tree,
    missing: &mut HashMap<Pkg, Range>,
    needs: &mut Vec<(Pkg, Range, Pkg, Range)>,
) {
    match tree {
        pubgrub::DerivationTree::External(pubgrub::External::NoVersions(p, r)) => {
            missing.insert(p.clone(), r.clone());
        }
        pubgrub::DerivationTree::External(pubgrub::External::FromDependencyOf(p, rp, d, rd)) => {
            needs.push((p.clone(), rp.clone(), d.clone(), rd.clone()));
        }
        pubgrub::DerivationTree::Derived(d) => {
            walk_tree(&d.cause1, missing, needs);
            walk_tree(&d.cause2, missing, needs);
        }
        pubgrub::DerivationTree::External(_) => {}
    }
}

/// PubGrub names versions of the virtual root and target packages; drop them.
/// Spell out preinstalled conflicts: what the target has, who needs what.
fn append_preinstalled(report: &mut String, target: &Target, needs: &[(Pkg, Range, Pkg, Range)]) {
    let mut lines = BTreeSet::new();
    for (_, _, dep, _) in needs {
        let Pkg::Name(n) = dep else { continue };
        let Some(have) = target.preinstalled.get(n) else {
            continue;
        };
        let wanted: Vec<String> = needs
            .iter()
            .filter(|(p, _, d, _)| d == dep && !matches!(p, Pkg::Target(_)))
            .map(|(p, rp, _, rd)| {
                let who = match p {
                    Pkg::Root => p.to_string(),
                    _ if *rp == Range::full() => p.to_string(),
                    _ => format!("{p} {rp}"),
                };
                format!("{who} needs {n} {rd}")
            })
            .collect();
        if !wanted.is_empty() {
            lines.insert(format!(
                "  {n} {have} is preinstalled on {}; {}",
                target.name,
                wanted.join("; ")
            ));
        }
    }
    if !lines.is_empty() {
        report.push_str("\n\nconflicts with preinstalled packages:");
        for l in lines {
            report.push('\n');
            report.push_str(&l);
        }
    }
}

fn append_rejections(report: &mut String, project: &crate::resolve::index::Project, range: &Range) {
    const MAX: usize = 12;
    let in_range = |v: Option<&Version>| v.is_none_or(|v| range.contains(v));
    let mut lines: Vec<(Option<&Version>, String)> = project
        .rejected
        .iter()
        .filter(|r| in_range(r.version.as_ref()))
        .map(|r| (r.version.as_ref(), format!("{}: {}", r.filename, r.reason)))
        .collect();
    for c in project.candidates.values() {
        if let Some(reason) = c.yanked().filter(|_| in_range(Some(&c.version))) {
            let reason = if reason.is_empty() {
                String::new()
            } else {
                format!(": {reason}")
            };
            lines.push((
                Some(&c.version),
                format!(
                    "{}: yanked{reason} (pin it with == to use it anyway)",
                    c.wheel.filename
                ),
            ));
        }
    }
    if lines.is_empty() {
        return;
    }
    lines.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    let shown = range.to_string();
    let what = if *range == Range::full() || shown.len() > 60 {
        project.name.to_string()
    } else {
        format!("{} {shown}", project.name)
    };
    report.push_str(&format!(
        "\n\nfiles of {what} the target cannot use ({} of {} files):",
        lines.len(),
        project.file_count
    ));
    for (_, line) in lines.iter().take(MAX) {
        report.push_str("\n  ");
        report.push_str(line);
    }
    if lines.len() > MAX {
        report.push_str(&format!("\n  ... and {} more", lines.len() - MAX));
    }
}
