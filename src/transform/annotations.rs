//! The columns read from the `annotations` jsonb: `trigger_source`, `root_trigger_source`,
//! `task_kind` (upstream: `RunAnnotations.safeParse(annotations).data?.x ?? ""`) and
//! `external_deployment_id` (read without that validation).
//!
//! `RunAnnotations` (`packages/core/src/v3/schemas/runEngine.ts`, zod v4, as published in
//! `@trigger.dev/core` 4.8.3) is an object with
//! - required strings `triggerSource`, `triggerAction`, `rootTriggerSource` (the enums are
//!   `.or(anyString)`, so any string passes),
//! - optional strings `rootScheduleId`, `taskKind`, `externalDeploymentId`, `webhookDeliveryId`,
//!   `webhookEndpointId` (optional means absent; a JSON `null` fails validation),
//! - `workerCell` / `workerLane`, which `.catch(undefined)` and so never fail it,
//! - any other keys, which are ignored.
//!
//! If validation fails, all three columns are `""`.

use super::json::{self, Kind, Reject};

#[derive(Debug, Default, PartialEq, Eq)]
pub struct AnnotationColumns {
    pub trigger_source: String,
    pub root_trigger_source: String,
    pub task_kind: String,
    pub external_deployment_id: String,
}

/// The `statusReason` of a run parked until its external deployment exists.
pub const EXTERNAL_DEPLOYMENT_PENDING: &str = "EXTERNAL_DEPLOYMENT_PENDING";

const REQUIRED: [&str; 3] = ["triggerSource", "triggerAction", "rootTriggerSource"];
const OPTIONAL: [&str; 5] = [
    "rootScheduleId",
    "taskKind",
    "externalDeploymentId",
    "webhookDeliveryId",
    "webhookEndpointId",
];

/// `annotations` is the jsonb text (`None` for SQL NULL); `status_reason` the run's
/// `statusReason`. Fails only when the jsonb text is not JSON at all.
pub fn annotation_columns(
    annotations: Option<&str>,
    status_reason: Option<&str>,
) -> Result<AnnotationColumns, Reject> {
    let Some(annotations) = annotations else {
        return Ok(AnnotationColumns::default());
    };
    json::validate(annotations)?;
    if json::kind(annotations) != Kind::Object {
        return Ok(AnnotationColumns::default());
    }

    // The last occurrence of each key we read (JSON.parse semantics; jsonb has no duplicates).
    let mut required: [Option<&str>; 3] = [None; 3];
    let mut optional: [Option<&str>; 5] = [None; 5];
    for (key, value) in json::members(annotations) {
        if let Some(i) = REQUIRED.iter().position(|name| json::key_is(key, name)) {
            required[i] = Some(value);
        } else if let Some(i) = OPTIONAL.iter().position(|name| json::key_is(key, name)) {
            optional[i] = Some(value);
        }
    }
    let is_string = |v: &&str| json::kind(v) == Kind::String;
    let string = |v: Option<&str>| {
        v.filter(is_string)
            .map(|v| json::decode_string(v).into_owned())
    };

    let mut columns = AnnotationColumns::default();
    if status_reason == Some(EXTERNAL_DEPLOYMENT_PENDING) {
        columns.external_deployment_id = string(optional[2]).unwrap_or_default();
    }
    let valid = required.iter().all(|v| v.as_ref().is_some_and(is_string))
        && optional.iter().all(|v| v.as_ref().is_none_or(is_string));
    if valid {
        columns.trigger_source = string(required[0]).unwrap_or_default();
        columns.root_trigger_source = string(required[2]).unwrap_or_default();
        columns.task_kind = string(optional[1]).unwrap_or_default();
    }
    Ok(columns)
}

#[cfg(test)]
mod tests;
