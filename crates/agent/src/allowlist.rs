//! The commands this host's owner lets vigil run, by name.
//!
//! The server only ever sends a name (`command:NAME`); the argv comes from this file on
//! the host, so whoever controls the server cannot choose what runs. Arguments in a
//! request are never appended.
//!
//! # File format
//!
//! ```toml
//! [commands]
//! nginx_status = ["/usr/bin/systemctl", "status", "nginx"]
//! df_inodes = ["/bin/df", "-i"]
//! ```
//!
//! * Names match `[a-z0-9_-]+`.
//! * Each argv is non-empty and its first element is an absolute path: commands run
//!   without a shell, so pipes, redirections and `$VARIABLES` are passed literally.
//! * Unknown keys are errors, so a misspelt `[command]` table is caught instead of
//!   silently allowing nothing.
//! * A file without a `[commands]` table allows nothing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Command names mapped to the argv each one runs.
#[derive(Debug, Clone, Default)]
pub struct AllowList {
    commands: BTreeMap<String, Vec<String>>,
}

#[derive(Debug, thiserror::Error)]
pub enum AllowListError {
    #[error("cannot read the allow-list {path}: {source}; check the path and that the agent's user can read it")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("in the allow-list {path}: {source}")]
    InFile {
        path: PathBuf,
        source: Box<AllowListError>,
    },
    #[error("the allow-list is not valid: {0}; expected a [commands] table of name = [\"/absolute/program\", \"arg\", ...]")]
    Syntax(#[from] toml::de::Error),
    #[error("allow-list entry `{0}`: names may only contain a-z, 0-9, `_` and `-`; rename it")]
    BadName(String),
    #[error(
        "allow-list entry `{0}`: the argv is empty; give at least the program's absolute path"
    )]
    EmptyArgv(String),
    #[error("allow-list entry `{name}`: program `{program}` is not an absolute path; commands run without a shell or PATH lookup, so write e.g. `/usr/bin/{program}`")]
    RelativeProgram { name: String, program: String },
    #[error("allow-list entry `{0}`: an argument contains a NUL byte, which no program can receive; remove it")]
    NulByte(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AllowListFile {
    #[serde(default)]
    commands: BTreeMap<String, Vec<String>>,
}

impl AllowList {
    /// Reads and checks the allow-list file; errors name the file and the entry.
    pub fn load(path: &Path) -> Result<AllowList, AllowListError> {
        let text = std::fs::read_to_string(path).map_err(|source| AllowListError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        AllowList::from_toml(&text).map_err(|e| AllowListError::InFile {
            path: path.to_path_buf(),
            source: Box::new(e),
        })
    }

    pub fn from_toml(text: &str) -> Result<AllowList, AllowListError> {
        let file: AllowListFile = toml::from_str(text)?;
        for (name, argv) in &file.commands {
            check_entry(name, argv)?;
        }
        Ok(AllowList {
            commands: file.commands,
        })
    }

    /// The argv allowed under `name`, if any.
    pub fn get(&self, name: &str) -> Option<&[String]> {
        self.commands.get(name).map(Vec::as_slice)
    }

    /// All allowed names, sorted.
    pub fn names(&self) -> Vec<&str> {
        self.commands.keys().map(String::as_str).collect()
    }
}

fn check_entry(name: &str, argv: &[String]) -> Result<(), AllowListError> {
    let name_ok = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if !name_ok {
        return Err(AllowListError::BadName(name.to_string()));
    }
    let Some(program) = argv.first() else {
        return Err(AllowListError::EmptyArgv(name.to_string()));
    };
    if !Path::new(program).is_absolute() {
        return Err(AllowListError::RelativeProgram {
            name: name.to_string(),
            program: program.clone(),
        });
    }
    if argv.iter().any(|a| a.contains('\0')) {
        return Err(AllowListError::NulByte(name.to_string()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_example_loads() {
        let list = AllowList::from_toml(
            r#"
            [commands]
            nginx_status = ["/usr/bin/systemctl", "status", "nginx"]
            df_inodes = ["/bin/df", "-i"]
            "#,
        )
        .unwrap();
        assert_eq!(list.names(), vec!["df_inodes", "nginx_status"]);
        assert_eq!(
            list.get("nginx_status").unwrap(),
            ["/usr/bin/systemctl", "status", "nginx"]
        );
        assert_eq!(list.get("df_inodes").unwrap(), ["/bin/df", "-i"]);
        assert!(list.get("nginx").is_none());
    }

    #[test]
    fn empty_file_allows_nothing() {
        let list = AllowList::from_toml("").unwrap();
        assert!(list.names().is_empty());
        assert!(AllowList::from_toml("[commands]\n")
            .unwrap()
            .names()
            .is_empty());
    }

    #[test]
    fn unknown_fields_are_rejected() {
        let err = AllowList::from_toml("[command]\nx = [\"/bin/true\"]\n").unwrap_err();
        assert!(matches!(err, AllowListError::Syntax(_)), "{err}");
        assert!(err.to_string().contains("command"), "{err}");
        let err = AllowList::from_toml("shell = true\n[commands]\n").unwrap_err();
        assert!(err.to_string().contains("shell"), "{err}");
    }

    #[test]
    fn wrong_value_types_are_rejected() {
        let err = AllowList::from_toml("[commands]\nx = \"/bin/true\"\n").unwrap_err();
        assert!(matches!(err, AllowListError::Syntax(_)), "{err}");
    }

    #[test]
    fn empty_argv_names_the_entry() {
        let err = AllowList::from_toml("[commands]\nnothing = []\n").unwrap_err();
        assert!(matches!(&err, AllowListError::EmptyArgv(n) if n == "nothing"));
        assert!(err.to_string().contains("`nothing`"), "{err}");
    }

    #[test]
    fn relative_program_names_the_entry() {
        let err = AllowList::from_toml("[commands]\ndisk = [\"df\", \"-h\"]\n").unwrap_err();
        assert!(
            matches!(&err, AllowListError::RelativeProgram { name, program } if name == "disk" && program == "df")
        );
        assert!(err.to_string().contains("/usr/bin/df"), "{err}");
        let err = AllowList::from_toml("[commands]\ndisk = [\"./df\"]\n").unwrap_err();
        assert!(matches!(err, AllowListError::RelativeProgram { .. }));
    }

    #[test]
    fn names_are_restricted() {
        for bad in [
            "\"Upper\"",
            "\"with space\"",
            "\"x;rm\"",
            "\"a$(b)\"",
            "\"dot.ted\"",
            "\"\"",
        ] {
            let text = format!("[commands]\n{bad} = [\"/bin/true\"]\n");
            let err = AllowList::from_toml(&text).unwrap_err();
            assert!(matches!(err, AllowListError::BadName(_)), "{bad}: {err}");
        }
        let ok = AllowList::from_toml("[commands]\na-b_9 = [\"/bin/true\"]\n").unwrap();
        assert_eq!(ok.names(), vec!["a-b_9"]);
    }

    #[test]
    fn nul_bytes_are_rejected() {
        let err =
            AllowList::from_toml("[commands]\nx = [\"/bin/echo\", \"a\\u0000b\"]\n").unwrap_err();
        assert!(
            matches!(&err, AllowListError::NulByte(n) if n == "x"),
            "{err}"
        );
    }

    #[test]
    fn load_names_the_file() {
        let dir = std::env::temp_dir().join(format!("vigil-allowlist-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("good.toml");
        std::fs::write(&good, "[commands]\nuptime = [\"/usr/bin/uptime\"]\n").unwrap();
        assert_eq!(AllowList::load(&good).unwrap().names(), vec!["uptime"]);

        let bad = dir.join("bad.toml");
        std::fs::write(&bad, "[commands]\nuptime = [\"uptime\"]\n").unwrap();
        let err = AllowList::load(&bad).unwrap_err().to_string();
        assert!(
            err.contains("bad.toml") && err.contains("`uptime`"),
            "{err}"
        );

        let missing = dir.join("missing.toml");
        let err = AllowList::load(&missing).unwrap_err();
        assert!(matches!(err, AllowListError::Read { .. }));
        assert!(err.to_string().contains("missing.toml"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
