//! Where the native tools (`tools/bin/migrate.rs`, `tools/bin/rollup.rs`) find ClickHouse: the
//! `MM_CH_*` environment, overridden by `--url`, `--database`, `--user`. The password only ever
//! comes from `MM_CH_PASSWORD`, never the command line, where `ps` would show it.

use super::clickhouse_client::Client;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub url: String,
    pub database: String,
    pub user: String,
}

/// The flags `Settings::take` knows, for a tool's usage line.
pub const USAGE: &str = "[--url URL] [--database DB] [--user USER] (password: MM_CH_PASSWORD)";

impl Settings {
    /// From `MM_CH_URL`, `MM_CH_DATABASE`, `MM_CH_USER`, with the local defaults.
    pub fn from_env() -> Settings {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    fn from_vars(var: impl Fn(&str) -> Option<String>) -> Settings {
        Settings {
            url: var("MM_CH_URL").unwrap_or_else(|| "http://127.0.0.1:8123".into()),
            database: var("MM_CH_DATABASE").unwrap_or_else(|| "millimetric".into()),
            user: var("MM_CH_USER").unwrap_or_else(|| "default".into()),
        }
    }

    /// Takes `flag` with its value if it is one of these settings' flags; false otherwise.
    pub fn take(&mut self, flag: &str, value: impl FnOnce() -> String) -> bool {
        let slot = match flag {
            "--url" => &mut self.url,
            "--database" => &mut self.database,
            "--user" => &mut self.user,
            _ => return false,
        };
        *slot = value();
        true
    }

    /// The environment's settings, overridden by the command line. Flags that are not the
    /// settings' go to `other` with a way to read their value; it answers whether it knew the
    /// flag. An unknown flag or a missing value ends the tool with its `usage`.
    pub fn from_env_and_args(tool: &str, usage: &str, mut other: impl FnMut(&str, &mut dyn FnMut() -> String) -> bool) -> Settings {
        let mut settings = Settings::from_env();
        let mut args = std::env::args().skip(1);
        while let Some(a) = args.next() {
            let mut value = || args.next().unwrap_or_else(|| exit(tool, &format!("{a} needs a value")));
            if !settings.take(&a, &mut value) && !other(&a, &mut value) {
                exit(tool, &format!("unknown argument {a}; usage: {tool} {USAGE} {usage}"));
            }
        }
        settings
    }

    /// A client for the server (no database selected), with the password from the environment.
    pub fn client(&self) -> Client {
        let mut client = Client::new(&self.url);
        client.user = self.user.clone();
        client.password = std::env::var("MM_CH_PASSWORD").unwrap_or_default();
        client
    }
}

/// Ends a tool with `tool: msg` on stderr and exit status 1.
pub fn exit(tool: &str, msg: &str) -> ! {
    eprintln!("{tool}: {msg}");
    std::process::exit(1);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_the_environment_which_overrides_the_defaults() {
        let mut s = Settings::from_vars(|n| (n == "MM_CH_USER").then(|| "millimetric_migrator".to_string()));
        assert_eq!(
            (s.url.as_str(), s.database.as_str(), s.user.as_str()),
            ("http://127.0.0.1:8123", "millimetric", "millimetric_migrator")
        );
        assert!(s.take("--url", || "https://ch.example:8443".into()));
        assert!(!s.take("--table", || unreachable!("not a settings flag")));
        assert_eq!(s.url, "https://ch.example:8443");
    }
}
