//! Status lifecycles: which status may follow which.

use super::*;

/// A lifecycle: which status may follow which. A status may always be set to itself (a retried
/// request changes nothing).
pub(crate) struct Lifecycle {
    /// `(from, to)` pairs.
    pub(crate) moves: &'static [(&'static str, &'static str)],
}

impl Lifecycle {
    /// Whether `name` is a status of this lifecycle.
    pub(crate) fn knows(&self, name: &str) -> bool {
        self.moves
            .iter()
            .any(|(from, to)| *from == name || *to == name)
    }

    /// Checks the move of `field` from `from` to `to`, naming the moves allowed from `from`.
    pub(crate) fn check(&self, field: &str, from: &str, to: &str) -> Result<(), FieldError> {
        if !self.knows(to) {
            let mut all: Vec<&str> = self.moves.iter().flat_map(|(a, b)| [*a, *b]).collect();
            all.sort_unstable();
            all.dedup();
            return Err(FieldError::new(
                field,
                format!(
                    "{to:?} is not a status; the statuses are {}",
                    all.join(", ")
                ),
            ));
        }
        if from == to || self.moves.contains(&(from, to)) {
            return Ok(());
        }
        let allowed: Vec<&str> = self
            .moves
            .iter()
            .filter(|(a, _)| *a == from)
            .map(|(_, b)| *b)
            .collect();
        let allowed = if allowed.is_empty() {
            format!("{from} is final")
        } else {
            format!("from {from} it can move to {}", allowed.join(", "))
        };
        Err(FieldError::new(
            field,
            format!("cannot move from {from} to {to}: {allowed}"),
        ))
    }
}
