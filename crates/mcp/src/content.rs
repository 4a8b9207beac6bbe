//! What a tool call returns, in the agent's terms: [`McpContent`] blocks with binary data
//! decoded from base64, and [`McpCallResult`].

use base64::Engine as _;
use rmcp::model::{CallToolResult, ContentBlock, ResourceContents};

/// One block of a tool's result.
#[derive(Debug, Clone, PartialEq)]
pub enum McpContent {
    Text(String),
    Image {
        mime_type: String,
        data: Vec<u8>,
    },
    Audio {
        mime_type: String,
        data: Vec<u8>,
    },
    /// An embedded resource: text or a (decoded) blob.
    Resource {
        uri: String,
        mime_type: Option<String>,
        text: Option<String>,
        blob: Option<Vec<u8>>,
    },
    /// A link to a resource the server can serve.
    Link {
        uri: String,
        name: String,
    },
}

/// A tool call's result. `is_error` is the tool's own failure (reported to the model), not
/// a protocol error (those are [`McpError`](crate::McpError)s).
#[derive(Debug, Clone, PartialEq)]
pub struct McpCallResult {
    pub content: Vec<McpContent>,
    pub is_error: bool,
    pub structured: Option<serde_json::Value>,
}

impl McpCallResult {
    /// The text blocks joined by newlines (handy for tests and plain-text callers).
    pub fn text(&self) -> String {
        self.content
            .iter()
            .filter_map(|block| match block {
                McpContent::Text(text) => Some(text.as_str()),
                _ => None,
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl From<CallToolResult> for McpCallResult {
    fn from(result: CallToolResult) -> Self {
        Self {
            content: result.content.into_iter().map(convert).collect(),
            is_error: result.is_error.unwrap_or(false),
            structured: result.structured_content,
        }
    }
}

/// Base64 as servers send it: standard alphabet, padding optional, whitespace tolerated.
fn decode(data: &str) -> Option<Vec<u8>> {
    let compact: String = data.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let trimmed = compact.trim_end_matches('=');
    base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(trimmed)
        .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(trimmed))
        .ok()
}

fn undecodable(kind: &str, mime_type: &str) -> McpContent {
    McpContent::Text(format!(
        "[the server sent {kind} content ({mime_type}) that is not valid base64]"
    ))
}

fn convert(block: ContentBlock) -> McpContent {
    match block {
        ContentBlock::Text(text) => McpContent::Text(text.text),
        ContentBlock::Image(image) => match decode(&image.data) {
            Some(data) => McpContent::Image {
                mime_type: image.mime_type,
                data,
            },
            None => undecodable("image", &image.mime_type),
        },
        ContentBlock::Audio(audio) => match decode(&audio.data) {
            Some(data) => McpContent::Audio {
                mime_type: audio.mime_type,
                data,
            },
            None => undecodable("audio", &audio.mime_type),
        },
        ContentBlock::Resource(embedded) => match embedded.resource {
            ResourceContents::TextResourceContents {
                uri,
                mime_type,
                text,
                ..
            } => McpContent::Resource {
                uri,
                mime_type,
                text: Some(text),
                blob: None,
            },
            ResourceContents::BlobResourceContents {
                uri,
                mime_type,
                blob,
                ..
            } => match decode(&blob) {
                Some(bytes) => McpContent::Resource {
                    uri,
                    mime_type,
                    text: None,
                    blob: Some(bytes),
                },
                None => undecodable("resource", mime_type.as_deref().unwrap_or("blob")),
            },
            // Newer SDK variants: keep what a model can use.
            _ => McpContent::Text("[the server sent a resource of an unknown kind]".into()),
        },
        ContentBlock::ResourceLink(link) => McpContent::Link {
            uri: link.uri,
            name: link.name,
        },
        _ => McpContent::Text("[the server sent content of an unknown kind]".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_every_kind() {
        let result: CallToolResult = serde_json::from_value(serde_json::json!({
            "content": [
                {"type": "text", "text": "hi"},
                {"type": "image", "data": "iVBORw0K", "mimeType": "image/png"},
                {"type": "audio", "data": "UklGRg==", "mimeType": "audio/wav"},
                {"type": "resource", "resource": {"uri": "file:///a.txt", "mimeType": "text/plain", "text": "A"}},
                {"type": "resource", "resource": {"uri": "file:///b.bin", "blob": "AAEC"}},
                {"type": "resource_link", "uri": "file:///c", "name": "c"},
                {"type": "image", "data": "not base64!", "mimeType": "image/png"}
            ],
            "isError": true,
            "structuredContent": {"n": 1}
        }))
        .expect("a valid result");
        let converted = McpCallResult::from(result);
        assert!(converted.is_error);
        assert_eq!(converted.structured, Some(serde_json::json!({"n": 1})));
        assert_eq!(
            converted.content[..6],
            [
                McpContent::Text("hi".into()),
                McpContent::Image {
                    mime_type: "image/png".into(),
                    data: b"\x89PNG\r\n".to_vec()
                },
                McpContent::Audio {
                    mime_type: "audio/wav".into(),
                    data: b"RIFF".to_vec()
                },
                McpContent::Resource {
                    uri: "file:///a.txt".into(),
                    mime_type: Some("text/plain".into()),
                    text: Some("A".into()),
                    blob: None
                },
                McpContent::Resource {
                    uri: "file:///b.bin".into(),
                    mime_type: None,
                    text: None,
                    blob: Some(vec![0, 1, 2])
                },
                McpContent::Link {
                    uri: "file:///c".into(),
                    name: "c".into()
                },
            ]
        );
        assert!(
            matches!(&converted.content[6], McpContent::Text(t) if t.contains("not valid base64"))
        );
    }
}
