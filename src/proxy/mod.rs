//! Placeholder: the proxy comes with issue 3.
