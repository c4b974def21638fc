//! The one way every Redis-backed seam opens its connection.

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use std::time::Duration;

/// A reconnecting, multiplexed connection to `client`'s server. Reconnects
/// later are the manager's job; the first connection fails fast, so a wrong
/// URL is a clear start-up error rather than a hang.
pub async fn manager(client: &redis::Client) -> redis::RedisResult<ConnectionManager> {
    let cfg = ConnectionManagerConfig::new()
        .set_number_of_retries(1)
        .set_connection_timeout(Some(Duration::from_secs(5)))
        .set_response_timeout(Some(Duration::from_secs(10)));
    client.get_connection_manager_with_config(cfg).await
}

/// [`manager`] for a URL.
pub async fn connect(url: &str) -> redis::RedisResult<ConnectionManager> {
    manager(&redis::Client::open(url)?).await
}
