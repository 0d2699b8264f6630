//! End-to-end tests of the clockify-operator live in `tests/`; see e2e/README.md.
