//! Ingest endpoints. Each decodes, validates everything, then commits before answering:
//! a 2xx means the events are durable. A body with any invalid part is refused whole.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::{Extension, Json};
use serde::Serialize;
use utoipa::ToSchema;
use vigil_core::Event;
use vigil_ingest::sns::SnsMessage;
use vigil_ingest::{alertmanager, envelope, sns};
use vigil_store::{SnsStatus, SnsSubscription};

use super::ApiError;
use crate::access::Principal;
use crate::metrics::labels;
use crate::{fresh_event_id, now, AppState};

type Answer = Result<(StatusCode, Json<IngestAnswer>), ApiError>;

/// What an ingest route answers.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum IngestAnswer {
    Accepted(Accepted),
    /// An SNS subscription confirmation that vigil is confirming.
    Confirming {
        subscription: String,
        topic: String,
    },
    /// SNS says this endpoint was unsubscribed from a topic.
    Unsubscribed {
        unsubscribed: String,
    },
}

/// The events stored, by id (in the order sent): each is durable, and processed once.
#[derive(Debug, Serialize, ToSchema)]
pub struct Accepted {
    pub accepted: Vec<String>,
}

/// Request bodies the decoders read themselves (to name what is wrong), described here.
mod bodies {
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, OneOfBuilder, Schema, Type};
    use utoipa::openapi::RefOr;
    use utoipa::{PartialSchema, ToSchema};
    use vigil_core::EventInput;
    use vigil_ingest::alertmanager::MAX_ALERTS_PER_REQUEST;
    use vigil_ingest::envelope::MAX_EVENTS_PER_REQUEST;

    fn text() -> ObjectBuilder {
        ObjectBuilder::new().schema_type(Type::String)
    }

    fn text_map() -> ObjectBuilder {
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .additional_properties(Some(text()))
    }

    /// `schema`, or `null` (read as absent).
    fn nullable(schema: ObjectBuilder) -> RefOr<Schema> {
        OneOfBuilder::new()
            .item(schema)
            .item(ObjectBuilder::new().schema_type(Type::Null))
            .into()
    }

    /// One event, or an array of them.
    pub enum EventsIn {}

    impl PartialSchema for EventsIn {
        fn schema() -> RefOr<Schema> {
            OneOfBuilder::new()
                .item(EventInput::schema())
                .item(
                    ArrayBuilder::new()
                        .items(EventInput::schema())
                        .min_items(Some(1))
                        .max_items(Some(MAX_EVENTS_PER_REQUEST)),
                )
                .into()
        }
    }

    impl ToSchema for EventsIn {}

    /// Alertmanager's webhook, version 4: each alert becomes an alarm event.
    pub enum AlertmanagerIn {}

    impl PartialSchema for AlertmanagerIn {
        fn schema() -> RefOr<Schema> {
            let alert = ObjectBuilder::new()
                .property("status", text().enum_values(Some(["firing", "resolved"])))
                .required("status")
                .property("labels", text_map())
                .required("labels")
                .property("annotations", nullable(text_map()))
                .property("fingerprint", nullable(text()))
                .property("startsAt", nullable(text()))
                .property("endsAt", nullable(text()))
                .property("generatorURL", nullable(text()));
            ObjectBuilder::new()
                .property("version", text().enum_values(Some(["4"])))
                .property(
                    "alerts",
                    ArrayBuilder::new()
                        .items(alert)
                        .max_items(Some(MAX_ALERTS_PER_REQUEST)),
                )
                .required("alerts")
                .into()
        }
    }

    impl ToSchema for AlertmanagerIn {}

    /// A message as SNS posts it (with `Content-Type: text/plain`): a notification, or a
    /// subscription's confirmation request or end.
    pub enum SnsIn {}

    impl PartialSchema for SnsIn {
        fn schema() -> RefOr<Schema> {
            let message = |types: &[&str], signed: &[&str], unsigned: &[&str]| {
                let mut message = ObjectBuilder::new()
                    .property("Type", text().enum_values(Some(types.to_vec())))
                    .required("Type")
                    .property("SignatureVersion", text().enum_values(Some(["1", "2"])))
                    .required("SignatureVersion");
                for field in signed.iter().chain(["Signature", "SigningCertURL"].iter()) {
                    message = message.property(*field, text()).required(*field);
                }
                for field in unsigned {
                    message = message.property(*field, text());
                }
                message
            };
            OneOfBuilder::new()
                .item(message(
                    &["Notification"],
                    &["Message", "MessageId", "Timestamp", "TopicArn"],
                    &["Subject", "UnsubscribeURL"],
                ))
                .item(message(
                    &["SubscriptionConfirmation", "UnsubscribeConfirmation"],
                    &[
                        "Message",
                        "MessageId",
                        "SubscribeURL",
                        "Timestamp",
                        "Token",
                        "TopicArn",
                    ],
                    &[],
                ))
                .into()
        }
    }

    impl ToSchema for SnsIn {}
}

