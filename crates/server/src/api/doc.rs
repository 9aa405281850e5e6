//! The OpenAPI description of the API, generated from the handlers' `#[utoipa::path]`
//! annotations and the types they take and return: the router is built from the same list
//! (`utoipa_axum::routes!`), so a route cannot exist without being described. It is served
//! at `/api/v1/openapi.json` and committed as `api/openapi.json`, which a test keeps equal.

use serde::Serialize;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{RefOr, Response};
use utoipa::{Modify, OpenApi, ToSchema};

/// Every error answer: a message naming what was wrong and what to do.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: String,
}

/// The security scheme of the admin and scoped tokens (`security(("token" = []))`).
const TOKEN: &str = "token";
/// The security scheme of a host's agent token, on `/api/v1/agent/…` only.
const HOST_TOKEN: &str = "host_token";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "vigil",
        description = "vigil's HTTP API: alarm events in; incidents, hosts, alarms and the \
application tree out. Every route but /healthz needs a token (`Authorization: Bearer vgl_…`, \
or HTTP Basic with the token as password). A token scoped to an Appcode sees only that \
application's subtree: anything outside answers 404. Errors are `{\"error\": \"…\"}`.",
        license(name = "Apache-2.0")
    ),
    security(("token" = [])),
    components(schemas(ErrorBody)),
    tags(
        (name = "ingest", description = "Alarm events in: CloudWatch/EventBridge, SNS, Alertmanager"),
        (name = "incidents", description = "Grouped alarms, their timelines and deliveries"),
        (name = "hosts", description = "Enrolled and declared hosts"),
        (name = "agent", description = "What a host's agent calls, with its host token"),
        (name = "alarms", description = "vigil's own alarms (CloudWatch PutMetricAlarm) and series"),
        (name = "apps", description = "The application tree, bindings, tokens and reports"),
        (name = "server", description = "Health, metrics, this description")
    )
)]
pub struct ApiDoc;

/// Completes the description once every route is in it: the security schemes, and the
/// answers routes give without their handlers (401 without a valid token, 403 for the wrong
/// kind of token, 400 for a request that does not read, 413 past the body limit, 404 for
/// a name that is not there or not the token's, 500 for vigil's own fault).
pub fn complete(mut openapi: utoipa::openapi::OpenApi) -> utoipa::openapi::OpenApi {
    Conventions.modify(&mut openapi);
    openapi
}

struct Conventions;

fn error(description: &str) -> RefOr<Response> {
    utoipa::openapi::ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            utoipa::openapi::ContentBuilder::new()
                .schema(Some(utoipa::openapi::Ref::from_schema_name("ErrorBody")))
                .build(),
        )
        .into()
}

impl Modify for Conventions {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let bearer = |description: &str| {
            let mut http = Http::new(HttpAuthScheme::Bearer);
            http.description = Some(description.to_string());
            SecurityScheme::Http(http)
        };
        components.add_security_scheme(
            TOKEN,
            bearer("The admin token (DATA_DIR/admin.token) or a token made with `vigil token add`, optionally scoped to an Appcode's subtree."),
        );
        components.add_security_scheme(
            HOST_TOKEN,
            bearer(
                "A host's agent token, from `vigil host add`; valid on /api/v1/agent/ routes only.",
            ),
        );
        for (path, item) in openapi.paths.paths.iter_mut() {
            let public = path == "/healthz";
            for operation in [
                &mut item.get,
                &mut item.post,
                &mut item.patch,
                &mut item.delete,
                &mut item.put,
            ]
            .into_iter()
            .flatten()
            {
                let responses = &mut operation.responses.responses;
                let mut add = |status: &str, description: &str| {
                    responses
                        .entry(status.to_string())
                        .or_insert_with(|| error(description));
                };
                if !public {
                    add("401", "Missing, invalid or revoked token");
                    add("403", "The token's kind may not call this route (a host token off /api/v1/agent/, an admin token on it), or its scope does not allow the change");
                }
                if operation.request_body.is_some() {
                    add(
                        "400",
                        "The body is not what this route reads; the message names the field",
                    );
                    add("413", "The body is larger than server.body_limit_bytes");
                }
                if operation.parameters.as_ref().is_some_and(|p| !p.is_empty()) {
                    add("400", "A parameter does not read; the message names it");
                }
                if path.contains('{') {
                    add(
                        "404",
                        "Nothing of that name, or outside the token's subtree",
                    );
                }
                add("500", "vigil's own fault; the server log has the details");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    /// `api/openapi.json` is the description as generated: a change to a handler's
    /// annotations or types shows in review as a change to this file.
    #[test]
    fn the_committed_spec_is_the_generated_one() {
        let generated = super::super::openapi_spec()
            .to_pretty_json()
            .expect("the description serialises")
            + "\n";
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../api/openapi.json");
        if std::env::var_os("VIGIL_WRITE_SPEC").is_some() {
            std::fs::write(&path, &generated).expect("write api/openapi.json");
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == generated,
            "api/openapi.json is not the description the handlers generate; \
             run `VIGIL_WRITE_SPEC=1 cargo test -p vigil-server the_committed_spec` and commit it"
        );
    }
}
