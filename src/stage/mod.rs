//! Producing the files: release members extracted from verified archives,
//! programs and libraries from apt in the target's image, wheels built from
//! sdists in the target's build image.

pub mod apt;
pub mod release;
pub mod sdist;
