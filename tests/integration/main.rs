//! sockwho's integration tests: one binary, a module per concern.
//! Tests that need root and `ip netns` run in CI (as root); elsewhere they
//! print why they skip.

mod bytecode;
mod compare;
mod conntrack;
mod decode;
mod engine;
mod errors;
mod events;
mod ftp;
mod ftp_brief;
mod harness;
mod hostile;
mod labels;
mod manual;
mod metrics;
mod netns;
mod netstat;
mod privileges;
mod replay;
mod router;
mod ssfilter;
mod tcpinfo;
mod twohosts;
mod watch;
