//! Builds the plugins Junction ships (the `plugins/` workspace) so that
//! `junction demo` and the tests can load them.

use junction_build_support::{Guest, build};

fn main() {
    build(
        "../../plugins",
        &[
            Guest {
                package: "jira",
                constant: "JIRA_CONNECTOR",
            },
            Guest {
                package: "hubspot-deal-to-project",
                constant: "HUBSPOT_DEAL_TO_PROJECT",
            },
            Guest {
                package: "salesforce",
                constant: "SALESFORCE_CONNECTOR",
            },
            Guest {
                package: "hubspot",
                constant: "HUBSPOT_CONNECTOR",
            },
            Guest {
                package: "netsuite",
                constant: "NETSUITE_CONNECTOR",
            },
            Guest {
                package: "psa",
                constant: "PSA_CONNECTOR",
            },
            Guest {
                package: "proposal",
                constant: "PROPOSAL_CONNECTOR",
            },
            Guest {
                package: "contract",
                constant: "CONTRACT_CONNECTOR",
            },
            Guest {
                package: "approved-time-to-invoice",
                constant: "APPROVED_TIME_TO_INVOICE",
            },
            Guest {
                package: "salesforce-opportunity-to-project",
                constant: "SALESFORCE_OPPORTUNITY_TO_PROJECT",
            },
            Guest {
                package: "canonical-to-netsuite",
                constant: "CANONICAL_TO_NETSUITE",
            },
            Guest {
                package: "project-to-jira",
                constant: "PROJECT_TO_JIRA",
            },
            Guest {
                package: "resource-optimizer",
                constant: "RESOURCE_OPTIMIZER",
            },
        ],
    );
}
