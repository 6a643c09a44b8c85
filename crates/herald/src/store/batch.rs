//! One batching primitive for the writers that commit many jobs in one transaction: group
//! commit of scripts on both backends (`script/writer.rs`), chat message sends
//! (`chat/writer.rs`) and the webhook dispatcher's recording of delivery results
//! (`webhooks/dispatcher/results.rs`).
//!
//! [`run`] takes every job waiting (up to a cap) and hands them to the [`Writer`] as one
//! batch. When the batch fails, a failing job never fails or blocks the others:
//! - the writer names the job at fault ([`Failure::Job`]): it is answered alone with its
//!   error, and the rest run again without it;
//! - the batch failed as a whole ([`Failure::Batch`]): each job runs alone, so only the one at
//!   fault gets an error;
//! - a job that fails alone is answered with its error, never run again;
//! - the database itself is unavailable (unreachable, out of space: [`Writer::unavailable`]):
//!   running each job alone would only meet the same error, so every job gets it, or, for a
//!   writer whose results must not be lost ([`Writer::retry_after`]), the batch waits and
//!   runs again.

use std::{collections::VecDeque, future::Future, time::Duration};

use tokio::sync::mpsc;

/// Why a batch did not commit (nothing of it did).
#[derive(Debug)]
pub(crate) enum Failure<E> {
    /// Job `k` of the batch failed; the others were not at fault.
    Job(usize, E),
    /// The transaction failed; which job caused it, if any, is not known.
    Batch(E),
}

/// A batch writer: how to write a batch in one transaction, and how to answer a job.
pub(crate) trait Writer: Send + 'static {
    type Job: Send + 'static;
    /// What a committed job is answered with.
    type Output: Send;
    type Error: std::fmt::Display + Send;

    /// How many of `waiting` (never empty) go into the next batch; the rest wait for the one
    /// after. All by default.
    fn take(&self, waiting: &[Self::Job]) -> usize {
        waiting.len()
    }

    /// Runs `jobs` in one transaction: an output per job, in order, or why nothing committed.
    /// `again` is true when the batch is what is left of one that failed.
    fn write(
        &mut self,
        jobs: &[Self::Job],
        again: bool,
    ) -> impl Future<Output = Result<Vec<Self::Output>, Failure<Self::Error>>> + Send;

    /// Gives `job` its result.
    fn answer(&mut self, job: Self::Job, result: Result<Self::Output, Self::Error>);

    /// Whether `error` is the database's and not any job's (unreachable, out of space).
    fn unavailable(&self, error: &Self::Error) -> bool;

    /// `error` again, for each job of a batch that met it (errors cannot be cloned).
    fn copy(&self, error: &Self::Error) -> Self::Error;

    /// After the database was unavailable for the `attempt`-th time (from 0) in a row: how
    /// long to wait before running the same batch again, or `None` (the default) to answer
    /// each of its jobs with the error.
    fn retry_after(&self, _attempt: u32) -> Option<Duration> {
        None
    }
}

/// Feeds the jobs of `rx` to `writer` in batches of at most `cap`; ends when every sender is
/// dropped and every job is answered.
pub(crate) async fn run<W: Writer>(mut writer: W, mut rx: mpsc::Receiver<W::Job>, cap: usize) {
    let cap = cap.max(1);
    let mut waiting: Vec<W::Job> = Vec::with_capacity(cap);
    loop {
        if waiting.is_empty() {
            if rx.recv_many(&mut waiting, cap).await == 0 {
                return;
            }
        } else {
            while waiting.len() < cap {
                match rx.try_recv() {
                    Ok(job) => waiting.push(job),
                    Err(_) => break,
                }
            }
        }
        let n = writer.take(&waiting).clamp(1, waiting.len());
        let rest = waiting.split_off(n);
        let batch = std::mem::replace(&mut waiting, rest);
        write(&mut writer, batch).await;
    }
}

