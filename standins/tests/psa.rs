//! The PSA stand-in, driven over HTTP the way a connector would.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use junction_standins::psa::{API_PATH, NewPerson};
use junction_standins::{Misbehaviour, PsaStandin};
use reqwest::{Client, Method, Response, StatusCode};
use serde_json::{Value, json};

const TOKEN: &str = "psa-oauth-token";

struct Fixture {
    psa: PsaStandin,
    client: Client,
}

impl Fixture {
    async fn new() -> Fixture {
        Fixture {
            psa: PsaStandin::start(TOKEN).await.unwrap(),
            client: Client::new(),
        }
    }

    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, format!("{}{API_PATH}{path}", self.psa.base_url()))
            .bearer_auth(TOKEN)
    }

    async fn send(&self, method: Method, path: &str, body: Value) -> Response {
        self.request(method, path).json(&body).send().await.unwrap()
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        let response = self.request(Method::GET, path).send().await.unwrap();
        (response.status(), response.json().await.unwrap())
    }

    /// Sends and expects `status`; returns the body.
    async fn ok(&self, method: Method, path: &str, body: Value, status: StatusCode) -> Value {
        let response = self.send(method, path, body).await;
        let got = response.status();
        let body: Value = response.json().await.unwrap();
        assert_eq!(got, status, "{body}");
        body
    }

    async fn create_project(&self, body: Value) -> String {
        let project = self
            .ok(Method::POST, "/projects", body, StatusCode::CREATED)
            .await;
        project["id"].as_str().unwrap().to_owned()
    }

    async fn active_project(&self) -> String {
        let id = self.create_project(json!({"name": "Acme rollout"})).await;
        self.ok(
            Method::PATCH,
            &format!("/projects/{id}"),
            json!({"status": "active"}),
            StatusCode::OK,
        )
        .await;
        id
    }

    fn person(&self, name: &str, skills: &[&str]) -> String {
        self.psa.add_person(NewPerson {
            name: name.into(),
            email: format!("{}@firm.example", name.to_lowercase()),
            skills: skills.iter().map(|s| (*s).to_owned()).collect(),
            available_hours: 120.0,
            cost_rate: 95.0,
            currency: "USD".into(),
        })
    }
}

/// Asserts the response is one error of `status` and `kind`, and returns it.
async fn error_of(response: Response, status: StatusCode, kind: &str) -> Value {
    assert_eq!(response.status(), status);
    let body: Value = response.json().await.unwrap();
    let errors = body["errors"].as_array().expect("an errors array");
    assert_eq!(errors.len(), 1, "{body}");
    assert_eq!(errors[0]["type"], kind, "{body}");
    assert!(errors[0]["message"].as_str().is_some_and(|m| !m.is_empty()));
    errors[0].clone()
}

#[tokio::test]
async fn creates_reads_and_pages_projects() {
    let f = Fixture::new().await;
    let created = f
        .ok(
            Method::POST,
            "/projects",
            json!({
                "name": "Acme rollout",
                "external_id": "hubspot-deal-9876543201",
                "customer": "Acme Corp",
                "start_date": "2024-05-01",
                "budget": {"amount": 120000, "currency": "USD"},
            }),
            StatusCode::CREATED,
        )
        .await;
    assert_eq!(created["id"], "1001");
    assert_eq!(created["status"], "pending");
    assert_eq!(
        created["budget"],
        json!({"amount": 120000.0, "currency": "USD"})
    );
    for name in ["Beta", "Gamma"] {
        f.create_project(json!({"name": name})).await;
    }

    let (status, one) = f.get("/projects/1001").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(one, created);
    let (status, by_external) = f.get("/projects/external_id/hubspot-deal-9876543201").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(by_external["id"], "1001");

    let (_, first) = f.get("/projects?per_page=2").await;
    let names: Vec<&str> = first["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Acme rollout", "Beta"]);
    assert_eq!(
        first["meta"],
        json!({"count": 3, "page_count": 2, "page_number": 1, "page_size": 2})
    );
    let (_, second) = f.get("/projects?per_page=2&page=2").await;
    assert_eq!(second["results"][0]["name"], "Gamma");
    assert_eq!(second["results"].as_array().unwrap().len(), 1);
    let (_, beyond) = f.get("/projects?per_page=2&page=3").await;
    assert_eq!(beyond["results"], json!([]));
    let (_, filtered) = f.get("/projects?external_id=hubspot-deal-9876543201").await;
    assert_eq!(filtered["meta"]["count"], 1);

    let (status, missing) = f.get("/projects/999").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(missing["errors"][0]["type"], "not_found");
    assert_eq!(f.psa.projects().len(), 3);
}

