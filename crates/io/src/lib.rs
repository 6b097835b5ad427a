//! fieldflow-io (under construction).