/// Writes `jobs` as one batch and answers every one of them (see the module docs).
pub(crate) async fn write<W: Writer>(writer: &mut W, jobs: Vec<W::Job>) {
    let mut queue = VecDeque::from([(jobs, false)]);
    let mut unavailable = 0;
    while let Some((mut jobs, again)) = queue.pop_front() {
        if jobs.is_empty() {
            continue;
        }
        let error = match writer.write(&jobs, again).await {
            Ok(outputs) => {
                debug_assert_eq!(outputs.len(), jobs.len(), "one output per job");
                for (job, output) in jobs.into_iter().zip(outputs) {
                    writer.answer(job, Ok(output));
                }
                unavailable = 0;
                continue;
            }
            Err(Failure::Job(k, error)) if k < jobs.len() && !writer.unavailable(&error) => {
                let failed = jobs.remove(k);
                writer.answer(failed, Err(error));
                queue.push_front((jobs, true));
                continue;
            }
            Err(Failure::Job(k, error)) => (Some(k), error),
            Err(Failure::Batch(error)) => (None, error),
        };
        let (named, error) = error;
        if writer.unavailable(&error) {
            if let Some(wait) = writer.retry_after(unavailable) {
                unavailable += 1;
                tracing::warn!(error = %error, jobs = jobs.len(), "a batched write failed; retrying");
                tokio::time::sleep(wait).await;
                queue.push_front((jobs, again));
                continue;
            }
            // The job that met the error (or the first) gets it as it is, so its kind (out of
            // storage) reaches the caller; the others get copies.
            let met = named.filter(|k| *k < jobs.len()).unwrap_or(0);
            let copies: Vec<Option<W::Error>> =
                (0..jobs.len()).map(|i| (i != met).then(|| writer.copy(&error))).collect();
            let mut original = Some(error);
            for (job, copy) in jobs.into_iter().zip(copies) {
                if let Some(error) = copy.or_else(|| original.take()) {
                    writer.answer(job, Err(error));
                }
            }
        } else if jobs.len() == 1 {
            if let Some(job) = jobs.pop() {
                writer.answer(job, Err(error));
            }
        } else {
            tracing::warn!(error = %error, jobs = jobs.len(), "a batched write failed; writing its jobs one by one");
            for (i, job) in jobs.into_iter().enumerate() {
                queue.insert(i, (vec![job], true));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Jobs are numbers; a negative one breaks the transaction. `named` says whether the
    /// writer can tell which job failed. `down` makes the next writes find the database
    /// unavailable.
    #[derive(Default)]
    struct Table {
        rows: Vec<i32>,
        answers: Vec<(i32, Result<(), String>)>,
        named: bool,
        down: u32,
        writes: u32,
        retry: bool,
    }

    impl Writer for Table {
        type Job = i32;
        type Output = ();
        type Error = String;

        async fn write(&mut self, jobs: &[i32], _again: bool) -> Result<Vec<()>, Failure<String>> {
            self.writes += 1;
            if self.down > 0 {
                self.down -= 1;
                return Err(Failure::Batch("unavailable".into()));
            }
            match jobs.iter().position(|j| *j < 0) {
                Some(k) if self.named => Err(Failure::Job(k, format!("job {} is bad", jobs[k]))),
                Some(k) => Err(Failure::Batch(format!("job {} is bad", jobs[k]))),
                None => {
                    self.rows.extend(jobs);
                    Ok(vec![(); jobs.len()])
                }
            }
        }

        fn answer(&mut self, job: i32, result: Result<(), String>) {
            self.answers.push((job, result));
        }

        fn unavailable(&self, error: &String) -> bool {
            error == "unavailable"
        }

        fn copy(&self, error: &String) -> String {
            error.clone()
        }

        fn retry_after(&self, _attempt: u32) -> Option<Duration> {
            self.retry.then_some(Duration::ZERO)
        }
    }

    fn answer_of(table: &Table, job: i32) -> Vec<&Result<(), String>> {
        table.answers.iter().filter(|(j, _)| *j == job).map(|(_, r)| r).collect()
    }

    #[tokio::test]
    async fn a_failing_job_is_answered_alone_and_the_others_commit() {
        for named in [false, true] {
            let mut table = Table { named, ..Table::default() };
            write(&mut table, vec![1, 2, -3, 4]).await;
            assert_eq!(table.rows, vec![1, 2, 4], "named: {named}");
            assert_eq!(answer_of(&table, -3), vec![&Err("job -3 is bad".to_owned())]);
            for ok in [1, 2, 4] {
                assert_eq!(answer_of(&table, ok), vec![&Ok(())]);
            }
        }
    }

    #[tokio::test]
    async fn a_job_that_fails_alone_is_not_run_again() {
        let mut table = Table::default();
        write(&mut table, vec![-1]).await;
        assert_eq!(table.writes, 1);
        assert_eq!(answer_of(&table, -1), vec![&Err("job -1 is bad".to_owned())]);
    }

    #[tokio::test]
    async fn an_unavailable_database_fails_every_job_or_waits() {
        let mut table = Table { down: 1, ..Table::default() };
        write(&mut table, vec![1, 2]).await;
        assert_eq!(table.writes, 1, "not once per job: the database is down for all of them");
        assert_eq!(answer_of(&table, 2), vec![&Err("unavailable".to_owned())]);

        let mut table = Table { down: 3, retry: true, ..Table::default() };
        write(&mut table, vec![1, 2]).await;
        assert_eq!(table.rows, vec![1, 2]);
        assert_eq!(table.writes, 4);
    }

    #[tokio::test]
    async fn run_takes_what_is_waiting_up_to_the_cap() {
        let (tx, rx) = mpsc::channel(16);
        for j in [1, 2, -3, 4, 5] {
            tx.send(j).await.unwrap();
        }
        drop(tx);
        let table = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        struct Shared(std::sync::Arc<std::sync::Mutex<Vec<Vec<i32>>>>);
        impl Writer for Shared {
            type Job = i32;
            type Output = ();
            type Error = String;
            async fn write(&mut self, jobs: &[i32], _again: bool) -> Result<Vec<()>, Failure<String>> {
                self.0.lock().unwrap().push(jobs.to_vec());
                Ok(vec![(); jobs.len()])
            }
            fn answer(&mut self, _: i32, _: Result<(), String>) {}
            fn unavailable(&self, _: &String) -> bool {
                false
            }
            fn copy(&self, e: &String) -> String {
                e.clone()
            }
        }
        run(Shared(table.clone()), rx, 2).await;
        assert_eq!(*table.lock().unwrap(), vec![vec![1, 2], vec![-3, 4], vec![5]]);
    }
}
