//! What the user writes: recipes and target profiles, read from TOML with
//! errors that point at the file, line and column.

pub mod dates;
pub mod items;
pub mod npm;
pub mod project;
pub mod recipe;
pub mod requirements;
pub mod settings;
pub mod target;
pub mod toml_file;
