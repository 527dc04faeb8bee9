//! The plugins Junction ships, built from `plugins/` by the build script and
//! embedded in the binary so that `junction demo` needs nothing else.

/// The Jira Cloud connector (`plugins/jira`).
pub static JIRA_CONNECTOR: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/jira.wasm"));

/// The HubSpot deal -> canonical project transform (`plugins/hubspot-deal-to-project`).
pub static HUBSPOT_DEAL_TO_PROJECT: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/hubspot_deal_to_project.wasm"));

/// The Salesforce connector (`plugins/salesforce`).
pub static SALESFORCE_CONNECTOR: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/salesforce.wasm"));

/// The HubSpot connector (`plugins/hubspot`).
pub static HUBSPOT_CONNECTOR: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/hubspot.wasm"));

/// The NetSuite connector (`plugins/netsuite`).
pub static NETSUITE_CONNECTOR: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/netsuite.wasm"));

/// The PSA connector (`plugins/psa`).
pub static PSA_CONNECTOR: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/psa.wasm"));

/// The proposal-tool connector (`plugins/proposal`).
pub static PROPOSAL_CONNECTOR: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/proposal.wasm"));

/// The contract-tool connector (`plugins/contract`).
pub static CONTRACT_CONNECTOR: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/contract.wasm"));

/// The approved PSA time -> invoice transform (`plugins/approved-time-to-invoice`).
pub static APPROVED_TIME_TO_INVOICE: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/approved_time_to_invoice.wasm"));

/// The Salesforce opportunity -> canonical engagement transform
/// (`plugins/salesforce-opportunity-to-project`).
pub static SALESFORCE_OPPORTUNITY_TO_PROJECT: &[u8] = include_bytes!(concat!(
    env!("OUT_DIR"),
    "/salesforce_opportunity_to_project.wasm"
));

/// The canonical engagement -> NetSuite records transform (`plugins/canonical-to-netsuite`).
pub static CANONICAL_TO_NETSUITE: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/canonical_to_netsuite.wasm"));

/// The canonical project -> Jira project and kickoff issue transform (`plugins/project-to-jira`).
pub static PROJECT_TO_JIRA: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/project_to_jira.wasm"));

/// The staffing-plan optimizer (`plugins/resource-optimizer`).
pub static RESOURCE_OPTIMIZER: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/resource_optimizer.wasm"));

/// The package manifest of the Jira connector.
pub const JIRA_MANIFEST: &str = include_str!("../../../plugins/jira/plugin.toml");

/// The package manifest of the HubSpot deal transform.
pub const HUBSPOT_DEAL_TO_PROJECT_MANIFEST: &str =
    include_str!("../../../plugins/hubspot-deal-to-project/plugin.toml");

/// The package manifest of the Salesforce connector.
pub const SALESFORCE_MANIFEST: &str = include_str!("../../../plugins/salesforce/plugin.toml");

/// The package manifest of the HubSpot connector.
pub const HUBSPOT_MANIFEST: &str = include_str!("../../../plugins/hubspot/plugin.toml");

/// The package manifest of the NetSuite connector.
pub const NETSUITE_MANIFEST: &str = include_str!("../../../plugins/netsuite/plugin.toml");

/// The package manifest of the PSA connector.
pub const PSA_MANIFEST: &str = include_str!("../../../plugins/psa/plugin.toml");

/// The package manifest of the proposal-tool connector.
pub const PROPOSAL_MANIFEST: &str = include_str!("../../../plugins/proposal/plugin.toml");

/// The package manifest of the contract-tool connector.
pub const CONTRACT_MANIFEST: &str = include_str!("../../../plugins/contract/plugin.toml");

/// The package manifest of the approved PSA time -> invoice transform.
pub const APPROVED_TIME_TO_INVOICE_MANIFEST: &str =
    include_str!("../../../plugins/approved-time-to-invoice/plugin.toml");

/// The package manifest of the Salesforce opportunity transform.
pub const SALESFORCE_OPPORTUNITY_TO_PROJECT_MANIFEST: &str =
    include_str!("../../../plugins/salesforce-opportunity-to-project/plugin.toml");

