//! The transform's input: one Postgres row of `"TaskRun"` or `task_run_v2`, as text values.
//!
//! The source layer maps each [`Col`] to its position in a pgoutput tuple (by column name, so
//! column order and extra columns do not matter), resolves unchanged-TOAST cells from the old
//! tuple, and hands the transform a [`SourceRow`]. Values are pgoutput *text* renderings with the
//! walsender pinned to `DateStyle=ISO, TimeZone=UTC`.

macro_rules! columns {
    ($($variant:ident => $name:literal,)*) => {
        /// Every Postgres column the transform reads. All are required: a relation without one of
        /// them is a hard stop, never a silently defaulted value.
        #[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
        #[repr(u8)]
        pub enum Col { $($variant,)* }

        impl Col {
            pub const ALL: &'static [Col] = &[$(Col::$variant,)*];
            pub const COUNT: usize = Col::ALL.len();

            /// The Postgres column name (quoted camelCase in SQL).
            pub const fn pg_name(self) -> &'static str {
                match self { $(Col::$variant => $name,)* }
            }

            pub fn from_pg_name(name: &str) -> Option<Col> {
                match name { $($name => Some(Col::$variant),)* _ => None }
            }
        }
    };
}

columns! {
    Id => "id",
    FriendlyId => "friendlyId",
    Engine => "engine",
    Status => "status",
    StatusReason => "statusReason",
    IdempotencyKey => "idempotencyKey",
    IdempotencyKeyOptions => "idempotencyKeyOptions",
    TaskIdentifier => "taskIdentifier",
    IsTest => "isTest",
    Payload => "payload",
    PayloadType => "payloadType",
    TraceId => "traceId",
    SpanId => "spanId",
    RuntimeEnvironmentId => "runtimeEnvironmentId",
    EnvironmentType => "environmentType",
    ProjectId => "projectId",
    OrganizationId => "organizationId",
    Queue => "queue",
    MasterQueue => "masterQueue",
    Region => "region",
    AttemptNumber => "attemptNumber",
    CreatedAt => "createdAt",
    UpdatedAt => "updatedAt",
    RunTags => "runTags",
    TaskVersion => "taskVersion",
    SdkVersion => "sdkVersion",
    CliVersion => "cliVersion",
    StartedAt => "startedAt",
    ExecutedAt => "executedAt",
    CompletedAt => "completedAt",
    MachinePreset => "machinePreset",
    UsageDurationMs => "usageDurationMs",
    CostInCents => "costInCents",
    BaseCostInCents => "baseCostInCents",
    ConcurrencyKey => "concurrencyKey",
    DelayUntil => "delayUntil",
    QueuedAt => "queuedAt",
    Ttl => "ttl",
    ExpiredAt => "expiredAt",
    QueueTimestamp => "queueTimestamp",
    ScheduleId => "scheduleId",
    BulkActionGroupIds => "bulkActionGroupIds",
    RootTaskRunId => "rootTaskRunId",
    ParentTaskRunId => "parentTaskRunId",
    BatchId => "batchId",
    Depth => "depth",
    Annotations => "annotations",
    IsWarmStart => "isWarmStart",
    Output => "output",
    OutputType => "outputType",
    Error => "error",
    PlanType => "planType",
    MaxDurationInSeconds => "maxDurationInSeconds",
}

/// One decoded row: the text value of every [`Col`], `None` for SQL NULL.
#[derive(Clone, Debug)]
pub struct SourceRow<'a> {
    values: [Option<&'a str>; Col::COUNT],
}

impl Default for SourceRow<'_> {
    fn default() -> Self {
        SourceRow {
            values: [None; Col::COUNT],
        }
    }
}

impl<'a> SourceRow<'a> {
    pub fn new() -> Self {
        SourceRow::default()
    }

    pub fn set(&mut self, col: Col, value: Option<&'a str>) {
        self.values[col as usize] = value;
    }

    pub fn get(&self, col: Col) -> Option<&'a str> {
        self.values[col as usize]
    }

    /// Builds a row from `(column, value)` pairs; handy in tests.
    pub fn from_pairs(pairs: &[(Col, &'a str)]) -> Self {
        let mut row = SourceRow::new();
        for &(col, value) in pairs {
            row.set(col, Some(value));
        }
        row
    }
}

#[cfg(test)]
mod tests;
