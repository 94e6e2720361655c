"""The decisions and measures the stages apply, as pure functions over text and records."""
