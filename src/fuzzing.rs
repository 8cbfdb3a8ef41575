//! Placeholder: written by the fuzz helper.