use bodies::{AlertmanagerIn, EventsIn, SnsIn};

/// The time an event without one of its own is stamped with, as RFC 3339.
fn received_at() -> String {
    now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Alarm events in the EventBridge envelope (what an EventBridge API destination sends):
/// stored durably before the answer, then processed once each.
#[utoipa::path(post, path = "/api/v1/events", tag = "ingest", request_body = EventsIn,
    responses((status = 202, body = Accepted),
        (status = 503, description = "The store cannot take events now; send again", body = super::doc::ErrorBody)))]
pub async fn events(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    body: Result<Bytes, BytesRejection>,
) -> Answer {
    let endpoint = "events";
    let body = read_body(&state, endpoint, body)?;
    let events = envelope::decode(&body, &mut fresh_event_id, &received_at())
        .map_err(|e| reject(&state, endpoint, ApiError::bad_request(e.to_string())))?;
    accept(&state, &who, endpoint, events).await
}

/// Alertmanager's webhook: each alert becomes an alarm event.
#[utoipa::path(post, path = "/api/v1/ingest/alertmanager", tag = "ingest", request_body = AlertmanagerIn,
    responses((status = 202, body = Accepted),
        (status = 503, description = "The store cannot take events now; send again", body = super::doc::ErrorBody)))]
pub async fn alertmanager(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    body: Result<Bytes, BytesRejection>,
) -> Answer {
    let endpoint = "alertmanager";
    let body = read_body(&state, endpoint, body)?;
    let events = alertmanager::decode(&body, &mut fresh_event_id, &received_at())
        .map_err(|e| reject(&state, endpoint, ApiError::bad_request(e.to_string())))?;
    accept(&state, &who, endpoint, events).await
}

/// An SNS HTTPS subscription: CloudWatch alarm notifications, and subscription
/// (un)confirmations. Messages whose signature does not hold are refused (403).
#[utoipa::path(post, path = "/api/v1/ingest/sns", tag = "ingest", request_body = SnsIn,
    params(("x-amz-sns-message-type" = Option<String>, Header,
        description = "What SNS says the message is: Notification, SubscriptionConfirmation or UnsubscribeConfirmation; must agree with the body's `Type`")),
    responses((status = 202, description = "Stored, or a subscription being confirmed", body = IngestAnswer),
        (status = 200, description = "An unsubscription noted", body = IngestAnswer),
        (status = 503, description = "The signing certificate could not be fetched, or the store cannot take events now; send again", body = super::doc::ErrorBody)))]