/// The package manifest of the canonical -> NetSuite transform.
pub const CANONICAL_TO_NETSUITE_MANIFEST: &str =
    include_str!("../../../plugins/canonical-to-netsuite/plugin.toml");

/// The package manifest of the project -> Jira transform.
pub const PROJECT_TO_JIRA_MANIFEST: &str =
    include_str!("../../../plugins/project-to-jira/plugin.toml");

/// The package manifest of the resource optimizer.
pub const RESOURCE_OPTIMIZER_MANIFEST: &str =
    include_str!("../../../plugins/resource-optimizer/plugin.toml");

/// Every shipped plugin component.
pub fn all() -> [&'static [u8]; 13] {
    [
        JIRA_CONNECTOR,
        HUBSPOT_DEAL_TO_PROJECT,
        SALESFORCE_CONNECTOR,
        HUBSPOT_CONNECTOR,
        NETSUITE_CONNECTOR,
        PSA_CONNECTOR,
        PROPOSAL_CONNECTOR,
        CONTRACT_CONNECTOR,
        APPROVED_TIME_TO_INVOICE,
        SALESFORCE_OPPORTUNITY_TO_PROJECT,
        CANONICAL_TO_NETSUITE,
        PROJECT_TO_JIRA,
        RESOURCE_OPTIMIZER,
    ]
}

/// Every shipped plugin as an (unsigned) package, as `junction plugin pack` makes them.
pub fn packages() -> Vec<junction_registry::Package> {
    vec![
        junction_registry::Package::new(JIRA_MANIFEST, JIRA_CONNECTOR),
        junction_registry::Package::new(HUBSPOT_DEAL_TO_PROJECT_MANIFEST, HUBSPOT_DEAL_TO_PROJECT),
        junction_registry::Package::new(SALESFORCE_MANIFEST, SALESFORCE_CONNECTOR),
        junction_registry::Package::new(HUBSPOT_MANIFEST, HUBSPOT_CONNECTOR),
        junction_registry::Package::new(NETSUITE_MANIFEST, NETSUITE_CONNECTOR),
        junction_registry::Package::new(PSA_MANIFEST, PSA_CONNECTOR),
        junction_registry::Package::new(PROPOSAL_MANIFEST, PROPOSAL_CONNECTOR),
        junction_registry::Package::new(CONTRACT_MANIFEST, CONTRACT_CONNECTOR),
        junction_registry::Package::new(
            APPROVED_TIME_TO_INVOICE_MANIFEST,
            APPROVED_TIME_TO_INVOICE,
        ),
        junction_registry::Package::new(
            SALESFORCE_OPPORTUNITY_TO_PROJECT_MANIFEST,
            SALESFORCE_OPPORTUNITY_TO_PROJECT,
        ),
        junction_registry::Package::new(CANONICAL_TO_NETSUITE_MANIFEST, CANONICAL_TO_NETSUITE),
        junction_registry::Package::new(PROJECT_TO_JIRA_MANIFEST, PROJECT_TO_JIRA),
        junction_registry::Package::new(RESOURCE_OPTIMIZER_MANIFEST, RESOURCE_OPTIMIZER),
    ]
}

/// The flows Junction ships (`flows/`), by name: deploy them with
/// `junction flow deploy flows/<name>.toml` or `PUT /v1/flows/<name>`.
pub const FLOWS: [(&str, &str); 4] = [
    (
        "closed-won-to-project",
        include_str!("../../../flows/closed-won-to-project.toml"),
    ),
    (
        "salesforce-closed-won-to-project",
        include_str!("../../../flows/salesforce-closed-won-to-project.toml"),
    ),
    (
        "approved-time-to-invoice",
        include_str!("../../../flows/approved-time-to-invoice.toml"),
    ),
    (
        "contract-signed-activates-project",
        include_str!("../../../flows/contract-signed-activates-project.toml"),
    ),
];

/// The shipped governance document: which system owns which field of each
/// canonical entity in the shipped estate.
pub const GOVERNANCE: &str = include_str!("../../../flows/governance.toml");

/// The source of the shipped flow `name`.
pub fn flow(name: &str) -> Option<&'static str> {
    FLOWS
        .iter()
        .find(|(flow, _)| *flow == name)
        .map(|(_, source)| *source)
}
