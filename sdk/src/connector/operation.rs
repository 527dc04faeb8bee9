//! A connector's typed [`Operation`]s and the [`Operations`] table the host
//! calls them through, with the input and output of the built-in `read`
//! operation.

use schemars::JsonSchema;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Connector, Context, Page};
use crate::{Error, Result, schema_of};

type Handler = Box<dyn Fn(&Context, &str) -> Result<String>>;

/// One typed operation of a connector: a name, a description and a function
/// from a serde input to a serde output.
pub struct Operation {
    pub(super) name: String,
    pub(super) description: String,
    // Derived only when `info` asks: invoke builds the operation table on
    // every call, and deriving a schema costs far more than a no-op call.
    pub(super) input_schema: Schema,
    pub(super) output_schema: Schema,
    pub(super) idempotent: bool,
    pub(super) undo: Option<String>,
    handler: Handler,
}

/// A JSON Schema: derived from a type when first needed, or given as text.
pub(super) enum Schema {
    Derived(fn() -> String),
    Given(String),
}

impl Schema {
    pub(super) fn text(&self) -> String {
        match self {
            Schema::Derived(derive) => derive(),
            Schema::Given(text) => text.clone(),
        }
    }
}

impl Operation {
    /// An operation called `name` (kebab-case, e.g. `create-issue`) that runs
    /// `handler`. The input JSON is parsed into `I` (a mismatch is
    /// [`Error::InvalidInput`] naming the field); the output is serialized
    /// from `O`. Both JSON Schemas are derived from the types.
    pub fn new<I, O, F>(name: &str, description: &str, handler: F) -> Self
    where
        I: DeserializeOwned + JsonSchema,
        O: Serialize + JsonSchema,
        F: Fn(&Context, I) -> Result<O> + 'static,
    {
        let op = name.to_owned();
        Operation {
            name: name.into(),
            description: description.into(),
            input_schema: Schema::Derived(schema_of::<I>),
            output_schema: Schema::Derived(schema_of::<O>),
            idempotent: false,
            undo: None,
            handler: Box::new(move |ctx, input| {
                let input: I = serde_json::from_str(input).map_err(|e| {
                    Error::InvalidInput(format!("input of `{op}` does not match its schema: {e}"))
                })?;
                let output = handler(ctx, input)?;
                serde_json::to_string(&output)
                    .map_err(|e| Error::Internal(format!("serializing the output of `{op}`: {e}")))
            }),
        }
    }

    /// Declares that calling it twice with the same idempotency key has the
    /// effect of one call, so the host may retry it freely.
    pub fn idempotent(mut self) -> Self {
        self.idempotent = true;
        self
    }

    /// Names the operation that undoes this one (a saga compensation).
    pub fn undo(mut self, operation: &str) -> Self {
        self.undo = Some(operation.into());
        self
    }

    /// Replaces the derived input JSON Schema.
    pub fn input_schema(mut self, schema: impl Into<String>) -> Self {
        self.input_schema = Schema::Given(schema.into());
        self
    }

    /// Replaces the derived output JSON Schema.
    pub fn output_schema(mut self, schema: impl Into<String>) -> Self {
        self.output_schema = Schema::Given(schema.into());
        self
    }

    /// The operation's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// An operation called `read` that runs the connector's
    /// [`Connector::read`]: input `{"stream", "cursor"?}`, output
    /// `{"records": [...], "next_cursor", "done"}`. Flows call operations, so
    /// this is how a flow step pages through a stream; it is idempotent, as a
    /// read is.
    pub fn read<C: Connector>() -> Self {
        Operation::new(
            "read",
            "Reads the next page of a stream after a cursor (from the start without one)",
            |ctx: &Context, input: ReadInput| {
                PageOutput::try_from(C::read(ctx, &input.stream, input.cursor)?)
            },
        )
        .idempotent()
    }
}

/// Input of the operation [`Operation::read`] makes.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, JsonSchema)]
pub struct ReadInput {
    /// The stream's name, one of those the connector documents.
    pub stream: String,
    /// The `next_cursor` of the previous page; absent to read from the start.
    #[serde(default)]
    pub cursor: Option<String>,
}

/// A [`Page`] as the output of the operation [`Operation::read`] makes.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct PageOutput {
    /// The page's records.
    pub records: Vec<serde_json::Value>,
    /// The cursor to read the next page with; `None` when the stream has no
    /// position to resume from.
    pub next_cursor: Option<String>,
    /// True when the stream has no more records for now.
    pub done: bool,
}

impl TryFrom<Page> for PageOutput {
    type Error = Error;

    /// Fails with [`Error::Internal`] when a record is not JSON.
    fn try_from(page: Page) -> Result<Self> {
        let records = page
            .records
            .iter()
            .map(|r| serde_json::from_str(r))
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| Error::Internal(format!("a record of the page is not JSON: {e}")))?;
        Ok(PageOutput {
            records,
            next_cursor: page.next_cursor,
            done: page.done,
        })
    }
}

impl std::fmt::Debug for Operation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Operation")
            .field("name", &self.name)
            .field("idempotent", &self.idempotent)
            .field("undo", &self.undo)
            .finish_non_exhaustive()
    }
}

/// The operations of a connector, looked up by name.
#[derive(Debug, Default)]
pub struct Operations {
    pub(super) operations: Vec<Operation>,
}

impl Operations {
    /// No operations yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `operation`.
    ///
    /// # Panics
    ///
    /// When an operation of that name was already added: the host would not
    /// know which one to call, so the plugin fails as soon as it is described.
    pub fn with(mut self, operation: Operation) -> Self {
        assert!(
            self.get(&operation.name).is_none(),
            "operation `{}` is defined twice",
            operation.name
        );
        self.operations.push(operation);
        self
    }

    /// The operation called `name`.
    pub fn get(&self, name: &str) -> Option<&Operation> {
        self.operations.iter().find(|op| op.name == name)
    }

    /// Names of the operations, in the order they were added.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.operations.iter().map(|op| op.name.as_str())
    }

    /// Runs the operation `name` on JSON `input` and returns its JSON output.
    /// An unknown name is [`Error::InvalidInput`] listing the known ones.
    pub fn invoke(&self, ctx: &Context, name: &str, input: &str) -> Result<String> {
        let operation = self.get(name).ok_or_else(|| {
            let known: Vec<_> = self.names().collect();
            Error::InvalidInput(format!(
                "unknown operation `{name}`; this connector offers: {}",
                known.join(", ")
            ))
        })?;
        (operation.handler)(ctx, input)
    }
}
