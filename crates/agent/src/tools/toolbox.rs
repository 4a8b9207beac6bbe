//! The registry of tool families and one session's toolbox: what the executor is offered
//! and which family answers each call. Adding a family is one [`ToolRegistry::with`]; the
//! step loop only ever sees tool names.

use super::file::FileTools;
use super::message::MessageTools;
use super::search::SearchTools;
use super::shell::ShellTools;
use super::{ToolContext, ToolFamily, ToolOutcome, complete_step_spec, unknown_tool};
use ironhand_core::ports::Sandbox;
use ironhand_core::ports::sandbox::SandboxError;
use ironhand_llm::ToolSpec;
use ironhand_search::SearchProvider;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;

/// The tool families every session gets, in the order their tools are offered.
#[derive(Clone, Default)]
pub struct ToolRegistry {
    families: Vec<Arc<dyn ToolFamily>>,
}

impl ToolRegistry {
    /// Shell, file and message tools, and web search when a provider is configured.
    pub fn builtin(search: Option<Arc<dyn SearchProvider>>) -> Self {
        let registry = Self::default()
            .with(ShellTools)
            .with(FileTools)
            .with(MessageTools);
        match search {
            Some(provider) => registry.with(SearchTools::new(provider)),
            None => registry,
        }
    }

    /// Adds a family; its tools are offered after those of the families before it.
    pub fn with(mut self, family: impl ToolFamily + 'static) -> Self {
        self.families.push(Arc::new(family));
        self
    }

    /// The toolbox of one session.
    pub fn for_session(&self, context: ToolContext) -> Toolbox {
        Toolbox {
            families: self.families.clone(),
            context,
            offered: HashMap::new(),
        }
    }
}

/// The executor's tools for one session. Calls go to the family that offered the name in
/// the latest [`Toolbox::offer`].
pub struct Toolbox {
    families: Vec<Arc<dyn ToolFamily>>,
    context: ToolContext,
    offered: HashMap<String, Arc<dyn ToolFamily>>,
}

impl Toolbox {
    /// Every family's tools, in registry order, then `complete_step` (the loop's own).
    pub async fn offer(&mut self) -> Vec<ToolSpec> {
        self.offered.clear();
        let mut specs = Vec::new();
        for family in &self.families {
            for spec in family.specs(&self.context).await {
                // A name two families claim stays the first one's: models refuse duplicates.
                if self.offered.contains_key(&spec.name) {
                    continue;
                }
                self.offered.insert(spec.name.clone(), family.clone());
                specs.push(spec);
            }
        }
        specs.push(complete_step_spec());
        specs
    }

