//! `bundle cache dir|info|clean`.

use clap::Subcommand;

use bundle::fetch::cache::Cache;
use bundle::Error;

use super::{human_size, outln};

#[derive(Subcommand)]
pub enum CacheCmd {
    /// Print the cache folder.
    Dir,
    /// Print the cache's size.
    Info,
    /// Remove everything in the cache.
    Clean,
}

pub fn run(command: CacheCmd) -> Result<(), Error> {
    let cache = Cache::new(bundle::fetch::cache::default_dir());
    match command {
        CacheCmd::Dir => outln!("{}", cache.root().display()),
        CacheCmd::Info => {
            let info = cache.info();
            outln!(
                "{}: {} files, {}",
                cache.root().display(),
                info.files,
                human_size(info.bytes)
            );
        }
        CacheCmd::Clean => {
            let info = cache.info();
            cache.clean().map_err(|source| Error::Io {
                action: "removing the cache",
                path: cache.root().to_path_buf(),
                source,
            })?;
            eprintln!("removed {} files ({})", info.files, human_size(info.bytes));
        }
    }
    Ok(())
}
