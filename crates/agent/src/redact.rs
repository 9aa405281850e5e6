//! Secrets out of probe output: command lines often carry passwords and tokens
//! (`mysqld --password=…`, `curl -H 'Authorization: Bearer …'`, `vigil agent --token …`),
//! and probe output ends up on incidents, in tickets and in chat. Every probe's output is
//! redacted here before it leaves the agent.
//!
//! A secret's value becomes `***` and its key stays, so the evidence still says what was
//! there: `--password=***`, `Authorization: Bearer ***`, `https://deploy:***@git.example`.
//! Built in:
//!
//! * `KEY=value` and `--KEY value` where KEY ends in `password`, `passwd`, `passphrase`,
//!   `secret`, `token`, `api_key`/`apikey`/`api-key` or `access_key` (any case, any prefix:
//!   `DB_PASSWORD=`, `--client-secret`, `-Dspring.datasource.password=`);
//! * `Authorization:` header values (with their `Bearer`/`Basic`/… scheme kept) and any
//!   `Bearer` token;
//! * AWS access key ids (`AKIA…`, `ASIA…`) and the 40-character secret key after
//!   `aws_secret_access_key`;
//! * the password in a URL, `scheme://user:password@host`;
//! * vigil's own tokens, `vgl_…`.
//!
//! Operators add their own regular expressions (`redact_patterns`); whatever they match
//! becomes `***`.

use std::borrow::Cow;
use std::sync::LazyLock;

use regex::{NoExpand, Regex};

/// What a redacted value is replaced with.
pub const MASK: &str = "***";

/// The endings of a key whose value is a secret.
const SECRET_KEY: &str =
    r"[\w.-]*(?:password|passwd|passphrase|secret|token|api[_-]?key|access[_-]?key)";
/// A value: quoted (on one line), or up to the next blank.
const VALUE: &str = r#""[^"\n]*"|'[^'\n]*'|\S+"#;

/// One built-in rule: what to find and what to put instead (`${key}` is kept).
struct Rule {
    find: Regex,
    with: &'static str,
}

fn rule(pattern: &str, with: &'static str) -> Rule {
    Rule {
        // The patterns are constants; the `built_in_rules_compile` test proves they parse.
        find: Regex::new(pattern).unwrap_or_else(|e| panic!("built-in redaction rule: {e}")),
        with,
    }
}

/// Applied in this order to text; each rule's output is stable under the later ones.
static TEXT_RULES: LazyLock<Vec<Rule>> = LazyLock::new(|| {
    vec![
        // `aws_secret_access_key = X` as config files and `aws configure set` write it.
        rule(
            r#"(?i)(?P<key>aws_?secret_?access_?key["']?[ \t]*[:=]?[ \t]*["']?)[A-Za-z0-9/+=]{40,}"#,
            "${key}***",
        ),
        rule(
            &format!(r"(?i)(?P<key>{SECRET_KEY})=(?:{VALUE})"),
            "${key}=***",
        ),
        // A flag whose value is the next argument; only at the start of a word, so prose
        // such as `reset-token issued` is left alone.
        rule(
            &format!(r"(?im)(?P<key>(?:^|[ \t])--?{SECRET_KEY})[ \t]+(?:{VALUE})"),
            "${key} ***",
        ),
        rule(
            r#"(?i)(?P<key>\bauthorization[ \t]*[:=][ \t]*(?:(?:basic|bearer|digest|negotiate|token)[ \t]+)?)[^\s"']+"#,
            "${key}***",
        ),
        rule(
            r"(?i)(?P<key>\bbearer[ \t]+)[A-Za-z0-9._~+/=-]+",
            "${key}***",
        ),
        rule(r"\b(?P<key>AKIA|ASIA)[A-Z0-9]{16}\b", "${key}***"),
        rule(
            r"(?i)(?P<key>\b[a-z][a-z0-9+.-]*://[^\s/@:]*:)[^\s/@]+@",
            "${key}***@",
        ),
        // vigil's own tokens wherever they stand, even glued to a word (`ID_vgl_…`).
        rule(r"(?P<key>vgl_)[A-Za-z0-9_-]{8,}", "${key}***"),
    ]
});

