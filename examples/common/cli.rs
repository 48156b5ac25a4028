//! The command-line entry the demo and the relay benchmark share.

use std::process::ExitCode;

/// The arguments a parser made of the command line, or the exit code to return: for help (an
/// empty error) the usage on stdout and success; for any other error the error and the usage
/// on stderr and 2.
pub(crate) fn parsed_or_exit<A>(parsed: Result<A, String>, usage: &str) -> Result<A, ExitCode> {
    match parsed {
        Ok(a) => Ok(a),
        Err(e) if e.is_empty() => {
            print!("{usage}");
            Err(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("error: {e}\n\n{usage}");
            Err(ExitCode::from(2))
        }
    }
}
