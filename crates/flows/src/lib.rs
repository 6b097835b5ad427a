//! fieldflow-flows (under construction).
