//! The daemon's background verify (`verify.interval`).
