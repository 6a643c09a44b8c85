//! Recording finished attempts, in batches.

use super::*;

/// Finished attempts recorded at most in one transaction.
const RESULTS_BATCH: usize = 1000;

/// Writes finished attempts in batches: one transaction for many results.
pub(super) async fn write_results(store: Store, finished: mpsc::Receiver<Finished>) {
    batch::run(ResultWriter(store), finished, RESULTS_BATCH).await;
}

/// The result writer on the `store::batch` primitive. A result that can never be written does
/// not hold back the others: its write breaks a constraint (the usual case: its endpoint was
/// deleted while it was being sent, taking the delivery with it, so the attempt row has
/// nothing to belong to), the batch is written one result at a time, and that result is
/// dropped and logged; retrying it made the writer retry the same batch forever and record
/// nothing else. While the database is unreachable the batch waits and is written again.
struct ResultWriter(Store);

impl batch::Writer for ResultWriter {
    type Job = Finished;
    type Output = ();
    type Error = StoreError;

    async fn write(&mut self, jobs: &[Finished], _again: bool) -> Result<Vec<()>, batch::Failure<StoreError>> {
        write_batch(&self.0, jobs).await.map_err(batch::Failure::Batch)?;
        Ok(vec![(); jobs.len()])
    }

    fn answer(&mut self, result: Finished, outcome: Result<(), StoreError>) {
        if let Err(e) = outcome {
            dropped(&result, &e);
        }
    }

    /// Also a write that lost a race it would win next time (a PostgreSQL deadlock or
    /// serialization failure: `renew_leases` and claims lock the same rows), so the result is
    /// written again rather than dropped.
    fn unavailable(&self, error: &StoreError) -> bool {
        match error {
            StoreError::Unavailable(_) => true,
            StoreError::Db(sqlx::Error::Database(db)) => matches!(db.code().as_deref(), Some("40001" | "40P01")),
            _ => false,
        }
    }

    fn copy(&self, _: &StoreError) -> StoreError {
        StoreError::Unavailable(sqlx::Error::PoolClosed)
    }

    /// Not lost: the deliveries stay leased and are retried when the lease ends; but a
    /// result recorded late spares the receiver a second delivery.
    fn retry_after(&self, attempt: u32) -> Option<Duration> {
        Some((Duration::from_millis(100) * 2u32.saturating_pow(attempt.min(7))).min(Duration::from_secs(10)))
    }
}

fn dropped(result: &Finished, error: &StoreError) {
    let attempt = &result.record.attempt;
    tracing::warn!(
        error = %error,
        delivery_id = %attempt.delivery_id,
        webhook_id = %result.record.webhook_id,
        attempt = attempt.attempt,
        "dropped a delivery result the database refuses (usually: its endpoint was deleted while it was being sent)"
    );
}

async fn write_batch(store: &Store, batch: &[Finished]) -> crate::store::StoreResult<()> {
    let records: Vec<&AttemptRecord> = batch.iter().map(|f| &f.record).collect();
    let health = merge_health(batch.iter().filter_map(|f| f.health.clone()));
    let events: Vec<&NewEvent> = batch.iter().flat_map(|f| &f.events).collect();
    store.record_attempts(&records, &health, &events).await
}

/// One health change per endpoint for a batch: the latest success wins over failures before it.
fn merge_health(items: impl Iterator<Item = EndpointHealth>) -> Vec<EndpointHealth> {
    let mut by_hook: HashMap<String, EndpointHealth> = HashMap::new();
    for h in items {
        match by_hook.get_mut(&h.webhook_id) {
            None => {
                by_hook.insert(h.webhook_id.clone(), h);
            }
            Some(acc) => {
                if h.last_success_at.is_some() {
                    acc.last_success_at = h.last_success_at.max(acc.last_success_at);
                    acc.failing_since = Some(None);
                } else if acc.last_success_at.is_none() && acc.failing_since.is_none() {
                    acc.failing_since = h.failing_since;
                }
                if acc.disable.is_none() {
                    acc.disable = h.disable;
                }
            }
        }
    }
    by_hook.into_values().collect()
}
