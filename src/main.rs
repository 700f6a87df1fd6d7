//! The binary: parse options, run, map the result to an exit code.

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use sockwho::cli::Cli;
use sockwho::collect::Notices;
use sockwho::config::Environment;

/// What to say beside clap's message: the values an option takes. (netstat's
/// `-c 2` is caught where the 2 is read as a filter expression.)
fn usage_hint(e: &clap::Error) -> Option<String> {
    use clap::error::{ContextKind, ContextValue};
    match e.get(ContextKind::ValidValue) {
        Some(ContextValue::Strings(valid)) => Some(format!("valid values: {}", valid.join(", "))),
        _ => None,
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            // --help and --version: a failed write is a failure too, but a
            // reader that went away is not
            return match e.print().and_then(|()| std::io::stdout().flush()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!(
                        "sockwho: cannot write the output: {}",
                        sockwho::error::reason(&e)
                    );
                    ExitCode::from(1)
                }
            };
        }
        Err(e) => {
            // One line, as every other error: clap's first line, which names
            // the problem, without its usage block, and a hint where the
            // usual mistake is known.
            let text = e.render().to_string();
            let first = text.lines().next().unwrap_or("invalid usage");
            let first = first.strip_prefix("error: ").unwrap_or(first);
            let hint = usage_hint(&e).unwrap_or_else(|| "see sockwho --help".to_string());
            eprintln!("sockwho: {first} ({hint})");
            return ExitCode::from(2);
        }
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, stdout.lock());
    let mut notices = Notices::default();
    let result = sockwho::run(&cli, &Environment::read(), &mut out, &mut notices);
    let mut stderr = std::io::stderr().lock();
    for line in notices.lines() {
        let _ = writeln!(stderr, "sockwho: {line}");
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.is_broken_pipe() => ExitCode::SUCCESS,
        Err(e) => {
            let _ = match e.hint() {
                Some(hint) => writeln!(stderr, "sockwho: {e} ({hint})"),
                None => writeln!(stderr, "sockwho: {e}"),
            };
            ExitCode::from(e.exit_code())
        }
    }
}
