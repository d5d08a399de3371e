//! How a setting's value is shown in `DbConfig`'s `Display` and in error messages, in the form
//! the environment accepts back.

use std::time::Duration;

use ops_duration::format_duration;

use super::backend::SslMode;
use super::pgbouncer::PgBouncerMode;
use super::reset_check::ResetCheck;
use super::url::DatabaseUrl;

/// A setting's type, as `Display` and the errors of `validate` show it.
pub(super) trait SettingValue {
    /// The value in the environment's form: `30s`, `off`, `default`.
    fn show(&self) -> String;

    /// Whether it differs from "nothing" (`None`, `false`, empty), for settings `Display` shows
    /// only when set.
    fn is_set(&self) -> bool {
        true
    }
}

impl SettingValue for u32 {
    fn show(&self) -> String {
        self.to_string()
    }
}

impl SettingValue for bool {
    fn show(&self) -> String {
        self.to_string()
    }

    fn is_set(&self) -> bool {
        *self
    }
}

impl SettingValue for Duration {
    fn show(&self) -> String {
        format_duration(*self)
    }
}

impl SettingValue for ResetCheck {
    fn show(&self) -> String {
        self.as_str().to_owned()
    }
}

impl SettingValue for Option<Duration> {
    fn show(&self) -> String {
        self.map_or_else(|| "off".to_owned(), format_duration)
    }

    fn is_set(&self) -> bool {
        self.is_some()
    }
}

impl SettingValue for Option<u32> {
    fn show(&self) -> String {
        self.map_or_else(|| "off".to_owned(), |n| n.to_string())
    }

    fn is_set(&self) -> bool {
        self.is_some()
    }
}

impl SettingValue for Option<SslMode> {
    /// `default`: no mode leaves the driver's default.
    fn show(&self) -> String {
        self.map_or("default", SslMode::as_str).to_owned()
    }

    fn is_set(&self) -> bool {
        self.is_some()
    }
}

impl SettingValue for Option<PgBouncerMode> {
    fn show(&self) -> String {
        self.map_or("off", PgBouncerMode::as_str).to_owned()
    }

    fn is_set(&self) -> bool {
        self.is_some()
    }
}

impl SettingValue for Vec<DatabaseUrl> {
    /// The URLs with their passwords masked, comma-separated.
    fn show(&self) -> String {
        let urls: Vec<String> = self.iter().map(DatabaseUrl::redacted).collect();
        urls.join(",")
    }

    fn is_set(&self) -> bool {
        !self.is_empty()
    }
}