#[tokio::test]
async fn upserts_projects_by_external_id() {
    let f = Fixture::new().await;
    let path = "/projects/external_id/sf-006A000001";
    let created = f
        .ok(
            Method::PUT,
            path,
            json!({"name": "Globex migration"}),
            StatusCode::CREATED,
        )
        .await;
    assert_eq!(created["external_id"], "sf-006A000001");
    let updated = f
        .ok(
            Method::PUT,
            path,
            json!({"name": "Globex migration, phase 1", "status": "active"}),
            StatusCode::OK,
        )
        .await;
    assert_eq!(updated["id"], created["id"]);
    assert_eq!(updated["name"], "Globex migration, phase 1");
    assert_eq!(updated["status"], "active");
    assert_eq!(f.psa.projects().len(), 1);

    // A create with an external id that is taken is a conflict naming the field.
    let response = f
        .send(
            Method::POST,
            "/projects",
            json!({"name": "Again", "external_id": "sf-006A000001"}),
        )
        .await;
    let error = error_of(response, StatusCode::CONFLICT, "conflict").await;
    assert_eq!(error["field"], "external_id");

    // The body may not name another external id than the path.
    let response = f
        .send(
            Method::PUT,
            path,
            json!({"name": "x", "external_id": "sf-other"}),
        )
        .await;
    let error = error_of(response, StatusCode::UNPROCESSABLE_ENTITY, "validation").await;
    assert_eq!(error["field"], "external_id");
}

#[tokio::test]
async fn project_status_moves_pending_active_closed_and_refuses_others() {
    let f = Fixture::new().await;
    let id = f.create_project(json!({"name": "Initech"})).await;
    let path = format!("/projects/{id}");

    let response = f
        .send(Method::PATCH, &path, json!({"status": "closed"}))
        .await;
    let error = error_of(response, StatusCode::UNPROCESSABLE_ENTITY, "validation").await;
    assert_eq!(error["field"], "status");
    let message = error["message"].as_str().unwrap();
    assert!(
        message.contains("pending to closed") && message.contains("active, cancelled"),
        "{message}"
    );

    for status in ["active", "active", "closed"] {
        let project = f
            .ok(
                Method::PATCH,
                &path,
                json!({"status": status}),
                StatusCode::OK,
            )
            .await;
        assert_eq!(project["status"], status);
    }
    let response = f
        .send(Method::PATCH, &path, json!({"status": "active"}))
        .await;
    let error = error_of(response, StatusCode::UNPROCESSABLE_ENTITY, "validation").await;
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("closed is final")
    );

    let response = f
        .send(Method::PATCH, &path, json!({"status": "archived"}))
        .await;
    let error = error_of(response, StatusCode::UNPROCESSABLE_ENTITY, "validation").await;
    assert!(error["message"].as_str().unwrap().contains("not a status"));

    // A project is created pending, whatever the body says.
    let response = f
        .send(
            Method::POST,
            "/projects",
            json!({"name": "x", "status": "active"}),
        )
        .await;
    let error = error_of(response, StatusCode::UNPROCESSABLE_ENTITY, "validation").await;
    assert_eq!(error["field"], "status");
    assert_eq!(f.psa.projects()[0]["status"], "closed");
}

#[tokio::test]
async fn bad_input_is_refused_with_the_field() {
    let f = Fixture::new().await;
    let cases = [
        (json!({}), "name"),
        (json!({"name": "  "}), "name"),
        (
            json!({"name": "x", "start_date": "2024-02-30"}),
            "start_date",
        ),
        (
            json!({"name": "x", "budget": {"amount": 5, "currency": "usd"}}),
            "budget.currency",
        ),
        (
            json!({"name": "x", "budget": {"amount": -5, "currency": "USD"}}),
            "budget.amount",
        ),
        (json!({"name": "x", "budget": 5}), "budget"),
        (json!({"name": "x", "owner": "me"}), "owner"),
    ];
    for (body, field) in cases {
        let response = f.send(Method::POST, "/projects", body.clone()).await;
        let error = error_of(response, StatusCode::UNPROCESSABLE_ENTITY, "validation").await;
        assert_eq!(error["field"], field, "{body}");
    }

    let response = f
        .request(Method::POST, "/projects")
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    let error = error_of(response, StatusCode::BAD_REQUEST, "invalid_request").await;
    assert!(error.get("field").is_none());

    for (query, field) in [
        ("per_page=0", "per_page"),
        ("page=x", "page"),
        ("per_page=500", "per_page"),
    ] {
        let response = f
            .request(Method::GET, &format!("/projects?{query}"))
            .send()
            .await
            .unwrap();
        let error = error_of(response, StatusCode::UNPROCESSABLE_ENTITY, "validation").await;
        assert_eq!(error["field"], field);
    }
    assert!(f.psa.projects().is_empty());
}

