//! Placeholder: written by the timer helper.
