//! vswitch library (under construction).
