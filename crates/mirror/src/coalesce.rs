//! Coalescing questions that need a round trip: callers that arrive while one batch of them is
//! being answered wait for it to end and then go together in the next batch, which one of them
//! runs. There is no timer: idle, a caller runs a batch of one at once; under load, a batch holds
//! everything that arrived during the previous one (up to a limit), so the mirror and the RPC see
//! one statement and one JSON-RPC batch instead of one per caller.
//!
//! A caller waits for the batch in flight and then for its own, behind at most the callers queued
//! before it (each batch takes up to the limit, oldest first). A caller that goes away (its future
//! dropped) while running a batch hands the lead on, and the questions of that batch are asked
//! again by their callers, at the front of the queue: nothing waits for an answer that will not
//! come. `run` must answer every question, in order; a batch answered otherwise gives no caller
//! any answer (they ask again) and the runner panics: a misplaced answer is never delivered.

use std::{collections::VecDeque, future::Future, sync::Mutex};

use tokio::sync::oneshot;

/// What a waiting caller is told: its answer, or that it runs the next batch (with its question
/// back).
enum Turn<Q, A> {
    Answer(A),
    Lead(Q),
}

struct Queue<Q, A> {
    /// A batch is being run, or its runner is being woken to run one.
    leading: bool,
    waiting: VecDeque<(Q, oneshot::Sender<Turn<Q, A>>)>,
}

/// Batches questions of type `Q` answered by `A` (see the module documentation).
pub(crate) struct Coalescer<Q, A> {
    queue: Mutex<Queue<Q, A>>,
    max_batch: usize,
}

impl<Q: Clone, A> Coalescer<Q, A> {
    /// A coalescer whose batches hold at most `max_batch` questions.
    pub(crate) fn new(max_batch: usize) -> Self {
        Self {
            queue: Mutex::new(Queue {
                leading: false,
                waiting: VecDeque::new(),
            }),
            max_batch: max_batch.max(1),
        }
    }

    /// The answer to `question`: `run` answers a batch (one answer per question, in order) and is
    /// called by this caller only if it leads a batch.
    pub(crate) async fn ask<F, Fut>(&self, question: Q, run: F) -> A
    where
        F: FnOnce(Vec<Q>) -> Fut,
        Fut: Future<Output = Vec<A>>,
    {
        let mut again = false;
        let mine = loop {
            let (tx, rx) = oneshot::channel();
            {
                let mut queue = self.lock();
                if !queue.leading {
                    queue.leading = true;
                    break question;
                }
                // Asked again (its batch was dropped): it keeps its place ahead of newcomers.
                if again {
                    queue.waiting.push_front((question.clone(), tx));
                } else {
                    queue.waiting.push_back((question.clone(), tx));
                }
            }
            let mut wait = Waiting {
                rx,
                coalescer: self,
                received: false,
            };
            let turn = (&mut wait.rx).await;
            wait.received = true;
            match turn {
                Ok(Turn::Answer(answer)) => return answer,
                Ok(Turn::Lead(q)) => break q,
                // The batch holding the question was dropped with its runner: ask again.
                Err(_) => {
                    again = true;
                    continue;
                }
            }
        };
        let lead = Leading(self);
        let (mut questions, senders): (Vec<Q>, Vec<_>) = {
            let mut queue = self.lock();
            let n = queue.waiting.len().min(self.max_batch - 1);
            queue.waiting.drain(..n).unzip()
        };
        questions.insert(0, mine);
        let asked = questions.len();
        let answers = run(questions).await;
        // Answers are matched to callers by position only: a batch answered with another count
        // delivers nothing (the waiting callers ask again when their senders drop).
        assert_eq!(
            answers.len(),
            asked,
            "a batch must answer each of its questions"
        );
        let mut answers = answers.into_iter();
        let own = answers.next();
        for (tx, answer) in senders.into_iter().zip(answers) {
            // A caller that went away needs no answer.
            let _ = tx.send(Turn::Answer(answer));
        }
        drop(lead);
        match own {
            Some(answer) => answer,
            None => unreachable!("a batch holds its runner's own question"),
        }
    }

    /// Gives the lead to the first waiting caller still there, or marks the coalescer idle.
    fn hand_off(&self) {
        let mut queue = self.lock();
        while let Some((question, tx)) = queue.waiting.pop_front() {
            if tx.send(Turn::Lead(question)).is_ok() {
                return;
            }
        }
        queue.leading = false;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue<Q, A>> {
        // The queue's invariants hold between statements, so a poisoned lock is still usable.
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// While alive, its holder runs a batch; dropped (done or cancelled), it hands the lead on.
struct Leading<'a, Q: Clone, A>(&'a Coalescer<Q, A>);

impl<Q: Clone, A> Drop for Leading<'_, Q, A> {
    fn drop(&mut self) {
        self.0.hand_off();
    }
}

/// A caller waiting for its turn. Dropped before it read its turn (the caller went away), it
/// closes its channel and, if the lead had already been handed to it, hands it on.
struct Waiting<'a, Q: Clone, A> {
    rx: oneshot::Receiver<Turn<Q, A>>,
    coalescer: &'a Coalescer<Q, A>,
    received: bool,
}

