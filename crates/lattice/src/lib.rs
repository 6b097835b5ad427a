//! fieldflow-lattice (under construction).
