//! npm inputs: specs and ranges in npm's syntax ([`spec`]), the recipe's
//! `[npm]` table ([`table`]), and `package.json` / `package-lock.json`
//! files ([`files`]).

mod files;
mod spec;
mod table;

pub use files::*;
pub use spec::*;
pub use table::*;
