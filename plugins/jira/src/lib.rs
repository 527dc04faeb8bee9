//! Jira Cloud connector: projects and issues over the REST API v3.
//!
//! Connection settings: `base_url`, e.g. `https://acme.atlassian.net`, and
//! optionally `lead_account_id`, the project lead of the projects it
//! creates (Jira Cloud refuses a project without one); without it the lead
//! is the connection's own user (`GET /rest/api/3/myself`). The host adds
//! the `Authorization` header; this plugin never sees credentials.
//!
//! Jira's answers map to errors as follows: 400 is invalid input naming the
//! fields Jira rejected (or a conflict when the project key is taken), 401/403
//! unauthorized, 404 not found, 409 conflict, 429 rate limited after
//! `Retry-After` (1 s when absent), 5xx unavailable, and a body that is not
//! what Jira documents is internal.

use junction_sdk::http::{Request, Response};
use junction_sdk::{Connector, Context, Error, JsonSchema, Operation, Operations, Result};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

struct Jira;

impl Connector for Jira {
    fn operations() -> Operations {
        Operations::new()
            .with(
                Operation::new("create-project", "Creates a Jira project", create_project)
                    .idempotent(),
            )
            .with(Operation::new(
                "create-issue",
                "Creates an issue in a Jira project",
                create_issue,
            ))
            .with(Operation::new(
                "get-issue",
                "Reads an issue by key",
                get_issue,
            ))
    }

    fn check(ctx: &Context) -> Result<()> {
        myself(ctx).map(drop)
    }

    fn config_schema() -> String {
        junction_sdk::schema_of::<Config>()
    }
}

junction_sdk::export_connector!(Jira);

/// Settings of a Jira connection.
#[derive(JsonSchema)]
// Only its schema is used: settings are read one by one through the context.
#[allow(dead_code)]
struct Config {
    /// The site, e.g. `https://acme.atlassian.net`, without a trailing slash.
    base_url: String,
    /// Atlassian account id of the lead of created projects; default: the
    /// connection's own user.
    lead_account_id: Option<String>,
}

fn url(ctx: &Context, path: &str) -> Result<String> {
    let base = ctx.require_config("base_url")?;
    Ok(format!("{}{path}", base.trim_end_matches('/')))
}

fn post(ctx: &Context, path: &str, body: &Value) -> Result<Response> {
    Request::post(url(ctx, path)?)
        .header("accept", "application/json")
        .json(body)?
        .send()
}

/// Input of `create-project`.
#[derive(Debug, Deserialize, JsonSchema)]
struct CreateProject {
    /// Project key: 2–10 upper-case letters or digits, starting with a letter.
    key: String,
    /// Project name.
    name: String,
    /// `software`, `business` or `service_desk`.
    #[serde(default = "software")]
    project_type_key: String,
    /// Atlassian account id of the project lead; absent: the connection's
    /// `lead_account_id` setting, else its own user.
    #[serde(default)]
    lead_account_id: Option<String>,
}

fn software() -> String {
    "software".into()
}

/// What Jira answers for a created project or issue, and what these
/// operations return.
#[derive(Debug, PartialEq, Serialize, JsonSchema)]
struct Created {
    /// Jira's id, as a string.
    id: String,
    /// The project or issue key.
    key: String,
    /// REST URL of the created object.
    #[serde(rename = "self")]
    self_url: String,
}

impl Created {
    /// Jira returns a project's id as a number and an issue's as a string.
    fn parse(response: &Response) -> Result<Created> {
        #[derive(Deserialize)]
        struct Raw {
            id: Value,
            key: String,
            #[serde(rename = "self")]
            self_url: String,
        }
        let raw: Raw = response.json()?;
        let id = match raw.id {
            Value::String(id) => id,
            Value::Number(id) => id.to_string(),
            other => return Err(Error::Internal(format!("Jira returned an id of {other}"))),
        };
        Ok(Created {
            id,
            key: raw.key,
            self_url: raw.self_url,
        })
    }
}

fn project_body(input: &CreateProject, lead_account_id: &str) -> Value {
    json!({
        "key": input.key,
        "name": input.name,
        "projectTypeKey": input.project_type_key,
        "leadAccountId": lead_account_id,
    })
}

