"""tolu's test harness: a pytest plugin that runs the job runner for real and keeps the evidence."""
