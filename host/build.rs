//! Builds the plugins Junction ships (the `plugins/` workspace) so that
//! `junction demo` and the tests can load them.

use junction_build_support::{Guest, build};

fn main() {
    build(
        "../plugins",
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
        ],
    );
}