/// A whole argument that is a secret flag, whose value is the next argument.
static SECRET_FLAG: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!(r"(?i)^--?{SECRET_KEY}$"))
        .unwrap_or_else(|e| panic!("built-in redaction rule: {e}"))
});
/// A whole argument `KEY=value`: the value runs to the argument's end, blanks included.
static SECRET_ASSIGNMENT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!(r"(?is)^(?P<key>{SECRET_KEY})=.+$"))
        .unwrap_or_else(|e| panic!("built-in redaction rule: {e}"))
});

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum RedactError {
    #[error("redact_patterns[{index}] `{pattern}` is not a valid regular expression: {message}")]
    Pattern {
        index: usize,
        pattern: String,
        message: String,
    },
}

/// The built-in rules plus an operator's own patterns.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    extra: Vec<Regex>,
}

impl Redactor {
    /// The built-in rules and `extra` regular expressions (Rust `regex` syntax), whose
    /// matches become `***`.
    pub fn new<S: AsRef<str>>(extra: &[S]) -> Result<Redactor, RedactError> {
        let extra = extra
            .iter()
            .enumerate()
            .map(|(index, pattern)| {
                let pattern = pattern.as_ref();
                Regex::new(pattern).map_err(|e| RedactError::Pattern {
                    index,
                    pattern: pattern.to_string(),
                    message: e.to_string(),
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Redactor { extra })
    }

    /// `text` with every secret the rules find replaced.
    pub fn text<'t>(&self, text: &'t str) -> Cow<'t, str> {
        let mut out = Cow::Borrowed(text);
        for rule in TEXT_RULES.iter() {
            if let Cow::Owned(changed) = rule.find.replace_all(&out, rule.with) {
                out = Cow::Owned(changed);
            }
        }
        for pattern in &self.extra {
            if let Cow::Owned(changed) = pattern.replace_all(&out, NoExpand(MASK)) {
                out = Cow::Owned(changed);
            }
        }
        out
    }

    /// A process's argv as one line, redacted. Knowing where arguments end does better
    /// than the text rules alone: `--password` hides the whole next argument and
    /// `PASSWORD=a b` the whole value, blanks and all.
    pub fn command_line(&self, argv: &[String]) -> String {
        let mut words: Vec<Cow<str>> = Vec::with_capacity(argv.len());
        let mut hide_next = false;
        for arg in argv {
            if std::mem::take(&mut hide_next) {
                words.push(Cow::Borrowed(MASK));
                continue;
            }
            hide_next = SECRET_FLAG.is_match(arg);
            words.push(SECRET_ASSIGNMENT.replace(arg, "${key}=***"));
        }
        self.text(&words.join(" ")).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_rules_compile() {
        assert_eq!(TEXT_RULES.len(), 8);
        assert!(SECRET_FLAG.is_match("--password"));
        assert!(SECRET_ASSIGNMENT.is_match("password=x"));
    }

    #[test]
    fn text_shapes_are_redacted() {
        let redactor = Redactor::default();
        let cases = [
            // (input, redacted)
            ("mysqld --password=hunter2 --port 3306", "mysqld --password=*** --port 3306"),
            ("mysqld --password hunter2 --port 3306", "mysqld --password *** --port 3306"),
            ("app --db-password=hunter2", "app --db-password=***"),
            ("app --PASSWORD=Hunter2", "app --PASSWORD=***"),
            ("java -Dspring.datasource.password=s3cr3t -jar a.jar", "java -Dspring.datasource.password=*** -jar a.jar"),
            ("env DB_PASSWORD=hunter2 ./run", "env DB_PASSWORD=*** ./run"),
            ("login passwd=hunter2", "login passwd=***"),
            ("ssh-add passphrase=correct-horse", "ssh-add passphrase=***"),
            ("worker secret=abc123 --x", "worker secret=*** --x"),
            ("worker CLIENT_SECRET=abc123", "worker CLIENT_SECRET=***"),
            ("bot --client-secret abc123", "bot --client-secret ***"),
            ("cli token=abc123", "cli token=***"),
            ("cli GITHUB_TOKEN=ghp_abcdef", "cli GITHUB_TOKEN=***"),
            ("cli --token abc123", "cli --token ***"),
            ("svc api_key=k1 apikey=k2 API-KEY=k3 Api_Key=k4", "svc api_key=*** apikey=*** API-KEY=*** Api_Key=***"),
            ("svc access_key=k1 ACCESS-KEY=k2", "svc access_key=*** ACCESS-KEY=***"),
            ("svc --api-key k1", "svc --api-key ***"),
            (r#"run password="two words" next"#, "run password=*** next"),
            ("run password='two words' next", "run password=*** next"),
            ("curl -H Authorization: Bearer eyJhbGciOi.x.y https://a", "curl -H Authorization: Bearer *** https://a"),
            ("curl -H 'Authorization: Basic dXNlcjpwYXNz' https://a", "curl -H 'Authorization: Basic ***' https://a"),
            ("curl -H authorization:abc123 https://a", "curl -H authorization:*** https://a"),
            ("curl --oauth2-bearer tok.en", "curl --oauth2-bearer ***"),
            ("curl -H 'X-Auth: Bearer tok.en'", "curl -H 'X-Auth: Bearer ***'"),
            ("aws AKIAIOSFODNN7EXAMPLE done", "aws AKIA*** done"),
            ("aws ASIAIOSFODNN7EXAMPLE done", "aws ASIA*** done"),
            (
                "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                "aws_secret_access_key = ***",
            ),
            (
                "export AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                "export AWS_SECRET_ACCESS_KEY=***",
            ),
            (
                "git clone https://deploy:hunter2@git.example.com/repo.git",
                "git clone https://deploy:***@git.example.com/repo.git",
            ),
            ("psql postgres://app:pw@db:5432/app", "psql postgres://app:***@db:5432/app"),
            ("redis-cli -u redis://:pw@cache:6379", "redis-cli -u redis://:***@cache:6379"),
            (
                "vigil agent --server http://10.0.0.5:8080 --token vgl_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789-_abcde",
                "vigil agent --server http://10.0.0.5:8080 --token ***",
            ),
            ("log: used vgl_AbCdEfGhIjKlMnOp", "log: used vgl_***"),
            ("env AGENT_ID_vgl_AbCdEfGhIjKlMnOp", "env AGENT_ID_vgl_***"),
            ("https://example.com/cb?token=abc&page=2", "https://example.com/cb?token=***"),
        ];
        for (input, expected) in cases {
            assert_eq!(redactor.text(input), expected, "input: {input}");
        }
    }

    #[test]
    fn harmless_text_is_left_alone() {
        let redactor = Redactor::default();
        for text in [
            "nginx: worker process",
            "app --password-file /etc/app/pw --token-file=/run/t",
            "tokenizer=bert --max-tokens 100",
            "curl http://localhost:8080/health",
            "psql postgres://app@db:5432/app",
            "reset-token issued to user",
            "AKIA is how AWS key ids start",
            "vgl_short",
            "USER PID COMMAND\nroot 1 /sbin/init",
        ] {
            assert!(
                matches!(redactor.text(text), Cow::Borrowed(_)),
                "{text} was changed to {}",
                redactor.text(text)
            );
        }
    }

    #[test]
    fn a_flag_at_the_end_of_a_line_does_not_hide_the_next_line() {
        let redactor = Redactor::default();
        assert_eq!(
            redactor.text("root 7 app --password\nroot 8 other"),
            "root 7 app --password\nroot 8 other"
        );
    }

    #[test]
    fn redaction_is_stable() {
        let redactor = Redactor::new(&["corp-[0-9]+"]).unwrap();
        let once = redactor
            .text("a --password=x --token y https://u:p@h AKIAIOSFODNN7EXAMPLE vgl_AbCdEfGhIj corp-42")
            .into_owned();
        assert_eq!(redactor.text(&once), once);
    }

    #[test]
    fn command_lines_use_argument_boundaries() {
        let redactor = Redactor::default();
        let argv = |args: &[&str]| args.iter().map(|a| a.to_string()).collect::<Vec<_>>();
        let cases = [
            (
                argv(&["mysqld", "--password=hunter2"]),
                "mysqld --password=***",
            ),
            (
                argv(&["mysqld", "--password", "two words"]),
                "mysqld --password ***",
            ),
            (
                argv(&["mysqld", "--password", "--oops"]),
                "mysqld --password ***",
            ),
            (
                argv(&["env", "DB_PASSWORD=two words", "run"]),
                "env DB_PASSWORD=*** run",
            ),
            (
                argv(&[
                    "su",
                    "app",
                    "--command",
                    "mysql --password hunter2 -e 'select 1'",
                ]),
                "su app --command mysql --password *** -e 'select 1'",
            ),
            (
                argv(&["curl", "-H", "Authorization: Bearer abc.def", "https://x"]),
                "curl -H Authorization: Bearer *** https://x",
            ),
            (
                argv(&["vigil", "agent", "--token", "vgl_AbCdEfGhIjKlMnOp"]),
                "vigil agent --token ***",
            ),
            (
                argv(&["app", "--password-file", "/etc/pw", "--verbose"]),
                "app --password-file /etc/pw --verbose",
            ),
        ];
        for (args, expected) in cases {
            assert_eq!(redactor.command_line(&args), expected, "argv: {args:?}");
        }
    }

    #[test]
    fn extra_patterns_are_masked() {
        let redactor = Redactor::new(&[r"corp-[0-9a-f]{8}", r"(?i)x-api-secret:\s*\S+"]).unwrap();
        assert_eq!(
            redactor.text("svc --license corp-deadbeef X-Api-Secret: abc --password=p"),
            "svc --license *** *** --password=***"
        );
        assert_eq!(
            redactor.command_line(&["svc".into(), "corp-0badf00d".into()]),
            "svc ***"
        );
    }

    #[test]
    fn extra_patterns_cannot_unmask_vigil_tokens() {
        let token = "vgl_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789-_abcde";
        let argv: Vec<String> = ["vigil", "agent", "--token", token, "--token=", token]
            .iter()
            .map(|a| a.to_string())
            .collect();
        let text =
            format!("vigil agent --token {token} --token={token} ID_{token} token: {token}\n");
        // Patterns that overlap the built-in shapes, match nothing, or match everything.
        for extra in [
            vec![],
            vec!["vgl_"],
            vec!["--token"],
            vec![r"\*\*\*"],
            vec!["(?s).*"],
            vec!["nothing-matches-this"],
            vec!["", "token"],
        ] {
            let redactor = Redactor::new(&extra).unwrap();
            for out in [
                redactor.text(&text).into_owned(),
                redactor.command_line(&argv),
            ] {
                assert!(
                    !out.contains(&token[4..12]),
                    "with {extra:?} the token shows in: {out}"
                );
            }
        }
    }

    #[test]
    fn an_invalid_pattern_is_named() {
        let err = Redactor::new(&["fine", "(unclosed"]).unwrap_err();
        let RedactError::Pattern { index, pattern, .. } = &err;
        assert_eq!((*index, pattern.as_str()), (1, "(unclosed"));
        let message = err.to_string();
        assert!(
            message.starts_with("redact_patterns[1] `(unclosed` is not a valid regular expression"),
            "{message}"
        );
    }
}
