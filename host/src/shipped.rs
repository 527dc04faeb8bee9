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

/// The package manifest of the Jira connector.
pub const JIRA_MANIFEST: &str = include_str!("../../plugins/jira/plugin.toml");

/// The package manifest of the HubSpot deal transform.
pub const HUBSPOT_DEAL_TO_PROJECT_MANIFEST: &str =
    include_str!("../../plugins/hubspot-deal-to-project/plugin.toml");

/// The package manifest of the Salesforce connector.
pub const SALESFORCE_MANIFEST: &str = include_str!("../../plugins/salesforce/plugin.toml");

/// The package manifest of the HubSpot connector.
pub const HUBSPOT_MANIFEST: &str = include_str!("../../plugins/hubspot/plugin.toml");

/// The package manifest of the NetSuite connector.
pub const NETSUITE_MANIFEST: &str = include_str!("../../plugins/netsuite/plugin.toml");

/// Every shipped plugin component.
pub fn all() -> [&'static [u8]; 5] {
    [
        JIRA_CONNECTOR,
        HUBSPOT_DEAL_TO_PROJECT,
        SALESFORCE_CONNECTOR,
        HUBSPOT_CONNECTOR,
        NETSUITE_CONNECTOR,
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
    ]
}
