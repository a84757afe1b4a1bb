//! `bundle target capture`: a Python snippet that prints the profile of the
//! sandbox it runs in.

use bundle::Error;

use super::out;

pub fn run() -> Result<(), Error> {
    out(CAPTURE_SNIPPET);
    Ok(())
}

const CAPTURE_SNIPPET: &str = include_str!("capture.py");