pub async fn sns(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Answer {
    let endpoint = "sns";
    let body = read_body(&state, endpoint, body)?;
    let header_type = match headers.get("x-amz-sns-message-type") {
        None => None,
        Some(value) => Some(value.to_str().map_err(|_| {
            reject(
                &state,
                endpoint,
                ApiError::bad_request("header x-amz-sns-message-type is not readable text"),
            )
        })?),
    };
    let signed = sns::decode(&body)
        .map_err(|e| reject(&state, endpoint, ApiError::bad_request(e.to_string())))?;
    // Nothing of a message is recorded or acted on before its signature holds.
    let now = now();
    if let Err(refusal) = state
        .sns_signatures
        .verify(&signed.signature, &signed.string_to_sign, now)
        .await
    {
        let status = if refusal.is_transient() {
            StatusCode::SERVICE_UNAVAILABLE
        } else {
            StatusCode::FORBIDDEN
        };
        tracing::warn!(error = %refusal, "SNS message refused");
        return Err(reject(
            &state,
            endpoint,
            ApiError::new(status, refusal.to_string()),
        ));
    }
    let message = signed
        .read(header_type)
        .map_err(|e| reject(&state, endpoint, ApiError::bad_request(e.to_string())))?;
    match message {
        SnsMessage::Notification { event, .. } => {
            accept(&state, &who, endpoint, vec![*event]).await
        }
        SnsMessage::SubscriptionConfirmation {
            topic_arn,
            subscribe_url,
            message_id,
        } => {
            let subscription = SnsSubscription {
                topic_arn,
                message_id,
                subscribe_url,
            };
            confirm_subscription(&state, subscription).await
        }
        SnsMessage::UnsubscribeConfirmation { topic_arn } => {
            tracing::warn!(topic = %topic_arn, "SNS reports this endpoint was unsubscribed");
            Ok((
                StatusCode::OK,
                Json(IngestAnswer::Unsubscribed {
                    unsubscribed: topic_arn,
                }),
            ))
        }
    }
}

/// Records the confirmation request; confirms (GET SubscribeURL, in the background) only
/// for topics allowed by config and URLs on SNS's own hosts.
async fn confirm_subscription(state: &AppState, subscription: SnsSubscription) -> Answer {
    let sns_config = &state.config.ingest.sns;
    let refusal = if !sns_config
        .allowed_topic_arns
        .iter()
        .any(|t| t == &subscription.topic_arn)
    {
        Some(format!(
            "topic {} is not in ingest.sns.allowed_topic_arns; add it to confirm this subscription",
            subscription.topic_arn
        ))
    } else {
        crate::sns_confirm::check_url(
            crate::sns_confirm::SnsUrl::Subscribe,
            &subscription.subscribe_url,
            &sns_config.confirm_url_hosts,
        )
        .err()
    };
    let status = match &refusal {
        Some(_) => SnsStatus::Refused,
        None => SnsStatus::Confirming,
    };
    state
        .store
        .record_sns_subscription(subscription.clone(), status, now())
        .await?;
    if let Some(reason) = &refusal {
        // The refusal's reason is kept with the subscription, for whoever looks later.
        state
            .store
            .set_sns_subscription_status(&subscription.message_id, SnsStatus::Refused, reason)
            .await?;
    }
    match refusal {
        Some(reason) => {
            state.metrics.inc(
                "vigil_sns_subscriptions_total",
                labels(&[("outcome", "refused")]),
            );
            tracing::warn!(topic = %subscription.topic_arn, %reason, "SNS subscription refused");
            Err(ApiError::new(StatusCode::FORBIDDEN, reason))
        }
        None => {
            crate::sns_confirm::spawn(state.clone(), subscription.clone());
            Ok((
                StatusCode::ACCEPTED,
                Json(IngestAnswer::Confirming {
                    subscription: "confirming".into(),
                    topic: subscription.topic_arn,
                }),
            ))
        }
    }
}

fn read_body(
    state: &AppState,
    endpoint: &'static str,
    body: Result<Bytes, BytesRejection>,
) -> Result<Bytes, ApiError> {
    body.map_err(|r| {
        reject(
            state,
            endpoint,
            ApiError::from_body(r, state.config.server.body_limit_bytes),
        )
    })
}

fn reject(state: &AppState, endpoint: &'static str, error: ApiError) -> ApiError {
    let reason = match error.status {
        StatusCode::PAYLOAD_TOO_LARGE => "too_large",
        StatusCode::FORBIDDEN => "forbidden",
        StatusCode::SERVICE_UNAVAILABLE => "unavailable",
        _ => "invalid",
    };
    state.metrics.inc(
        "vigil_events_rejected_total",
        labels(&[("endpoint", endpoint), ("reason", reason)]),
    );
    tracing::debug!(endpoint, error = %error.message, "request refused");
    error
}

/// Stores a decoded batch. A scoped caller may only send events about its own subtree
/// (by the Appcode processing will give each): a batch with any other is refused whole.
async fn accept(
    state: &AppState,
    who: &Principal,
    endpoint: &'static str,
    events: Vec<Event>,
) -> Answer {
    if who.scope.is_some() {
        let outside = events.iter().position(|event| {
            let facts = state.ownership.facts_of(event);
            !who.sees(&state.ownership, facts.appcode.as_deref())
        });
        if let Some(index) = outside {
            return Err(reject(
                state,
                endpoint,
                ApiError::new(
                    StatusCode::FORBIDDEN,
                    format!("event {index} is not about an application in this token's subtree; a scoped token sends only its own alarms"),
                ),
            ));
        }
    }
    let ids: Vec<String> = events.iter().map(|e| e.id.clone()).collect();
    let fresh = state.ingest.submit(endpoint, events).await.map_err(|e| {
        state.metrics.inc(
            "vigil_events_rejected_total",
            labels(&[("endpoint", endpoint), ("reason", "unavailable")]),
        );
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
    })?;
    let new = fresh.iter().filter(|f| **f).count() as u64;
    let endpoint_label = labels(&[("endpoint", endpoint)]);
    state
        .metrics
        .add("vigil_events_accepted_total", endpoint_label.clone(), new);
    if new < fresh.len() as u64 {
        state.metrics.add(
            "vigil_events_duplicate_total",
            endpoint_label,
            fresh.len() as u64 - new,
        );
    }
    Ok((
        StatusCode::ACCEPTED,
        Json(IngestAnswer::Accepted(Accepted { accepted: ids })),
    ))
}

/// Was this event accepted, and has processing finished with it? A scoped token sees only
/// events of its subtree (the Appcode the event's incident gets).
#[utoipa::path(get, path = "/api/v1/events/{id}", tag = "ingest",
    params(("id" = String, Path, description = "The event's id")),
    responses((status = 200, body = vigil_store::EventRecord)))]
pub async fn show_event(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Json<vigil_store::EventRecord>, ApiError> {
    Ok(Json(crate::service::events::show(&state, &who, &id).await?))
}
