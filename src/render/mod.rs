//! Renderers: classified rows in, bytes out, to any `io::Write`.

pub mod csv;
pub mod escape;
pub mod ftp;
pub mod json;
pub mod palette;
pub mod table;
pub mod watch;
