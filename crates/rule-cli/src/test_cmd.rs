//! `vigil rule test`: does a pattern match an event?

use std::io::{Read, Write};

use serde_json::Value;
use vigil_pattern::Pattern;

/// Exit code: the pattern matches the event.
const MATCH: u8 = 0;
/// Exit code: the pattern does not match the event.
const NO_MATCH: u8 = 1;
/// Exit code: the pattern or the event could not be read or is invalid.
const INVALID: u8 = 2;

/// Tests `pattern` against `event`, like `aws events test-event-pattern`.
///
/// Each argument is JSON text, `@FILE` to read a file, or `@-` to read standard input
/// (only one of the two may use it). Prints `match` or `no match` to stdout and returns 0 or 1;
/// prints `invalid pattern: …` or `invalid event: …` to stderr and returns 2 when an argument
/// cannot be read, is not valid JSON, or the pattern does not compile.
pub fn rule_test(pattern: &str, event: &str) -> u8 {
    rule_test_with(
        pattern,
        event,
        &mut std::io::stdin().lock(),
        &mut std::io::stdout().lock(),
        &mut std::io::stderr().lock(),
    )
}

/// [`rule_test`] with its streams passed in, so it can be tested.
pub fn rule_test_with(
    pattern: &str,
    event: &str,
    stdin: &mut dyn Read,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> u8 {
    let (code, line, to_stdout) = decide(pattern, event, stdin);
    // A closed stdout/stderr (e.g. `| head -0`) must not change the answer: the exit code
    // is the result, the text is a courtesy.
    let stream: &mut dyn Write = if to_stdout { out } else { err };
    let _ = writeln!(stream, "{line}");
    let _ = stream.flush();
    code
}

/// The exit code, the line to print, and whether it goes to stdout.
fn decide(pattern_arg: &str, event_arg: &str, stdin: &mut dyn Read) -> (u8, String, bool) {
    let mut stdin_used = false;

    let pattern = match read_arg(pattern_arg, stdin, &mut stdin_used)
        .and_then(|text| Pattern::parse(&text).map_err(|e| e.to_string()))
    {
        Ok(pattern) => pattern,
        Err(message) => return (INVALID, prefixed("invalid pattern", &message), false),
    };

    let event = match read_arg(event_arg, stdin, &mut stdin_used).and_then(|text| {
        serde_json::from_str::<Value>(&text).map_err(|e| format!("not valid JSON: {e}"))
    }) {
        // EventBridge events are JSON objects; anything else cannot be matched meaningfully.
        Ok(event) if event.is_object() => event,
        Ok(_) => {
            return (
                INVALID,
                "invalid event: an event must be a JSON object".into(),
                false,
            )
        }
        Err(message) => return (INVALID, prefixed("invalid event", &message), false),
    };

    if pattern.matches(&event) {
        (MATCH, "match".into(), true)
    } else {
        (NO_MATCH, "no match".into(), true)
    }
}

/// `prefix: message`, unless the message already starts with the prefix (PatternError's
/// Display says "invalid pattern…" itself, and saying it twice reads badly).
fn prefixed(prefix: &str, message: &str) -> String {
    if message.starts_with(prefix) {
        message.to_string()
    } else {
        format!("{prefix}: {message}")
    }
}

/// The text an argument stands for: itself, a file's contents (`@FILE`) or stdin (`@-`).
fn read_arg(arg: &str, stdin: &mut dyn Read, stdin_used: &mut bool) -> Result<String, String> {
    let Some(name) = arg.trim_start().strip_prefix('@') else {
        return Ok(arg.to_string());
    };
    match name {
        "" => Err("`@` must be followed by a file name, or `-` for stdin".into()),
        "-" => {
            // Stdin can be read once; a second `@-` would silently see an empty document.
            if std::mem::replace(stdin_used, true) {
                return Err("only one argument can be read from stdin (`@-`)".into());
            }
            let mut text = String::new();
            stdin
                .read_to_string(&mut text)
                .map_err(|e| format!("cannot read stdin: {e}"))?;
            Ok(text)
        }
        path => std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::TempDir;

    /// Runs the command with `stdin` as standard input; returns (code, stdout, stderr).
    fn run(pattern: &str, event: &str, stdin: &str) -> (u8, String, String) {
        let mut out = Vec::new();
        let mut err = Vec::new();
        let code = rule_test_with(pattern, event, &mut stdin.as_bytes(), &mut out, &mut err);
        (
            code,
            String::from_utf8(out).expect("stdout is UTF-8"),
            String::from_utf8(err).expect("stderr is UTF-8"),
        )
    }

    const PATTERN: &str = r#"{"source":["aws.ec2"],"detail":{"state":["stopped"]}}"#;
    const MATCHING: &str = r#"{"source":"aws.ec2","detail":{"state":"stopped"}}"#;
    const OTHER: &str = r#"{"source":"aws.ec2","detail":{"state":"running"}}"#;

    #[test]
    fn match_prints_match_and_exits_0() {
        assert_eq!(
            run(PATTERN, MATCHING, ""),
            (0, "match\n".into(), String::new())
        );
    }

    #[test]
    fn no_match_prints_no_match_and_exits_1() {
        assert_eq!(
            run(PATTERN, OTHER, ""),
            (1, "no match\n".into(), String::new())
        );
    }

    #[test]
    fn invalid_pattern_exits_2() {
        // Valid JSON but not a pattern: a field's value must be an array or an object.
        let (code, out, err) = run(r#"{"source":"aws.ec2"}"#, MATCHING, "");
        assert_eq!(code, 2);
        assert_eq!(out, "");
        assert!(err.starts_with("invalid pattern"), "{err}");
        assert!(!err.contains("invalid pattern: invalid pattern"), "{err}");

        let (code, _, err) = run("{not json", MATCHING, "");
        assert_eq!(code, 2);
        assert!(err.starts_with("invalid pattern"), "{err}");

        // Refused by AWS as too complex: exit 2 with AWS's reason and the field.
        let (code, out, err) = run(r#"{"source":[{"wildcard":"*aaaaaaaaaa"}]}"#, MATCHING, "");
        assert_eq!((code, out.as_str()), (2, ""));
        assert_eq!(
            err,
            "invalid pattern at `source`: Rule is too complex - try using fewer wildcard characters or fewer repeating character sequences after a wildcard character\n"
        );
    }

    #[test]
    fn invalid_event_exits_2() {
        let (code, out, err) = run(PATTERN, "{\"source\":", "");
        assert_eq!((code, out.as_str()), (2, ""));
        assert!(err.starts_with("invalid event: not valid JSON"), "{err}");

        let (code, _, err) = run(PATTERN, "[1, 2]", "");
        assert_eq!(code, 2);
        assert_eq!(err, "invalid event: an event must be a JSON object\n");
    }

    #[test]
    fn reads_files_and_stdin() {
        let dir = TempDir::new();
        let pattern = dir.write("pattern.json", PATTERN.as_bytes());
        let event = dir.write("event.json", MATCHING.as_bytes());
        let other = dir.write("other.json", OTHER.as_bytes());
        let p = format!("@{}", pattern.display());
        assert_eq!(run(&p, &format!("@{}", event.display()), "").0, 0);
        assert_eq!(run(&p, &format!("@{}", other.display()), "").0, 1);
        // The event from stdin, then the pattern from stdin.
        assert_eq!(run(&p, "@-", MATCHING).0, 0);
        assert_eq!(run("@-", OTHER, PATTERN).0, 1);
    }

    #[test]
    fn unreadable_arguments_exit_2() {
        let dir = TempDir::new();
        let missing = dir.path().join("missing.json");
        let (code, _, err) = run(&format!("@{}", missing.display()), MATCHING, "");
        assert_eq!(code, 2);
        assert!(err.starts_with("invalid pattern: cannot read"), "{err}");
        assert!(err.contains("missing.json"), "{err}");

        let (code, _, err) = run(PATTERN, &format!("@{}", missing.display()), "");
        assert_eq!(code, 2);
        assert!(err.starts_with("invalid event: cannot read"), "{err}");

        let (code, _, err) = run("@-", "@-", PATTERN);
        assert_eq!(code, 2);
        assert!(err.contains("only one argument"), "{err}");

        let (code, _, err) = run("@", MATCHING, "");
        assert_eq!(code, 2);
        assert!(
            err.starts_with("invalid pattern: `@` must be followed"),
            "{err}"
        );
    }
}