/// Jira's default project key rule: 2 to 10 characters, an upper-case
/// letter, then upper-case letters, digits or `_`.
fn valid_project_key(key: &str) -> bool {
    let mut chars = key.chars();
    (2..=10).contains(&key.len())
        && chars.next().is_some_and(|c| c.is_ascii_uppercase())
        && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

fn create_project(ctx: &Context, input: CreateProject) -> Result<Created> {
    if !valid_project_key(&input.key) {
        return Err(Error::InvalidInput(format!(
            "`key` must be 2 to 10 upper-case letters, digits or `_`, starting with a letter (e.g. ACME), not `{}`",
            input.key
        )));
    }
    let lead = match input
        .lead_account_id
        .clone()
        .or_else(|| ctx.config("lead_account_id"))
    {
        Some(lead) => lead,
        None => myself(ctx)?,
    };
    let response = post(ctx, "/rest/api/3/project", &project_body(&input, &lead))?;
    Created::parse(&jira_status(response)?)
}

/// The account id of the connection's own user.
fn myself(ctx: &Context) -> Result<String> {
    let response = Request::get(url(ctx, "/rest/api/3/myself")?)
        .header("accept", "application/json")
        .send()?;
    let me: Value = jira_status(response)?.json()?;
    me["accountId"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| Error::Internal("Jira's /myself answer has no accountId".into()))
}

/// Input of `create-issue`.
#[derive(Debug, Deserialize, JsonSchema)]
struct CreateIssue {
    /// Key of the project the issue goes in.
    project_key: String,
    /// One-line summary.
    summary: String,
    /// Plain-text description; paragraphs are separated by blank lines.
    #[serde(default)]
    description: Option<String>,
    /// Issue type name.
    #[serde(default = "task")]
    issue_type: String,
}

fn task() -> String {
    "Task".into()
}

fn issue_body(input: &CreateIssue) -> Value {
    let mut fields = json!({
        "project": { "key": input.project_key },
        "summary": input.summary,
        "issuetype": { "name": input.issue_type },
    });
    if let Some(description) = &input.description {
        fields["description"] = text_to_adf(description);
    }
    json!({ "fields": fields })
}

fn create_issue(ctx: &Context, input: CreateIssue) -> Result<Created> {
    let response = post(ctx, "/rest/api/3/issue", &issue_body(&input))?;
    Created::parse(&jira_status(response)?)
}

/// Input of `get-issue`.
#[derive(Debug, Deserialize, JsonSchema)]
struct GetIssue {
    /// Issue key, e.g. `ACME-1`.
    key: String,
}

/// Output of `get-issue`.
#[derive(Debug, PartialEq, Serialize, JsonSchema)]
struct Issue {
    id: String,
    key: String,
    summary: String,
    /// Status name, e.g. `To Do`.
    status: String,
    project_key: String,
    /// The description as plain text; `None` when the issue has none.
    description: Option<String>,
}

fn get_issue(ctx: &Context, input: GetIssue) -> Result<Issue> {
    let valid = !input.key.is_empty()
        && input
            .key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-');
    if !valid {
        return Err(Error::InvalidInput(format!(
            "`key` must be an issue key such as ACME-1, not `{}`",
            input.key
        )));
    }
    let response = Request::get(url(ctx, &format!("/rest/api/3/issue/{}", input.key))?)
        .header("accept", "application/json")
        .send()?;
    parse_issue(&jira_status(response)?)
}

fn parse_issue(response: &Response) -> Result<Issue> {
    #[derive(Deserialize)]
    struct Named {
        name: String,
    }
    #[derive(Deserialize)]
    struct Keyed {
        key: String,
    }
    #[derive(Deserialize)]
    struct Fields {
        summary: String,
        status: Named,
        project: Keyed,
        #[serde(default)]
        description: Option<Value>,
    }
    #[derive(Deserialize)]
    struct Raw {
        id: String,
        key: String,
        fields: Fields,
    }
    let raw: Raw = response.json()?;
    Ok(Issue {
        id: raw.id,
        key: raw.key,
        summary: raw.fields.summary,
        status: raw.fields.status.name,
        project_key: raw.fields.project.key,
        description: raw.fields.description.as_ref().map(adf_to_text),
    })
}

/// Plain text as an Atlassian Document Format document: one paragraph per
/// blank-line-separated block, single newlines as hard breaks.
fn text_to_adf(text: &str) -> Value {
    let paragraphs: Vec<Value> = text
        .split("\n\n")
        .filter(|p| !p.trim().is_empty())
        .map(|paragraph| {
            let mut content = Vec::new();
            for (i, line) in paragraph.split('\n').enumerate() {
                if i > 0 {
                    content.push(json!({ "type": "hardBreak" }));
                }
                if !line.is_empty() {
                    content.push(json!({ "type": "text", "text": line }));
                }
            }
            json!({ "type": "paragraph", "content": content })
        })
        .collect();
    json!({ "type": "doc", "version": 1, "content": paragraphs })
}

/// The text of an ADF document: block nodes separated by blank lines, hard
/// breaks as newlines, marks and attributes dropped.
fn adf_to_text(node: &Value) -> String {
    fn inline(node: &Value, out: &mut String) {
        match node["type"].as_str() {
            Some("text") => out.push_str(node["text"].as_str().unwrap_or_default()),
            Some("hardBreak") => out.push('\n'),
            _ => {
                for child in node["content"].as_array().into_iter().flatten() {
                    inline(child, out);
                }
            }
        }
    }
    fn blocks(node: &Value, out: &mut Vec<String>) {
        let children = node["content"].as_array();
        let has_blocks = children.into_iter().flatten().any(|c| {
            !matches!(
                c["type"].as_str(),
                Some("text" | "hardBreak" | "mention" | "emoji" | "inlineCard")
            )
        });
        if has_blocks {
            for child in children.into_iter().flatten() {
                blocks(child, out);
            }
        } else {
            let mut text = String::new();
            inline(node, &mut text);
            out.push(text);
        }
    }
    let mut out = Vec::new();
    blocks(node, &mut out);
    out.join("\n\n")
}

/// Passes a 2xx response through and maps the others to error cases: the
/// SDK's mapping, except a 400, whose body says which field Jira refused or
/// that the object already exists (a conflict, not bad input).
fn jira_status(response: Response) -> Result<Response> {
    if response.status == 400 {
        return Err(bad_request(&response));
    }
    response.ok()
}

/// Jira's error body: `{"errorMessages": [..], "errors": {field: message}}`.
#[derive(Debug, Default, Deserialize)]
struct ErrorBody {
    #[serde(default, rename = "errorMessages")]
    error_messages: Vec<String>,
    #[serde(default)]
    errors: std::collections::BTreeMap<String, String>,
}

fn bad_request(response: &Response) -> Error {
    let Ok(body) = serde_json::from_slice::<ErrorBody>(&response.body) else {
        return Error::Internal(format!(
            "Jira answered 400 with a body that is not its error format: {}",
            response.text()
        ));
    };
    if let Some(message) = body.errors.get("projectKey") {
        let lower = message.to_lowercase();
        if lower.contains("already exists") || lower.contains("uses this project key") {
            return Error::Conflict(format!("projectKey: {message}"));
        }
    }
    let mut parts: Vec<String> = body
        .errors
        .iter()
        .map(|(field, message)| format!("{field}: {message}"))
        .collect();
    parts.extend(body.error_messages);
    if parts.is_empty() {
        parts.push("no reason given".into());
    }
    Error::InvalidInput(format!("Jira rejected the request: {}", parts.join("; ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_keys_follow_jiras_default_rule() {
        for key in ["AC", "ACME", "GLOBEXERPR", "A1_B"] {
            assert!(valid_project_key(key), "{key}");
        }
        for key in ["A", "acme", "1ACME", "GLOBEXERPRX", "AC ME", ""] {
            assert!(!valid_project_key(key), "{key}");
        }
    }

    fn response(status: u16, headers: &[(&str, &str)], body: Value) -> Response {
        Response {
            status,
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body: body.to_string().into_bytes(),
        }
    }

    #[test]
    fn project_body_uses_jira_field_names_and_defaults() {
        let input: CreateProject =
            serde_json::from_value(json!({"key": "ACME", "name": "Acme rollout"})).unwrap();
        assert_eq!(
            project_body(&input, "5b10"),
            json!({
                "key": "ACME", "name": "Acme rollout", "projectTypeKey": "software",
                "leadAccountId": "5b10"
            })
        );
        let input: CreateProject = serde_json::from_value(json!({
            "key": "ACME", "name": "A", "project_type_key": "business"
        }))
        .unwrap();
        assert_eq!(project_body(&input, "5b10")["projectTypeKey"], "business");
    }

    #[test]
    fn created_project_id_becomes_a_string() {
        let created = Created::parse(&response(
            201,
            &[],
            json!({"self": "https://x/rest/api/3/project/10000", "id": 10000, "key": "ACME"}),
        ))
        .unwrap();
        assert_eq!(
            serde_json::to_value(&created).unwrap(),
            json!({"id": "10000", "key": "ACME", "self": "https://x/rest/api/3/project/10000"})
        );
    }

    #[test]
    fn issue_body_carries_an_adf_description() {
        let input: CreateIssue = serde_json::from_value(json!({
            "project_key": "ACME", "summary": "Kickoff", "description": "Agenda"
        }))
        .unwrap();
        assert_eq!(
            issue_body(&input),
            json!({"fields": {
                "project": {"key": "ACME"},
                "summary": "Kickoff",
                "issuetype": {"name": "Task"},
                "description": {"type": "doc", "version": 1, "content": [
                    {"type": "paragraph", "content": [{"type": "text", "text": "Agenda"}]}
                ]}
            }})
        );
        let input: CreateIssue = serde_json::from_value(
            json!({"project_key": "ACME", "summary": "S", "issue_type": "Bug"}),
        )
        .unwrap();
        let body = issue_body(&input);
        assert_eq!(body["fields"]["issuetype"]["name"], "Bug");
        assert!(body["fields"].get("description").is_none());
    }

    #[test]
    fn adf_round_trips_plain_text() {
        for text in ["Agenda", "Line one\nLine two", "First.\n\nSecond."] {
            assert_eq!(adf_to_text(&text_to_adf(text)), text);
        }
    }

    #[test]
    fn adf_flattens_nested_blocks_and_marks() {
        let doc = json!({"type": "doc", "version": 1, "content": [
            {"type": "heading", "attrs": {"level": 1}, "content": [{"type": "text", "text": "Title"}]},
            {"type": "bulletList", "content": [
                {"type": "listItem", "content": [{"type": "paragraph", "content": [
                    {"type": "text", "text": "bold", "marks": [{"type": "strong"}]},
                    {"type": "text", "text": " item"}
                ]}]}
            ]}
        ]});
        assert_eq!(adf_to_text(&doc), "Title\n\nbold item");
    }

    #[test]
    fn issue_is_parsed_from_jira_shape() {
        let issue = parse_issue(&response(
            200,
            &[],
            json!({
                "id": "10001", "key": "ACME-1", "self": "https://x/rest/api/3/issue/10001",
                "fields": {
                    "summary": "Kickoff",
                    "status": {"name": "To Do"},
                    "project": {"key": "ACME"},
                    "issuetype": {"name": "Task"},
                    "description": text_to_adf("Agenda")
                }
            }),
        ))
        .unwrap();
        assert_eq!(
            issue,
            Issue {
                id: "10001".into(),
                key: "ACME-1".into(),
                summary: "Kickoff".into(),
                status: "To Do".into(),
                project_key: "ACME".into(),
                description: Some("Agenda".into()),
            }
        );
    }

    #[test]
    fn taken_project_key_is_a_conflict() {
        let r = response(
            400,
            &[],
            json!({"errorMessages": [], "errors": {"projectKey": "A project with that project key already exists."}}),
        );
        assert!(matches!(jira_status(r), Err(Error::Conflict(m)) if m.contains("already exists")));
    }

    #[test]
    fn bad_request_names_the_fields() {
        let r = response(
            400,
            &[],
            json!({"errorMessages": ["Check the fields"], "errors": {"summary": "You must specify a summary of the issue."}}),
        );
        let Err(Error::InvalidInput(message)) = jira_status(r) else {
            panic!("expected invalid input");
        };
        assert_eq!(
            message,
            "Jira rejected the request: summary: You must specify a summary of the issue.; Check the fields"
        );
    }

    #[test]
    fn statuses_map_to_error_cases() {
        let status = |s, headers: &[(&str, &str)]| jira_status(response(s, headers, json!({})));
        assert!(matches!(status(401, &[]), Err(Error::Unauthorized(_))));
        assert!(matches!(status(403, &[]), Err(Error::Unauthorized(_))));
        assert!(matches!(status(404, &[]), Err(Error::NotFound(_))));
        assert_eq!(
            status(429, &[("Retry-After", "7")]).map(drop),
            Err(Error::RateLimited {
                retry_after_ms: 7000
            })
        );
        assert_eq!(
            status(429, &[]).map(drop),
            Err(Error::RateLimited {
                retry_after_ms: 1000
            })
        );
        assert!(matches!(status(502, &[]), Err(Error::Unavailable(m)) if m.contains("502")));
        assert!(status(200, &[]).is_ok());
    }

    #[test]
    fn unparseable_bodies_are_internal() {
        let r = Response {
            status: 400,
            headers: vec![],
            body: b"<html>".to_vec(),
        };
        assert!(matches!(jira_status(r), Err(Error::Internal(_))));
        let r = response(201, &[], json!({"unexpected": true}));
        assert!(matches!(Created::parse(&r), Err(Error::Internal(_))));
    }

    #[test]
    fn operations_are_described() {
        let ops = Jira::operations();
        let names: Vec<_> = ops.names().collect();
        assert_eq!(names, ["create-project", "create-issue", "get-issue"]);
    }

    #[test]
    fn get_issue_refuses_keys_that_would_change_the_path() {
        let err = get_issue(
            &Context::default(),
            GetIssue {
                key: "../myself".into(),
            },
        );
        assert!(matches!(err, Err(Error::InvalidInput(m)) if m.contains("ACME-1")));
    }
}
