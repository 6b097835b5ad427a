//! fieldflow-stats (under construction).
