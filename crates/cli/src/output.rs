//! What the CLI writes, and how: lines to stdout that end quietly when the reader goes
//! away (`vigil incidents | head -1`), and colour only for a person at a terminal.

use std::io::IsTerminal;

/// Writes one line to stdout, returning the write's error instead of panicking as
/// `println!` does on a closed pipe. `?` carries it up to `main`, which ends quietly.
macro_rules! outln {
    () => {
        $crate::output::line(format_args!(""))?
    };
    ($($arg:tt)*) => {
        $crate::output::line(format_args!($($arg)*))?
    };
}
pub(crate) use outln;

pub fn line(text: std::fmt::Arguments<'_>) -> std::io::Result<()> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    stdout.write_fmt(text)?;
    stdout.write_all(b"\n")
}

/// Text without a newline (an export is already whole lines).
pub fn text(text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(text.as_bytes())?;
    stdout.flush()
}

/// Whether the error is stdout's reader having gone: not a failure of the command, whose
/// output was simply not all wanted.
pub fn is_closed_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Colour on stderr (the logs) only when it is a terminal and `NO_COLOR` is unset or
/// empty (https://no-color.org).
pub fn stderr_colour() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}
