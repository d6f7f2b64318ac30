//! The states of jobs, builds, agents and daemons, and the rules that derive one from another,
//! each written once. The enums that have a PostgreSQL type (migrations 0002, 0003) map to it;
//! serde and [`as_str`](JobStatus::as_str) give the spelling the API answers with.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Declares `as_str`, `ALL`, `Display` and `FromStr` from one list of (variant, spelling).
macro_rules! spelled {
    ($ty:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        impl $ty {
            pub const ALL: &'static [$ty] = &[$($ty::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($ty::$variant => $text),+
                }
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $ty {
            type Err = UnknownValue;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($ty::$variant),)+
                    _ => Err(UnknownValue),
                }
            }
        }
    };
}

/// Decodes an enum that the database spells as text (no PostgreSQL type of its own).
macro_rules! decoded_from_text {
    ($ty:ident) => {
        impl sqlx::Type<sqlx::Postgres> for $ty {
            fn type_info() -> sqlx::postgres::PgTypeInfo {
                <&str as sqlx::Type<sqlx::Postgres>>::type_info()
            }

            fn compatible(ty: &sqlx::postgres::PgTypeInfo) -> bool {
                <&str as sqlx::Type<sqlx::Postgres>>::compatible(ty)
            }
        }

        impl<'r> sqlx::Decode<'r, sqlx::Postgres> for $ty {
            fn decode(
                value: sqlx::postgres::PgValueRef<'r>,
            ) -> Result<Self, sqlx::error::BoxDynError> {
                let text = <&str as sqlx::Decode<sqlx::Postgres>>::decode(value)?;
                text.parse()
                    .map_err(|_| format!("{text:?} is no {}", stringify!($ty)).into())
            }
        }
    };
}

/// The SQL of [`AgentStatus::SQL`], as a literal for `concat!`.
macro_rules! agent_status_sql {
    () => {
        "(CASE \
        WHEN a.first_connected_at IS NULL OR a.last_connected_at IS NULL THEN \
            CASE WHEN a.connection_timeout_seconds > 0 \
                  AND floor(extract(epoch FROM now() - a.created_at)) > a.connection_timeout_seconds \
                 THEN 'timeout' ELSE 'connecting' END \
        WHEN a.disconnected_at >= a.last_connected_at \
             OR now() - a.last_connected_at > interval '30 seconds' THEN 'disconnected' \
        ELSE 'connected' END)"
    };
}
pub(crate) use agent_status_sql;

/// A string that names none of an enum's values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("unknown value")]
pub struct UnknownValue;

/// A provisioner job's status (`provisioner_job_status`), which the database derives from the
/// job's timestamps and error (the generated column `provisioner_jobs.job_status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, sqlx::Type)]
#[sqlx(type_name = "provisioner_job_status", rename_all = "lowercase")]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    Pending,
    Running,
    Succeeded,
    Canceling,
    Canceled,
    Failed,
    Unknown,
}

spelled!(JobStatus {
    Pending => "pending",
    Running => "running",
    Succeeded => "succeeded",
    Canceling => "canceling",
    Canceled => "canceled",
    Failed => "failed",
    Unknown => "unknown",
});

impl JobStatus {
    /// Not finished yet: waiting for a daemon, running, or stopping after a cancel. A workspace
    /// whose latest build's job is active cannot get another build.
    pub fn is_active(self) -> bool {
        matches!(
            self,
            JobStatus::Pending | JobStatus::Running | JobStatus::Canceling
        )
    }
}

/// What a workspace build does (`workspace_transition`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, sqlx::Type)]
#[sqlx(type_name = "workspace_transition", rename_all = "lowercase")]
#[serde(rename_all = "lowercase")]
pub enum Transition {
    Start,
    Stop,
    Delete,
}

spelled!(Transition {
    Start => "start",
    Stop => "stop",
    Delete => "delete",
});

/// Coder's workspace (build) status, derived from the build's job status and transition by
/// [`BuildStatus::of`] alone; the workspace filter asks SQL for the pairs that give a status
/// ([`BuildStatus::pairs`]) rather than deriving it a second time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BuildStatus {
    Pending,
    Starting,
    Running,
    Stopping,
    Stopped,
    Failed,
    Canceling,
    Canceled,
    Deleting,
    Deleted,
}

spelled!(BuildStatus {
    Pending => "pending",
    Starting => "starting",
    Running => "running",
    Stopping => "stopping",
    Stopped => "stopped",
    Failed => "failed",
    Canceling => "canceling",
    Canceled => "canceled",
    Deleting => "deleting",
    Deleted => "deleted",
});

impl BuildStatus {
    pub fn of(job: JobStatus, transition: Transition) -> BuildStatus {
        match (job, transition) {
            (JobStatus::Pending, _) => BuildStatus::Pending,
            (JobStatus::Running, Transition::Start) => BuildStatus::Starting,
            (JobStatus::Running, Transition::Stop) => BuildStatus::Stopping,
            (JobStatus::Running, Transition::Delete) => BuildStatus::Deleting,
            (JobStatus::Succeeded, Transition::Start) => BuildStatus::Running,
            (JobStatus::Succeeded, Transition::Stop) => BuildStatus::Stopped,
            (JobStatus::Succeeded, Transition::Delete) => BuildStatus::Deleted,
            (JobStatus::Canceling, _) => BuildStatus::Canceling,
            (JobStatus::Canceled, _) => BuildStatus::Canceled,
            (JobStatus::Failed | JobStatus::Unknown, _) => BuildStatus::Failed,
        }
    }