    /// The group of an offered tool (the `name` of its `tool` events).
    pub fn group_of(&self, function: &str) -> Option<&'static str> {
        self.offered.get(function).map(|family| family.group())
    }

    pub fn offers(&self, function: &str) -> bool {
        self.offered.contains_key(function)
    }

    /// Runs an offered tool; any other name is a failed result.
    pub async fn call(&self, function: &str, args: &Value) -> ToolOutcome {
        match self.offered.get(function) {
            Some(family) => family.call(&self.context, function, args).await,
            None => unknown_tool(function),
        }
    }

    /// The run was stopped during this call: its family stops what the call started.
    pub async fn interrupt(&self, function: &str, args: &Value) {
        if let Some(family) = self.offered.get(function) {
            family.interrupt(&self.context, function, args).await;
        }
    }

    /// The session's sandbox, started on first use.
    pub async fn sandbox(&self) -> Result<&Arc<dyn Sandbox>, SandboxError> {
        self.context.sandbox().await
    }

    /// Copies files the agent names to the session's files (see [`ToolContext::collect`]).
    pub async fn collect(&self, paths: &[String]) -> (Vec<Value>, Vec<String>) {
        self.context.collect(paths).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tools::spec;
    use async_trait::async_trait;
    use ironhand_core::files::{FileService, FileSettings, Naming, UrlSigner};
    use ironhand_core::ids::{SessionId, UserId};
    use ironhand_sandbox::{LocalSandboxConfig, LocalSandboxProvider};
    use serde_json::json;

    /// A family the flow has never heard of: it repeats what it is told, and says for
    /// which session.
    struct Parrot;

    #[async_trait]
    impl ToolFamily for Parrot {
        fn group(&self) -> &'static str {
            "parrot"
        }

        async fn specs(&self, _context: &ToolContext) -> Vec<ToolSpec> {
            vec![spec(
                "parrot_repeat",
                "Repeat a text.",
                json!({"text": {"type": "string"}}),
                &["text"],
            )]
        }

        async fn call(&self, context: &ToolContext, _function: &str, args: &Value) -> ToolOutcome {
            ToolOutcome::ok(
                "Repeated.",
                json!({"text": args["text"], "session": context.session.to_string()}),
                None,
            )
        }
    }

    /// A session's context on the embedded backends, in `dir`.
    async fn session_context(dir: &std::path::Path) -> ToolContext {
        let store = ironhand_db::connect(&ironhand_db::testing::fresh_sqlite_url(dir), true)
            .await
            .expect("database");
        let files = FileService::new(
            store,
            Arc::new(ironhand_files::LocalBlobStore::new(dir.join("files"))),
            UrlSigner::new(b"test key"),
            FileSettings {
                max_upload_bytes: 1 << 20,
                quota_bytes: 1 << 20,
                max_agent_file_bytes: 1 << 20,
                url_ttl_secs: 60,
                path_prefix: "/api/v1/files".into(),
                public_origin: String::new(),
            },
            Naming {
                sanitize: ironhand_files::sanitize_filename,
                guess_type: ironhand_files::guess_type,
            },
        );
        // Nothing here starts a sandbox: the provider only has to exist.
        let sandboxes = LocalSandboxProvider::new(LocalSandboxConfig {
            root_dir: dir.join("sandboxes"),
            network: false,
            ..LocalSandboxConfig::default()
        })
        .expect("bubblewrap is installed");
        ToolContext::new(
            SessionId::new(),
            UserId::new(),
            Arc::new(sandboxes),
            Arc::new(files),
        )
    }

    #[tokio::test]
    async fn a_new_family_is_offered_after_the_builtins_and_answers_its_calls() {
        let dir = tempfile::tempdir().expect("tempdir");
        let context = session_context(dir.path()).await;
        let session = context.session.to_string();
        let mut toolbox = ToolRegistry::builtin(None)
            .with(Parrot)
            .for_session(context);

        let offered: Vec<String> = toolbox.offer().await.into_iter().map(|s| s.name).collect();
        assert_eq!(
            offered,
            [
                "shell_exec",
                "shell_view",
                "shell_wait",
                "shell_write_to_process",
                "shell_kill_process",
                "file_read",
                "file_write",
                "file_str_replace",
                "file_find_in_content",
                "file_find_by_name",
                "message_notify_user",
                "message_ask_user",
                "parrot_repeat",
                "complete_step",
            ],
            "no search without a provider; the loop's complete_step comes last"
        );
        assert_eq!(toolbox.group_of("parrot_repeat"), Some("parrot"));
        assert_eq!(toolbox.group_of("shell_exec"), Some("shell"));
        assert_eq!(toolbox.group_of("file_read"), Some("file"));
        assert_eq!(toolbox.group_of("message_ask_user"), Some("message"));

        let repeated = toolbox
            .call("parrot_repeat", &json!({"text": "hello"}))
            .await;
        assert!(repeated.success);
        assert_eq!(repeated.data, json!({"text": "hello", "session": session}));

        // What was not offered is not run, whoever might know the name.
        for invented in ["parrot_shout", "info_search_web", "complete_step"] {
            assert!(!toolbox.offers(invented));
            assert_eq!(toolbox.group_of(invented), None);
            let refused = toolbox.call(invented, &json!({})).await;
            assert_eq!(
                refused.message,
                format!("Unknown tool `{invented}`. Use only the tools you were given.")
            );
        }
    }

    #[tokio::test]
    async fn the_message_family_validates_what_the_loop_delivers() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut toolbox =
            ToolRegistry::builtin(None).for_session(session_context(dir.path()).await);
        toolbox.offer().await;
        let said = toolbox
            .call("message_notify_user", &json!({"text": "Halfway there."}))
            .await;
        assert!(said.success, "{said:?}");
        let blank = toolbox
            .call("message_ask_user", &json!({"text": "  "}))
            .await;
        assert_eq!(blank.message, "`text` must not be empty.");
    }
}
