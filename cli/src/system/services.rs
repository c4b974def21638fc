//! The services of one process, supervised: each is a named task, and the
//! first that fails, panics or ends before the process was told to stop
//! stops all the others and makes the process exit with its error.

use anyhow::anyhow;
use std::collections::HashMap;
use std::future::Future;
use tokio::task::{Id, JoinSet};
use tokio_util::sync::CancellationToken;

/// Named service tasks and the stop signal they share.
pub struct Services {
    set: JoinSet<anyhow::Result<()>>,
    names: HashMap<Id, &'static str>,
    stop: CancellationToken,
}

impl Services {
    /// No services yet; `stop` is cancelled when one dies.
    pub fn new(stop: CancellationToken) -> Self {
        Services {
            set: JoinSet::new(),
            names: HashMap::new(),
            stop,
        }
    }

    /// Runs `service` as `name`. It should end only once `stop` is cancelled;
    /// ending earlier, with or without an error, counts as dying.
    pub fn spawn<F>(&mut self, name: &'static str, service: F)
    where
        F: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let id = self.set.spawn(service).id();
        self.names.insert(id, name);
    }

    /// Waits for every service. The first to die cancels `stop` (so the rest
    /// wind down) and its error, naming it, is returned once all have ended.
    pub async fn wait(mut self) -> anyhow::Result<()> {
        let mut first: Option<anyhow::Error> = None;
        while let Some(joined) = self.set.join_next_with_id().await {
            let (id, result) = match joined {
                Ok((id, r)) => (id, r),
                Err(e) => (e.id(), Err(anyhow!("panicked: {e}"))),
            };
            let name = self.names.remove(&id).unwrap_or("a service");
            let died = match result {
                Err(e) => Some(e.context(format!("{name} failed"))),
                Ok(()) if !self.stop.is_cancelled() => {
                    Some(anyhow!("{name} stopped before the process was told to"))
                }
                Ok(()) => None,
            };
            if let Some(e) = died {
                tracing::error!(
                    error = format!("{e:#}"),
                    "a service died; stopping the process"
                );
                first.get_or_insert(e);
                self.stop.cancel();
            }
        }
        first.map_or(Ok(()), Err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_service_that_fails_stops_the_others_and_names_itself() {
        let stop = CancellationToken::new();
        let mut s = Services::new(stop.clone());
        let waits = stop.clone();
        s.spawn("patient", async move {
            waits.cancelled().await;
            Ok(())
        });
        s.spawn("broken", async { Err(anyhow!("disk on fire")) });
        let e = tokio::time::timeout(Duration::from_secs(5), s.wait())
            .await
            .expect("the patient service was stopped")
            .unwrap_err();
        assert!(stop.is_cancelled());
        let text = format!("{e:#}");
        assert!(
            text.contains("broken failed") && text.contains("disk on fire"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn ending_early_or_panicking_is_dying_and_a_clean_stop_is_not() {
        let stop = CancellationToken::new();
        let mut s = Services::new(stop.clone());
        s.spawn("quitter", async { Ok(()) });
        let e = s.wait().await.unwrap_err();
        assert!(e.to_string().contains("quitter stopped"), "{e}");

        let mut s = Services::new(CancellationToken::new());
        s.spawn("bomb", async { panic!("boom") });
        let e = s.wait().await.unwrap_err();
        assert!(format!("{e:#}").contains("bomb failed"), "{e:#}");

        let stop = CancellationToken::new();
        let mut s = Services::new(stop.clone());
        let waits = stop.clone();
        s.spawn("good", async move {
            waits.cancelled().await;
            Ok(())
        });
        stop.cancel();
        assert!(s.wait().await.is_ok());
    }
}