    /// The (job status, transition) pairs whose build status is one of `wanted`, as two
    /// parallel lists (for `unnest`).
    pub fn pairs(wanted: &[BuildStatus]) -> (Vec<JobStatus>, Vec<Transition>) {
        JobStatus::ALL
            .iter()
            .flat_map(|j| Transition::ALL.iter().map(move |t| (*j, *t)))
            .filter(|(j, t)| wanted.contains(&BuildStatus::of(*j, *t)))
            .unzip()
    }
}

/// A provisioner job log line's level (`log_level`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, sqlx::Type)]
#[sqlx(type_name = "log_level", rename_all = "lowercase")]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

spelled!(LogLevel {
    Trace => "trace",
    Debug => "debug",
    Info => "info",
    Warn => "warn",
    Error => "error",
});

impl LogLevel {
    /// A level a daemon sent, `info` when it names none.
    pub fn or_info(level: &str) -> LogLevel {
        level.parse().unwrap_or(LogLevel::Info)
    }
}

/// Upstream's agent status, from the connection's timestamps alone so every replica agrees. It
/// is computed by the database ([`AgentStatus::SQL`]), both for the agent rows read and for the
/// workspace filter `has-agent:`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AgentStatus {
    Connecting,
    Connected,
    Disconnected,
    Timeout,
}

spelled!(AgentStatus {
    Connecting => "connecting",
    Connected => "connected",
    Disconnected => "disconnected",
    Timeout => "timeout",
});

decoded_from_text!(AgentStatus);

impl AgentStatus {
    /// The status of agent `a`: never connected (`timeout` once it waited longer than its
    /// connection timeout, in whole seconds), or connected and since lost (a disconnect at or
    /// after its last connection, or a connection its replica stopped refreshing: three missed
    /// heartbeats, 30 s).
    pub const SQL: &'static str = agent_status_sql!();

    /// Why the agent is not healthy (empty when it is).
    pub fn reason(self) -> &'static str {
        match self {
            AgentStatus::Connecting => "agent is connecting",
            AgentStatus::Connected => "",
            AgentStatus::Disconnected => "agent has lost connection",
            AgentStatus::Timeout => "agent is taking too long to connect",
        }
    }
}

/// A provisioner daemon's status as listings show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DaemonStatus {
    Offline,
    Idle,
    Busy,
}

spelled!(DaemonStatus {
    Offline => "offline",
    Idle => "idle",
    Busy => "busy",
});

impl DaemonStatus {
    /// A daemon not seen for this many seconds is offline (and cannot take jobs).
    pub const OFFLINE_AFTER_SECS: i64 = 90;

    pub fn of(
        last_seen_at: DateTime<Utc>,
        has_current_job: bool,
        now: DateTime<Utc>,
    ) -> DaemonStatus {
        if (now - last_seen_at).num_seconds() >= Self::OFFLINE_AFTER_SECS {
            DaemonStatus::Offline
        } else if has_current_job {
            DaemonStatus::Busy
        } else {
            DaemonStatus::Idle
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_status_pairs_are_the_inverse_of_the_rule() {
        let (jobs, transitions) = BuildStatus::pairs(&[BuildStatus::Running]);
        assert_eq!(jobs, [JobStatus::Succeeded]);
        assert_eq!(transitions, [Transition::Start]);
        let (jobs, _) = BuildStatus::pairs(&[BuildStatus::Pending]);
        assert_eq!(jobs, [JobStatus::Pending; 3]);
        let (jobs, transitions) = BuildStatus::pairs(BuildStatus::ALL);
        assert_eq!(jobs.len(), JobStatus::ALL.len() * Transition::ALL.len());
        assert_eq!(transitions.len(), jobs.len());
    }

    #[test]
    fn spellings_round_trip() {
        for s in JobStatus::ALL {
            assert_eq!(s.as_str().parse::<JobStatus>(), Ok(*s));
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        for s in BuildStatus::ALL {
            assert_eq!(s.as_str().parse::<BuildStatus>(), Ok(*s));
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        assert_eq!(LogLevel::or_info("verbose"), LogLevel::Info);
        assert_eq!(LogLevel::or_info("warn"), LogLevel::Warn);
    }

    #[test]
    fn a_daemon_is_offline_after_90_seconds() {
        let now = Utc::now();
        let seen = |s| now - chrono::Duration::seconds(s);
        assert_eq!(DaemonStatus::of(seen(89), false, now), DaemonStatus::Idle);
        assert_eq!(DaemonStatus::of(seen(89), true, now), DaemonStatus::Busy);
        assert_eq!(DaemonStatus::of(seen(90), true, now), DaemonStatus::Offline);
    }
}