impl<Q: Clone, A> Drop for Waiting<'_, Q, A> {
    fn drop(&mut self) {
        if self.received {
            return;
        }
        self.rx.close();
        if let Ok(Turn::Lead(_)) = self.rx.try_recv() {
            self.coalescer.hand_off();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{
        sync::{
            Arc,
            atomic::{AtomicUsize, Ordering},
        },
        time::Duration,
    };

    use tokio::sync::Notify;

    use super::*;

    /// Records the batches it was asked to run; each one is held until `release` is notified.
    #[derive(Default)]
    struct Runner {
        batches: Mutex<Vec<Vec<u32>>>,
        release: Notify,
        started: AtomicUsize,
    }

    impl Runner {
        async fn run(&self, questions: Vec<u32>) -> Vec<u32> {
            self.batches.lock().unwrap().push(questions.clone());
            self.started.fetch_add(1, Ordering::SeqCst);
            self.release.notified().await;
            questions.into_iter().map(|q| q * 10).collect()
        }

        fn batches(&self) -> Vec<Vec<u32>> {
            self.batches.lock().unwrap().clone()
        }

        async fn wait_started(&self, n: usize) {
            while self.started.load(Ordering::SeqCst) < n {
                tokio::task::yield_now().await;
            }
        }
    }

    /// Asks `q` on a task of its own, answered by `runner`.
    fn spawn_ask(
        c: &Arc<Coalescer<u32, u32>>,
        runner: &Arc<Runner>,
        q: u32,
    ) -> tokio::task::JoinHandle<u32> {
        let (c, runner) = (c.clone(), runner.clone());
        tokio::spawn(async move { c.ask(q, |b| runner.run(b)).await })
    }

    fn waiting(c: &Coalescer<u32, u32>) -> usize {
        c.lock().waiting.len()
    }

    async fn wait_waiting(c: &Coalescer<u32, u32>, n: usize) {
        while waiting(c) < n {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test]
    async fn an_idle_caller_runs_alone_and_at_once() {
        let c = Coalescer::new(8);
        let runner = Runner::default();
        runner.release.notify_one();
        assert_eq!(c.ask(3, |q| runner.run(q)).await, 30);
        assert_eq!(runner.batches(), vec![vec![3]]);
        assert!(!c.lock().leading);
    }

    #[tokio::test]
    async fn callers_arriving_during_a_batch_share_the_next_and_each_get_their_answer() {
        let c = Arc::new(Coalescer::new(8));
        let runner = Arc::new(Runner::default());
        let ask = |q: u32| spawn_ask(&c, &runner, q);
        let first = ask(1);
        runner.wait_started(1).await;
        let rest: Vec<_> = (2..=5).map(ask).collect();
        wait_waiting(&c, 4).await;
        runner.release.notify_one();
        assert_eq!(first.await.unwrap(), 10);
        runner.wait_started(2).await;
        runner.release.notify_one();
        let mut answers = Vec::new();
        for h in rest {
            answers.push(h.await.unwrap());
        }
        assert_eq!(answers, vec![20, 30, 40, 50]);
        let batches = runner.batches();
        assert_eq!(batches.len(), 2, "{batches:?}");
        assert_eq!(batches[0], vec![1]);
        let mut second = batches[1].clone();
        second.sort_unstable();
        assert_eq!(second, vec![2, 3, 4, 5]);
        assert!(!c.lock().leading);
    }

    #[tokio::test]
    async fn a_batch_holds_at_most_the_limit() {
        let c = Arc::new(Coalescer::new(2));
        let runner = Arc::new(Runner::default());
        let ask = |q: u32| spawn_ask(&c, &runner, q);
        let first = ask(1);
        runner.wait_started(1).await;
        let rest: Vec<_> = (2..=6).map(ask).collect();
        wait_waiting(&c, 5).await;
        for n in 1..=4 {
            runner.wait_started(n).await;
            runner.release.notify_one();
        }
        assert_eq!(first.await.unwrap(), 10);
        for (h, q) in rest.into_iter().zip(2..) {
            assert_eq!(h.await.unwrap(), q * 10);
        }
        let sizes: Vec<usize> = runner.batches().iter().map(Vec::len).collect();
        assert_eq!(sizes, vec![1, 2, 2, 1]);
    }

    #[tokio::test]
    async fn a_runner_that_goes_away_hands_on_the_lead_and_its_batch_is_asked_again() {
        let c = Arc::new(Coalescer::new(8));
        let runner = Arc::new(Runner::default());
        let ask = |q: u32| spawn_ask(&c, &runner, q);
        let first = ask(1);
        runner.wait_started(1).await;
        let second = ask(2);
        wait_waiting(&c, 1).await;
        // 2 leads the next batch, held; 3 and 4 wait for it.
        runner.release.notify_one();
        assert_eq!(first.await.unwrap(), 10);
        runner.wait_started(2).await;
        let later: Vec<_> = [3, 4].into_iter().map(ask).collect();
        wait_waiting(&c, 2).await;
        // 2's caller goes away mid-batch: 3 or 4 leads; nobody is left waiting forever.
        second.abort();
        assert!(second.await.unwrap_err().is_cancelled());
        runner.wait_started(3).await;
        runner.release.notify_one();
        for (h, q) in later.into_iter().zip(3..) {
            let answer = tokio::time::timeout(Duration::from_secs(10), h).await;
            assert_eq!(answer.expect("answered").unwrap(), q * 10);
        }
        assert!(!c.lock().leading);
    }

    #[tokio::test]
    async fn a_waiter_whose_batch_was_dropped_asks_again() {
        let c = Arc::new(Coalescer::new(8));
        let runner = Arc::new(Runner::default());
        let ask = |q: u32| spawn_ask(&c, &runner, q);
        let first = ask(1);
        runner.wait_started(1).await;
        let (second, third) = (ask(2), ask(3));
        wait_waiting(&c, 2).await;
        runner.release.notify_one();
        assert_eq!(first.await.unwrap(), 10);
        // One of 2 and 3 leads a batch holding both; cancel the leader: the other must be
        // answered by a batch of its own.
        runner.wait_started(2).await;
        let batch = runner.batches()[1].clone();
        assert_eq!(batch.len(), 2);
        let (leader, other, other_q) = if batch[0] == 2 {
            (second, third, 3)
        } else {
            (third, second, 2)
        };
        leader.abort();
        let _ = leader.await;
        runner.wait_started(3).await;
        runner.release.notify_one();
        let answer = tokio::time::timeout(Duration::from_secs(10), other).await;
        assert_eq!(answer.expect("answered").unwrap(), other_q * 10);
        assert_eq!(runner.batches()[2], vec![other_q]);
    }

    #[tokio::test]
    async fn a_caller_that_goes_away_holding_an_unread_lead_hands_it_on() {
        use std::task::{Context, Poll, Waker};
        let c = Coalescer::new(8);
        let runner = Runner::default();
        let mut cx = Context::from_waker(Waker::noop());
        let mut first = Box::pin(c.ask(1, |q| runner.run(q)));
        let mut second = Box::pin(c.ask(2, |q| runner.run(q)));
        assert!(first.as_mut().poll(&mut cx).is_pending());
        assert!(second.as_mut().poll(&mut cx).is_pending());
        runner.release.notify_one();
        // The first batch ends and hands the lead to the second caller, which never reads it.
        assert_eq!(first.as_mut().poll(&mut cx), Poll::Ready(10));
        drop(second);
        runner.release.notify_one();
        let third = tokio::time::timeout(Duration::from_secs(10), c.ask(3, |q| runner.run(q)));
        assert_eq!(third.await.expect("not left waiting"), 30);
    }

    #[tokio::test]
    async fn a_batch_answered_short_delivers_no_answer_and_its_callers_ask_again() {
        use std::sync::atomic::AtomicBool;
        let c = Arc::new(Coalescer::new(8));
        // The first batch is held until the others queue; later ones answer at once.
        let runner = Arc::new(Runner::default());
        let short = Arc::new(AtomicBool::new(true));
        let ask = |q: u32| {
            let (c, runner, short) = (c.clone(), runner.clone(), short.clone());
            tokio::spawn(async move {
                c.ask(q, |b| async move {
                    if b == [1] {
                        return runner.run(b).await;
                    }
                    let mut answers: Vec<u32> = b.iter().map(|q| q * 10).collect();
                    // Once, a multi-question batch loses its first answer: were the rest
                    // delivered by position, each caller would get its neighbour's.
                    if b.len() > 1 && short.swap(false, Ordering::SeqCst) {
                        answers.remove(0);
                    }
                    answers
                })
                .await
            })
        };
        let first = ask(1);
        runner.wait_started(1).await;
        let rest: Vec<_> = (2..=4).map(ask).collect();
        wait_waiting(&c, 3).await;
        runner.release.notify_one();
        assert_eq!(first.await.unwrap(), 10);
        let mut answered = Vec::new();
        for (h, q) in rest.into_iter().zip(2u32..) {
            match tokio::time::timeout(Duration::from_secs(10), h)
                .await
                .expect("ended")
            {
                Ok(answer) => {
                    assert_eq!(answer, q * 10, "no caller gets another's answer");
                    answered.push(q);
                }
                Err(e) => assert!(e.is_panic(), "the short batch's runner panics"),
            }
        }
        assert!(!short.load(Ordering::SeqCst), "a short batch was answered");
        assert_eq!(
            answered.len(),
            2,
            "the others asked again and were answered"
        );
        assert!(!c.lock().leading);
    }
}
