//! sockwho's integration tests: one binary, a module per concern.
//! Tests that need root and `ip netns` run in CI (as root); elsewhere they
//! print why they skip.

mod compare;

mod errors;
mod harness;
mod labels;
mod manual;
mod privileges;
