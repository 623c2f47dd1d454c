//! Fleet mode: the hub's bus over Redis pub/sub. One connection subscribes to the fleet's
//! membership channel and this instance's own; another publishes, in the order the hub asked.
//! Redis delivers the messages of a channel to every subscriber in the order it executed the
//! PUBLISHes, which is the one order every hub applies joins and leaves in.

use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::{mpsc, watch};

use super::Input;
use crate::bus::Topic;

/// The Redis channels of one instance.
pub(super) struct Channels {
    members: String,
    mine: String,
}

impl Channels {
    pub(super) fn new(prefix: &str, instance: &str) -> Channels {
        Channels {
            members: Topic::Members.channel(prefix),
            mine: Topic::Instance(instance.to_owned()).channel(prefix),
        }
    }
}

/// Keeps the bus up: connects, tells the hub, relays both ways, and on any error tells the
/// hub it is down and tries again a second later.
pub(super) async fn run(
    client: redis::Client,
    channels: Channels,
    mut outgoing: mpsc::UnboundedReceiver<(String, String)>,
    hub: mpsc::Sender<Input>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let up = session(&client, &channels, &mut outgoing, &hub);
        tokio::select! {
            r = up => {
                if let Err(e) = r {
                    tracing::error!(error = %e, "the fleet's Redis is unreachable: no joins until it is back");
                }
            }
            _ = stop.wait_for(|s| *s) => return,
        }
        if hub.send(Input::BusDown).await.is_err() {
            return;
        }
        // What the hub published while the bus was down is for a fleet that has since
        // forgotten this instance: drop it.
        while outgoing.try_recv().is_ok() {}
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

async fn session(
    client: &redis::Client,
    channels: &Channels,
    outgoing: &mut mpsc::UnboundedReceiver<(String, String)>,
    hub: &mpsc::Sender<Input>,
) -> redis::RedisResult<()> {
    let mut pubsub = client.get_async_pubsub().await?;
    pubsub.subscribe(&channels.members).await?;
    pubsub.subscribe(&channels.mine).await?;
    let mut publisher = client.get_multiplexed_async_connection().await?;
    tracing::info!("connected to the fleet's Redis");
    // Subscribed before the hub says hello, so no answer to it can be missed.
    if hub.send(Input::BusUp).await.is_err() {
        return Ok(());
    }
    let mut messages = pubsub.on_message();
    loop {
        tokio::select! {
            m = messages.next() => {
                let Some(m) = m else {
                    return Err(redis::RedisError::from((redis::ErrorKind::Io, "subscription closed")));
                };
                let payload: String = m.get_payload()?;
                if hub.send(Input::Bus(payload)).await.is_err() {
                    return Ok(());
                }
            }
            o = outgoing.recv() => {
                let Some((channel, payload)) = o else { return Ok(()) };
                let _: i64 = redis::cmd("PUBLISH")
                    .arg(channel)
                    .arg(payload)
                    .query_async(&mut publisher)
                    .await?;
            }
        }
    }
}
