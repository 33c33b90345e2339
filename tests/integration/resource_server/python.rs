//! The Python subscriber (filled in below).
