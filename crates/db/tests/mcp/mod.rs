//! Users' connectors: stored per user and name, replaced by name, deleted with the user.

use super::{Db, new_user};
use ironhand_core::ids::UserId;
use ironhand_core::mcp::StoredMcpServer;

fn server(user: UserId, name: &str, secrets: &str, at: i64) -> StoredMcpServer {
    StoredMcpServer {
        user_id: user,
        name: name.into(),
        transport: "stdio".into(),
        settings: r#"{"command":"npx","args":["-y","x"]}"#.into(),
        secrets: secrets.into(),
        enabled: true,
        created_at: at,
        updated_at: at,
    }
}

pub async fn connectors_are_kept_per_user_and_replaced_by_name(db: Db) {
    let (a, sa) = new_user("mcp-a@example.com", None);
    let (b, sb) = new_user("mcp-b@example.com", None);
    let a = db.store.create_user(&a, &sa).await.expect("a").id;
    let b = db.store.create_user(&b, &sb).await.expect("b").id;

    db.store
        .put_mcp_server(&server(a, "zeta", "v1:one", 1))
        .await
        .expect("put");
    db.store
        .put_mcp_server(&server(a, "alpha", "v1:two", 2))
        .await
        .expect("put");
    db.store
        .put_mcp_server(&server(b, "alpha", "v1:bee", 3))
        .await
        .expect("put");
    let mine = db.store.mcp_servers(a).await.expect("list");
    assert_eq!(
        mine.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
        ["alpha", "zeta"],
        "by name, and only a's"
    );
    assert_eq!(mine[0], server(a, "alpha", "v1:two", 2));

    // Same name again: replaced, creation time kept.
    let mut changed = server(a, "alpha", "v1:three", 9);
    changed.transport = "streamable-http".into();
    changed.enabled = false;
    db.store.put_mcp_server(&changed).await.expect("replace");
    let mine = db.store.mcp_servers(a).await.expect("list");
    assert_eq!(mine.len(), 2);
    assert_eq!(mine[0].secrets, "v1:three");
    assert_eq!(mine[0].transport, "streamable-http");
    assert!(!mine[0].enabled);
    assert_eq!((mine[0].created_at, mine[0].updated_at), (2, 9));
    assert_eq!(
        db.store.mcp_servers(b).await.expect("b")[0].secrets,
        "v1:bee"
    );

    // Deleting is per user.
    assert!(!db.store.delete_mcp_server(b, "zeta").await.expect("delete"));
    assert!(db.store.delete_mcp_server(a, "zeta").await.expect("delete"));
    assert!(!db.store.delete_mcp_server(a, "zeta").await.expect("again"));
    assert_eq!(db.store.mcp_servers(a).await.expect("list").len(), 1);

    // An unknown transport never gets in.
    let mut bad = server(a, "bad", "v1:x", 1);
    bad.transport = "websocket".into();
    assert!(db.store.put_mcp_server(&bad).await.is_err());
}
