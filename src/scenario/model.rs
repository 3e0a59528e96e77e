//! The raw TOML model of a scenario file (owned by the scenario loader).