#[tokio::test]
async fn staffs_roles_with_people() {
    let f = Fixture::new().await;
    let ada = f.person("Ada", &["rust", "architecture"]);
    let grace = f.person("Grace", &["cobol"]);
    let (_, people) = f.get("/people?skill=Rust").await;
    assert_eq!(people["meta"]["count"], 1);
    assert_eq!(people["results"][0]["id"], ada.as_str());
    assert_eq!(
        people["results"][0]["cost_rate"],
        json!({"amount": 95.0, "currency": "USD"})
    );
    let (status, one) = f.get(&format!("/people/{grace}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(one["skills"], json!(["cobol"]));

    let project = f.create_project(json!({"name": "Acme rollout"})).await;
    let roles = format!("/projects/{project}/roles");
    let role = f
        .ok(
            Method::POST,
            &roles,
            json!({
                "name": "Lead engineer",
                "skills": ["rust"],
                "hours": 80,
                "start_date": "2024-05-01",
                "end_date": "2024-06-30",
                "bill_rate": {"amount": 180, "currency": "USD"},
            }),
            StatusCode::CREATED,
        )
        .await;
    let role_id = role["id"].as_str().unwrap();
    assert_eq!(role["project_id"], project.as_str());
    let response = f
        .send(
            Method::POST,
            &roles,
            json!({"name": "x", "hours": 10, "start_date": "2024-06-01", "end_date": "2024-05-01"}),
        )
        .await;
    let error = error_of(response, StatusCode::UNPROCESSABLE_ENTITY, "validation").await;
    assert_eq!(error["field"], "end_date");
    let response = f.send(Method::POST, &roles, json!({"name": "x"})).await;
    let error = error_of(response, StatusCode::UNPROCESSABLE_ENTITY, "validation").await;
    assert_eq!(error["field"], "hours");

    let assignments = format!("/projects/{project}/assignments");
    let assignment = f
        .ok(
            Method::POST,
            &assignments,
            json!({"role_id": role_id, "person_id": ada}),
            StatusCode::CREATED,
        )
        .await;
    assert_eq!(assignment["hours"], 80.0, "defaults to the role's hours");
    let response = f
        .send(
            Method::POST,
            &assignments,
            json!({"role_id": role_id, "person_id": ada}),
        )
        .await;
    let error = error_of(response, StatusCode::CONFLICT, "conflict").await;
    assert_eq!(error["field"], "person_id");
    for (body, field) in [
        (json!({"role_id": "2999", "person_id": ada}), "role_id"),
        (
            json!({"role_id": role_id, "person_id": "3999"}),
            "person_id",
        ),
        (
            json!({"role_id": role_id, "person_id": grace, "hours": 0}),
            "hours",
        ),
    ] {
        let response = f.send(Method::POST, &assignments, body).await;
        let error = error_of(response, StatusCode::UNPROCESSABLE_ENTITY, "validation").await;
        assert_eq!(error["field"], field);
    }
    let (_, listed) = f.get(&assignments).await;
    assert_eq!(listed["results"][0], assignment);

    // Undo: the assignment goes, and a second delete finds nothing.
    let path = format!("/assignments/{}", assignment["id"].as_str().unwrap());
    let response = f.request(Method::DELETE, &path).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let response = f.request(Method::DELETE, &path).send().await.unwrap();
    error_of(response, StatusCode::NOT_FOUND, "not_found").await;
    assert!(f.psa.assignments().is_empty());

    // A closed project takes no more roles.
    for status in ["active", "closed"] {
        f.ok(
            Method::PATCH,
            &format!("/projects/{project}"),
            json!({"status": status}),
            StatusCode::OK,
        )
        .await;
    }
    let response = f
        .send(Method::POST, &roles, json!({"name": "Late", "hours": 5}))
        .await;
    let error = error_of(response, StatusCode::UNPROCESSABLE_ENTITY, "validation").await;
    assert_eq!(error["field"], "project_id");
    assert_eq!(f.psa.roles().len(), 1);
    assert_eq!(f.psa.people().len(), 2);
}

#[tokio::test]
async fn time_entries_are_approved_and_read_through_a_cursor() {
    let f = Fixture::new().await;
    let ada = f.person("Ada", &["rust"]);
    let pending = f.create_project(json!({"name": "Not started"})).await;
    let response = f
        .send(
            Method::POST,
            "/time_entries",
            json!({"project_id": pending, "person_id": ada, "date": "2024-05-02", "hours": 8}),
        )
        .await;
    let error = error_of(response, StatusCode::UNPROCESSABLE_ENTITY, "validation").await;
    assert_eq!(error["field"], "project_id");
    assert!(error["message"].as_str().unwrap().contains("pending"));

    let project = f.active_project().await;
    let mut ids = Vec::new();
    for (date, hours) in [("2024-05-02", 8), ("2024-05-03", 6), ("2024-05-06", 7)] {
        let entry = f
            .ok(
                Method::POST,
                "/time_entries",
                json!({"project_id": project, "person_id": ada, "date": date, "hours": hours, "note": "build"}),
                StatusCode::CREATED,
            )
            .await;
        assert_eq!(entry["status"], "draft");
        assert_eq!(entry["billable"], true);
        ids.push(entry["id"].as_str().unwrap().to_owned());
    }
    for (body, field) in [
        (
            json!({"project_id": project, "person_id": ada, "date": "2024-05-02", "hours": 25}),
            "hours",
        ),
        (
            json!({"project_id": project, "person_id": ada, "date": "May 2", "hours": 1}),
            "date",
        ),
        (
            json!({"project_id": project, "person_id": "3999", "date": "2024-05-02", "hours": 1}),
            "person_id",
        ),
        (
            json!({"project_id": project, "date": "2024-05-02", "hours": 1}),
            "person_id",
        ),
    ] {
        let response = f.send(Method::POST, "/time_entries", body).await;
        let error = error_of(response, StatusCode::UNPROCESSABLE_ENTITY, "validation").await;
        assert_eq!(error["field"], field);
    }

    // draft -> approved skips a step.
    let response = f
        .send(
            Method::PATCH,
            &format!("/time_entries/{}", ids[0]),
            json!({"status": "approved"}),
        )
        .await;
    let error = error_of(response, StatusCode::UNPROCESSABLE_ENTITY, "validation").await;
    assert_eq!(error["field"], "status");

    let (status, nothing) = f.get("/time_entries/approved").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        nothing,
        json!({"results": [], "next_cursor": "0", "has_more": false})
    );

    // Approve the second entry, then the first: the cursor follows approval order.
    for id in [&ids[1], &ids[0]] {
        for status in ["submitted", "approved"] {
            f.ok(
                Method::PATCH,
                &format!("/time_entries/{id}"),
                json!({"status": status}),
                StatusCode::OK,
            )
            .await;
        }
    }
    let (_, page) = f.get("/time_entries/approved?limit=1").await;
    assert_eq!(page["results"][0]["id"], ids[1].as_str());
    assert!(page["results"][0]["approved_at"].is_string());
    assert_eq!(page["has_more"], true);
    let cursor = page["next_cursor"].as_str().unwrap().to_owned();
    let (_, page) = f
        .get(&format!("/time_entries/approved?since={cursor}"))
        .await;
    assert_eq!(page["results"].as_array().unwrap().len(), 1);
    assert_eq!(page["results"][0]["id"], ids[0].as_str());
    assert_eq!(page["has_more"], false);
    let cursor = page["next_cursor"].as_str().unwrap().to_owned();
    let (_, page) = f
        .get(&format!("/time_entries/approved?since={cursor}"))
        .await;
    assert_eq!(page["results"], json!([]));
    assert_eq!(
        page["next_cursor"],
        cursor.as_str(),
        "an empty read keeps the cursor"
    );

    // Approved time is final: no edits, no moves back.
    let response = f
        .send(
            Method::PATCH,
            &format!("/time_entries/{}", ids[0]),
            json!({"hours": 1}),
        )
        .await;
    let error = error_of(response, StatusCode::UNPROCESSABLE_ENTITY, "validation").await;
    assert_eq!(error["field"], "status");

    // A rejected entry is fixed and resubmitted, then approved: it comes after the cursor.
    let third = format!("/time_entries/{}", ids[2]);
    for body in [
        json!({"status": "submitted"}),
        json!({"status": "rejected"}),
        json!({"hours": 4, "note": "fixed"}),
        json!({"status": "submitted"}),
        json!({"status": "approved"}),
    ] {
        f.ok(Method::PATCH, &third, body, StatusCode::OK).await;
    }
    let (_, page) = f
        .get(&format!("/time_entries/approved?since={cursor}"))
        .await;
    assert_eq!(page["results"][0]["id"], ids[2].as_str());
    assert_eq!(page["results"][0]["hours"], 4.0);

    let (_, approved) = f.get("/time_entries?status=approved&per_page=10").await;
    assert_eq!(approved["meta"]["count"], 3);
    for query in ["since=x", "since=99", "limit=0"] {
        let response = f
            .request(Method::GET, &format!("/time_entries/approved?{query}"))
            .send()
            .await
            .unwrap();
        error_of(response, StatusCode::UNPROCESSABLE_ENTITY, "validation").await;
    }
    assert_eq!(f.psa.time_entries().len(), 3);
}

#[tokio::test]
async fn idempotency_keys_make_creates_safe_to_retry() {
    let f = Fixture::new().await;
    let create = |key: &'static str, body: Value| {
        f.request(Method::POST, "/projects")
            .header("Idempotency-Key", key)
            .json(&body)
            .send()
    };
    let first = create("k-1", json!({"name": "Acme"})).await.unwrap();
    assert_eq!(first.status(), StatusCode::CREATED);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first: Value = first.json().await.unwrap();
    let again = create("k-1", json!({"name": "Acme"})).await.unwrap();
    assert_eq!(again.status(), StatusCode::CREATED);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(again.json::<Value>().await.unwrap(), first);
    assert_eq!(f.psa.projects().len(), 1);

    let reused = create("k-1", json!({"name": "Other"})).await.unwrap();
    let error = error_of(reused, StatusCode::UNPROCESSABLE_ENTITY, "idempotency").await;
    assert_eq!(error["field"], "Idempotency-Key");

    // A failure is not kept: the key works for the corrected request.
    let failed = create("k-2", json!({})).await.unwrap();
    assert_eq!(failed.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let fixed = create("k-2", json!({"name": "Fixed"})).await.unwrap();
    assert_eq!(fixed.status(), StatusCode::CREATED);
    assert_eq!(f.psa.projects().len(), 2);
}

#[tokio::test]
async fn refuses_bad_tokens_and_misbehaves_on_request() {
    let f = Fixture::new().await;
    let url = format!("{}{API_PATH}/projects", f.psa.base_url());
    let response = f.client.get(&url).send().await.unwrap();
    let error = error_of(response, StatusCode::UNAUTHORIZED, "oauth").await;
    assert_eq!(error["message"], "Invalid OAuth 2 Request");
    let response = f
        .client
        .get(&url)
        .bearer_auth("wrong")
        .send()
        .await
        .unwrap();
    error_of(response, StatusCode::UNAUTHORIZED, "oauth").await;

    f.psa.misbehave(Misbehaviour::ServerError { times: 1 });
    f.psa.misbehave(Misbehaviour::RateLimited {
        times: 1,
        retry_after_secs: 7,
    });
    f.psa.misbehave(Misbehaviour::Unauthorized { times: 1 });
    f.psa.misbehave(Misbehaviour::Latency {
        times: 1,
        millis: 20,
    });
    let get = || f.request(Method::GET, "/projects").send();
    error_of(
        get().await.unwrap(),
        StatusCode::INTERNAL_SERVER_ERROR,
        "system",
    )
    .await;
    let limited = get().await.unwrap();
    assert_eq!(limited.headers()["retry-after"], "7");
    assert_eq!(limited.headers()["x-ratelimit-limit"], "100");
    assert_eq!(limited.headers()["x-ratelimit-remaining"], "0");
    let reset: u64 = limited.headers()["x-ratelimit-reset"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(reset > 1_700_000_000);
    error_of(limited, StatusCode::TOO_MANY_REQUESTS, "rate_limit").await;
    error_of(get().await.unwrap(), StatusCode::UNAUTHORIZED, "oauth").await;
    assert_eq!(
        get().await.unwrap().status(),
        StatusCode::OK,
        "latency, then served"
    );
    assert_eq!(get().await.unwrap().status(), StatusCode::OK);

    let requests = f.psa.requests();
    assert_eq!(requests.len(), 7);
    assert_eq!(requests[2].path, format!("{API_PATH}/projects"));
    assert_eq!(
        requests[2].header("authorization"),
        Some("Bearer psa-oauth-token")
    );

    let response = f.request(Method::GET, "/nowhere").send().await.unwrap();
    error_of(response, StatusCode::NOT_FOUND, "not_found").await;
    f.psa.shutdown().await;
    assert!(f.client.get(&url).send().await.is_err());
}
