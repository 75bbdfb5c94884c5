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
    let broken = r#"{"triggerSource": "sdk", "externalDeploymentId": "commit-on-a-broken-blob"}"#;
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
