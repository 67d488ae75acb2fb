//! Decoding on a second core: while the engine judges what one batch of messages let out of
//! the order stage, a helper thread decodes the next batch, as replay reads ahead.
//!
//! Only decoding moves: polling stays on the loop's thread, so a rebalance callback (which
//! runs inside a poll) still finds every message polled before it taken into the order stage.
//! The helper is handed copies of the payloads (one buffer per batch, reused), since a
//! borrowed message cannot outlive the loop's turn, and it gets back the records the engine
//! judged, to free them on the thread that allocated them.

use crate::decode::{decode_line, Decoded, Format, Limits};
use crate::model::Record;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::thread::JoinHandle;

/// One batch on its way to the helper and back.
#[derive(Default)]
struct Job {
    /// The batch's payloads, one after another.
    text: Vec<u8>,
    /// Each message's end in `text`, and its format.
    ends: Vec<(usize, Format)>,
    /// What the helper made of each message, in order.
    decoded: Vec<Decoded>,
    /// Records the engine has judged, to be dropped by the helper.
    judged: Vec<Record>,
}

impl Job {
    fn decode(&mut self, limits: &Limits) {
        let mut start = 0;
        for &(end, format) in &self.ends {
            self.decoded.push(decode_line(&self.text[start..end], format, limits));
            start = end;
        }
    }
}

pub struct Decoder {
    limits: Limits,
    /// `None` once the helper is gone (it panicked); then decoding is done on the caller's thread.
    helper: Option<Helper>,
    /// Buffers of jobs that came back, reused.
    spare: Vec<Job>,
    /// Judged records waiting to go with the next job.
    judged: Vec<Record>,
}

struct Helper {
    jobs: SyncSender<Job>,
    done: Receiver<Job>,
    thread: JoinHandle<()>,
}

impl Decoder {
    pub fn start(limits: Limits) -> std::io::Result<Decoder> {
        // One job decoded while the next waits: the loop polls and sends a batch before it
        // takes the one before it back.
        let (jobs, inbox) = sync_channel::<Job>(1);
        let (outbox, done) = sync_channel::<Job>(1);
        let thread = std::thread::Builder::new().name("overreach-decode".into()).spawn(move || {
            for mut job in inbox {
                job.judged.clear();
                job.decode(&limits);
                if outbox.send(job).is_err() {
                    return;
                }
            }
        })?;
        Ok(Decoder { limits, helper: Some(Helper { jobs, done, thread }), spare: Vec::new(), judged: Vec::new() })
    }

    /// Starts decoding a batch of messages' payloads, each in its format; [`Decoder::receive`]
    /// takes the result, batches in the order they were sent.
    pub fn send<'m>(&mut self, batch: impl Iterator<Item = (&'m [u8], Format)>) {
        let Some(helper) = &self.helper else { return };
        let mut job = self.spare.pop().unwrap_or_default();
        job.text.clear();
        job.ends.clear();
        for (payload, format) in batch {
            job.text.extend_from_slice(payload);
            job.ends.push((job.text.len(), format));
        }
        job.judged = std::mem::take(&mut self.judged);
        // A send that fails (the helper is gone) is seen by `receive`.
        let _ = helper.jobs.send(job);
    }

    /// Each message's records of the oldest batch sent, which is `batch` (decoded here if the
    /// helper is gone).
    pub fn receive<'m>(&mut self, batch: impl Iterator<Item = (&'m [u8], Format)>) -> Vec<Decoded> {
        if let Some(mut job) = self.helper.as_ref().and_then(|helper| helper.done.recv().ok()) {
            let decoded = std::mem::take(&mut job.decoded);
            self.spare.push(job);
            return decoded;
        }
        self.stop_helper();
        batch.map(|(payload, format)| decode_line(payload, format, &self.limits)).collect()
    }

    /// Records the engine is done with, dropped by the helper with the next batch (here at
    /// once when there is no helper: nothing would take them).
    pub fn recycle(&mut self, judged: Vec<Record>) {
        if self.helper.is_none() {
            return;
        }
        if self.judged.is_empty() {
            self.judged = judged;
        } else {
            self.judged.extend(judged);
        }
    }

    /// The helper is gone with the jobs it held (only a panic stops it): from now on
    /// batches are decoded on the caller's thread, from the messages themselves.
    fn stop_helper(&mut self) {
        if let Some(Helper { jobs, done, thread }) = self.helper.take() {
            drop((jobs, done));
            // Its panic message, if any, was printed by the panic hook.
            if thread.join().is_err() {
                tracing::error!("The decoding thread stopped; decoding on the loop's thread from now on.");
            }
        }
    }
}

impl Drop for Decoder {
    fn drop(&mut self) {
        self.stop_helper();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(n: usize, from: usize) -> Vec<(Vec<u8>, Format)> {
        (from..from + n)
            .map(|i| {
                let line = match i % 5 {
                    0 => "{not json".to_string(),
                    _ => format!(
                        r#"{{"event_id":"e-{i}","time":{},"identity":"svc-{}","target":"s3","action":"Get{}"}}"#,
                        1_772_409_600_000i64 + i as i64,
                        i % 3,
                        i % 7
                    ),
                };
                (line.into_bytes(), Format::Native)
            })
            .collect()
    }

    fn payloads(batch: &[(Vec<u8>, Format)]) -> impl Iterator<Item = (&[u8], Format)> {
        batch.iter().map(|(payload, format)| (payload.as_slice(), *format))
    }

    fn inline(batch: &[(Vec<u8>, Format)]) -> Vec<String> {
        payloads(batch).map(|(p, f)| format!("{:?}", decode_line(p, f, &Limits::default()))).collect()
    }

    fn shown(decoded: &[Decoded]) -> Vec<String> {
        decoded.iter().map(|d| format!("{d:?}")).collect()
    }

    /// Two batches in flight at once, as the loop sends them, come back in order and decoded
    /// as decoding them here would, judged records handed back on the way.
    #[test]
    fn batches_come_back_in_the_order_sent_decoded_as_inline() {
        let mut decoder = Decoder::start(Limits::default()).unwrap();
        let batches: Vec<_> = (0..6).map(|k| batch(50 + k, k * 100)).collect();
        decoder.send(payloads(&batches[0]));
        for k in 0..batches.len() {
            if k + 1 < batches.len() {
                decoder.send(payloads(&batches[k + 1]));
            }
            let decoded = decoder.receive(payloads(&batches[k]));
            assert_eq!(shown(&decoded), inline(&batches[k]), "batch {k}");
            let judged: Vec<Record> = decoded.into_iter().flatten().filter_map(Result::ok).collect();
            assert!(!judged.is_empty());
            decoder.recycle(judged);
        }
    }

    /// Without its helper the decoder still answers, decoding on the caller's thread, even for
    /// batches sent before the helper went, and judged records handed back are not kept.
    #[test]
    fn without_its_helper_the_decoder_decodes_inline() {
        let mut decoder = Decoder::start(Limits::default()).unwrap();
        let (first, second) = (batch(30, 0), batch(40, 30));
        decoder.send(payloads(&first));
        decoder.stop_helper();
        decoder.send(payloads(&second));
        let decoded = decoder.receive(payloads(&first));
        assert_eq!(shown(&decoded), inline(&first));
        decoder.recycle(decoded.into_iter().flatten().filter_map(Result::ok).collect());
        assert!(decoder.judged.is_empty(), "{} judged records kept with no helper to drop them", decoder.judged.len());
        assert_eq!(shown(&decoder.receive(payloads(&second))), inline(&second));
    }
}
