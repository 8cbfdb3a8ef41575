//! Placeholder: written by the echo helper.
