//! The VMM library (under construction).
