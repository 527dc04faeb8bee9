//! Maps a canonical v1 [`Project`] to what the Jira connector creates for
//! it: the Jira project (`create-project` input) and its kickoff issue
//! (`create-issue` input).
//!
//! Output: one `{"project": {"key", "name", "project_type_key"}, "kickoff":
//! {"project_key", "summary", "description", "issue_type"}}`. The Jira
//! project key is the canonical key (already Jira-shaped); the kickoff
//! issue's description lists the customer, budget, start date and the ids
//! the project has in other systems, so whoever opens the issue can find the
//! deal.

use junction_sdk::canonical::{Project, is_project_key};
use junction_sdk::{Error, JsonSchema, Result, Transform};
use serde::Serialize;

struct ToJira;

impl Transform for ToJira {
    type Input = Project;
    type Output = JiraPlan;

    fn apply(project: Project) -> Result<Vec<JiraPlan>> {
        Ok(vec![plan(&project)?])
    }
}

junction_sdk::export_transform!(ToJira);

/// What to create in Jira for one project.
#[derive(Debug, PartialEq, Serialize, JsonSchema)]
pub struct JiraPlan {
    /// Input of the connector's `create-project`.
    pub project: NewProject,
    /// Input of the connector's `create-issue`.
    pub kickoff: NewIssue,
}

/// A Jira project to create.
#[derive(Debug, PartialEq, Serialize, JsonSchema)]
pub struct NewProject {
    /// Project key.
    pub key: String,
    /// Project name.
    pub name: String,
    /// Always `software`.
    pub project_type_key: &'static str,
}

/// A Jira issue to create.
#[derive(Debug, PartialEq, Serialize, JsonSchema)]
pub struct NewIssue {
    /// The project's key.
    pub project_key: String,
    /// One-line summary.
    pub summary: String,
    /// Plain text, paragraphs separated by blank lines.
    pub description: String,
    /// Always `Task`.
    pub issue_type: &'static str,
}

/// The Jira project and kickoff issue of `project`.
pub fn plan(project: &Project) -> Result<JiraPlan> {
    if !is_project_key(&project.key) {
        return Err(Error::InvalidInput(format!(
            "`key` `{}` is not a Jira project key (2-10 upper-case letters or digits, starting with a letter)",
            project.key
        )));
    }
    if project.name.trim().is_empty() {
        return Err(Error::InvalidInput("`name` is empty".into()));
    }
    let mut facts = Vec::new();
    if let Some(customer) = &project.customer {
        facts.push(format!("Customer: {customer}"));
    }
    if let Some(budget) = &project.budget {
        facts.push(format!("Budget: {:.2} {}", budget.amount, budget.currency));
    }
    if let Some(start) = &project.start_date {
        facts.push(format!("Start: {start}"));
    }
    for (system, id) in &project.external_ids {
        facts.push(format!("{system} id: {id}"));
    }
    let mut description = format!(
        "Kick off {}: confirm scope, staffing and the first milestone with the customer.",
        project.name
    );
    if !facts.is_empty() {
        description.push_str("\n\n");
        description.push_str(&facts.join("\n"));
    }
    Ok(JiraPlan {
        project: NewProject {
            key: project.key.clone(),
            name: project.name.clone(),
            project_type_key: "software",
        },
        kickoff: NewIssue {
            project_key: project.key.clone(),
            summary: format!("Kickoff: {}", project.name),
            description,
            issue_type: "Task",
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn project(changes: Value) -> Project {
        let mut value = json!({
            "name": "Globex ERP migration", "key": "GLOBEXERPM", "customer": "Globex Corporation",
            "budget": {"amount": 250000.0, "currency": "USD"}, "start_date": "2026-11-20",
            "status": "planned", "external_ids": {"salesforce": "006A"}
        });
        for (k, v) in changes.as_object().unwrap() {
            value[k] = v.clone();
        }
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn project_becomes_jira_project_and_kickoff_issue() {
        let plan = plan(&project(json!({}))).unwrap();
        assert_eq!(
            serde_json::to_value(&plan).unwrap(),
            json!({
                "project": {"key": "GLOBEXERPM", "name": "Globex ERP migration", "project_type_key": "software"},
                "kickoff": {
                    "project_key": "GLOBEXERPM",
                    "summary": "Kickoff: Globex ERP migration",
                    "description": "Kick off Globex ERP migration: confirm scope, staffing and the first milestone with the customer.\n\nCustomer: Globex Corporation\nBudget: 250000.00 USD\nStart: 2026-11-20\nsalesforce id: 006A",
                    "issue_type": "Task"
                }
            })
        );
    }

    #[test]
    fn a_bare_project_gets_a_bare_description() {
        let plan = plan(&project(
            json!({"customer": null, "budget": null, "start_date": null, "external_ids": {}}),
        ))
        .unwrap();
        assert!(!plan.kickoff.description.contains('\n'));
    }

    #[test]
    fn keys_jira_refuses_are_invalid_input() {
        for key in ["acme", "A", "1ACME", "ACMEROLLOUTS"] {
            let Err(Error::InvalidInput(message)) = plan(&project(json!({"key": key}))) else {
                panic!("expected invalid input for {key}");
            };
            assert!(message.contains("`key`"), "{message}");
        }
    }
}
