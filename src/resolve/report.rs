//! The words of a resolution failure: PubGrub's derivation, told in terms
//! of the target (its preinstalled set is a pseudo-package; the request is
//! the root), through PubGrub's `ReportFormatter`.

use pubgrub::{Derived, External, Map, ReportFormatter, Term};

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
