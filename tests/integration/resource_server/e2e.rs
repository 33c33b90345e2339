//! End to end with real processes (filled in below).
