//! Errors as one line with their causes: each error's Display says its own
//! part once (its cause is its `source()`), so where an error becomes a string
//! (a control reply, a log line) [`Chain`] walks the sources, as anyhow's
//! `{:#}` does at the programs' edges.

use std::error::Error;
use std::fmt;

/// Displays an error followed by each of its sources, `": "`-separated.
pub struct Chain<'a>(pub &'a (dyn Error + 'a));

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("opening the port")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn every_cause_once() {
        let e = Outer(std::io::Error::other("no memory"));
        assert_eq!(Chain(&e).to_string(), "opening the port: no memory");
    }
}
