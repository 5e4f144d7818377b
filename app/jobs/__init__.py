"""Background lifecycle jobs (consolidate, forget) and the procrastinate queue that runs them."""
