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
mod tests {
    //! Validity verdicts here were checked against the real schema (`RunAnnotations.safeParse`,
    //! zod 4, on node).
    use super::*;

    fn cols(annotations: Option<&str>, reason: Option<&str>) -> AnnotationColumns {
        annotation_columns(annotations, reason).expect("valid json")
    }

    fn expect(trigger: &str, root: &str, kind: &str, ext: &str) -> AnnotationColumns {
        AnnotationColumns {
            trigger_source: trigger.into(),
            root_trigger_source: root.into(),
            task_kind: kind.into(),
            external_deployment_id: ext.into(),
        }
    }

    #[test]
    fn valid_annotations() {
        assert_eq!(
            cols(
                Some(
                    r#"{"triggerSource": "api", "triggerAction": "trigger", "rootTriggerSource": "dashboard"}"#
                ),
                None
            ),
            expect("api", "dashboard", "", "")
        );
        assert_eq!(
            cols(
                Some(
                    r#"{"taskKind": "SCHEDULED", "triggerAction": "replay", "triggerSource": "schedule", "rootScheduleId": "sched_1", "rootTriggerSource": "schedule", "workerCell": 5, "extra": [1]}"#
                ),
                None
            ),
            expect("schedule", "schedule", "SCHEDULED", "")
        );
        // Values outside the enums are still strings, which `.or(anyString)` accepts.
        assert_eq!(
            cols(
                Some(
                    r#"{"triggerSource": "carrier-pigeon", "triggerAction": "x", "rootTriggerSource": "", "taskKind": "WHATEVER"}"#
                ),
                None
            ),
            expect("carrier-pigeon", "", "WHATEVER", "")
        );
        assert_eq!(
            cols(
                Some(
                    r#"{"triggerSource": "s\u00e9", "triggerAction": "t", "rootTriggerSource": "r\"q"}"#
                ),
                None
            ),
            expect("sé", "r\"q", "", "")
        );
    }

    #[test]
    fn invalid_annotations_clear_all_three_columns() {
        for invalid in [
            r#"{"triggerSource": "sdk"}"#,
            r#"{"triggerSource": "sdk", "triggerAction": "trigger"}"#,
            r#"{"triggerSource": 1, "triggerAction": "trigger", "rootTriggerSource": "sdk"}"#,
            r#"{"triggerSource": "sdk", "triggerAction": null, "rootTriggerSource": "sdk"}"#,
            r#"{"triggerSource": "sdk", "triggerAction": "trigger", "rootTriggerSource": "sdk", "taskKind": null}"#,
            r#"{"triggerSource": "sdk", "triggerAction": "trigger", "rootTriggerSource": "sdk", "taskKind": 3}"#,
            r#"{"triggerSource": "sdk", "triggerAction": "trigger", "rootTriggerSource": "sdk", "rootScheduleId": null}"#,
            r#"{"triggerSource": "sdk", "triggerAction": "trigger", "rootTriggerSource": "sdk", "externalDeploymentId": 7}"#,
            r#"{"triggerSource": "sdk", "triggerAction": "trigger", "rootTriggerSource": "sdk", "webhookDeliveryId": {}}"#,
            r#"{"triggerSource": "sdk", "triggerAction": "trigger", "rootTriggerSource": "sdk", "webhookEndpointId": false}"#,
            r#"[{"triggerSource": "sdk", "triggerAction": "trigger", "rootTriggerSource": "sdk"}]"#,
            r#""sdk""#,
            "42",
            "null",
            "{}",
        ] {
            assert_eq!(
                cols(Some(invalid), None),
                AnnotationColumns::default(),
                "{invalid}"
            );
        }
        assert_eq!(cols(None, None), AnnotationColumns::default());
    }

    #[test]
    fn worker_stamps_never_fail_validation() {
        assert_eq!(
            cols(
                Some(
                    r#"{"triggerSource": "sdk", "triggerAction": "trigger", "rootTriggerSource": "sdk", "workerCell": null, "workerLane": [1]}"#
                ),
                None
            ),
            expect("sdk", "sdk", "", "")
        );
    }

    #[test]
    fn external_deployment_id_only_for_runs_parked_on_it() {
        let with_id = r#"{"triggerSource": "sdk", "triggerAction": "trigger", "rootTriggerSource": "sdk", "externalDeploymentId": "fa1eade47b73733d6312d5abfad33ce9e4068081"}"#;
        assert_eq!(
            cols(Some(with_id), Some(EXTERNAL_DEPLOYMENT_PENDING)),
            expect("sdk", "sdk", "", "fa1eade47b73733d6312d5abfad33ce9e4068081")
        );
        assert_eq!(
            cols(Some(with_id), Some("NO_WORKER")),
            expect("sdk", "sdk", "", "")
        );
        assert_eq!(cols(Some(with_id), None), expect("sdk", "sdk", "", ""));
        // Read even when the blob fails RunAnnotations (upstream's ExternalDeploymentId test).
        let broken =
            r#"{"triggerSource": "sdk", "externalDeploymentId": "commit-on-a-broken-blob"}"#;
        assert_eq!(
            cols(Some(broken), Some(EXTERNAL_DEPLOYMENT_PENDING)),
            expect("", "", "", "commit-on-a-broken-blob")
        );
        let not_a_string = r#"{"externalDeploymentId": 12}"#;
        assert_eq!(
            cols(Some(not_a_string), Some(EXTERNAL_DEPLOYMENT_PENDING)),
            expect("", "", "", "")
        );
        let null = r#"{"externalDeploymentId": null}"#;
        assert_eq!(
            cols(Some(null), Some(EXTERNAL_DEPLOYMENT_PENDING)),
            expect("", "", "", "")
        );
        assert_eq!(
            cols(None, Some(EXTERNAL_DEPLOYMENT_PENDING)),
            expect("", "", "", "")
        );
        assert_eq!(
            cols(
                Some(r#"["externalDeploymentId"]"#),
                Some(EXTERNAL_DEPLOYMENT_PENDING)
            ),
            expect("", "", "", "")
        );
    }

    #[test]
    fn unreadable_jsonb_is_an_error() {
        assert_eq!(annotation_columns(Some("{"), None), Err(Reject::Syntax));
    }
}
