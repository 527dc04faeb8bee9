//! The plugins Junction ships, built from `plugins/` by the build script and
//! embedded in the binary so that `junction demo` needs nothing else.

/// The Jira Cloud connector (`plugins/jira`).
pub static JIRA_CONNECTOR: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/jira.wasm"));

/// The HubSpot deal -> canonical project transform (`plugins/hubspot-deal-to-project`).
pub static HUBSPOT_DEAL_TO_PROJECT: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/hubspot_deal_to_project.wasm"));

/// The package manifest of the Jira connector.
pub const JIRA_MANIFEST: &str = include_str!("../../plugins/jira/plugin.toml");

/// The package manifest of the HubSpot deal transform.
pub const HUBSPOT_DEAL_TO_PROJECT_MANIFEST: &str =
    include_str!("../../plugins/hubspot-deal-to-project/plugin.toml");

/// Every shipped plugin component.
pub fn all() -> [&'static [u8]; 2] {
    [JIRA_CONNECTOR, HUBSPOT_DEAL_TO_PROJECT]
}

/// Every shipped plugin as an (unsigned) package, as `junction plugin pack` makes them.
pub fn packages() -> Vec<junction_registry::Package> {
    vec![
        junction_registry::Package::new(JIRA_MANIFEST, JIRA_CONNECTOR),
        junction_registry::Package::new(HUBSPOT_DEAL_TO_PROJECT_MANIFEST, HUBSPOT_DEAL_TO_PROJECT),
    ]
}
