//! A NATS JetStream stream as a flow trigger: each message starts one run,
//! acknowledged only once the run is committed; a host that committed runs
//! and died before acknowledging their messages does not make JetStream's
//! redelivery start them again; a message that is a CloudEvent is the run's
//! trigger as it is; a deploy without NATS is refused with the fix.
//!
//! Needs `JUNCTION_TEST_NATS_URL` (`.ci/run` sets it and starts
//! `nats-server -js` when it is down); without it the test says so on
//! stderr and passes. Runs are waited for by polling, never by sleeping.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use async_nats::jetstream::{self, consumer, stream};
use junction_flows::{FlowOptions, Flows};
use junction_tests::{eventually, runtime, test_limits};
use serde_json::json;
use tokio_stream::StreamExt;

fn options() -> FlowOptions {
    FlowOptions {
        workers: 2,
        lease: Duration::from_secs(5),
        idle_poll: Duration::from_millis(50),
    }
}

fn flow(stream: &str, subject: &str) -> String {
    format!(
        "trigger = {{ type = \"stream\", stream = \"{stream}\", subject = \"{subject}\", deliver = \"all\", ack_wait_ms = 2000 }}\n\
         [[steps]]\nid = \"deal\"\nmap = '{{deal: .trigger.data.deal, type: .trigger.type}}'\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_starts_one_run_per_message_even_when_a_host_died_before_acknowledging() {
    let Ok(nats) = std::env::var("JUNCTION_TEST_NATS_URL") else {
        eprintln!(
            "SKIPPED (stream triggers over NATS JetStream): JUNCTION_TEST_NATS_URL is not set"
        );
        return;
    };
    let unique = uuid::Uuid::new_v4().simple().to_string();
    let name = format!("JT_TRIGGER_{}", &unique[..12]);
    let root = format!("jt{}", &unique[..12]);
    let js = jetstream::new(async_nats::connect(&nats).await.unwrap());
    js.create_stream(stream::Config {
        name: name.clone(),
        subjects: vec![format!("{root}.>")],
        ..Default::default()
    })
    .await
    .unwrap();
    let mut stream = js.get_stream(&name).await.unwrap();

    // The flow's durable consumer, as the host makes it; a host that dies
    // below has taken three messages from it.
    let consumer: consumer::PullConsumer = stream
        .create_consumer(consumer::pull::Config {
            durable_name: Some("junction-deals".into()),
            filter_subject: format!("{root}.deals.>"),
            deliver_policy: consumer::DeliverPolicy::All,
            ack_policy: consumer::AckPolicy::Explicit,
            ack_wait: Duration::from_secs(2),
            ..Default::default()
        })
        .await
        .unwrap();
    for deal in 0..9 {
        let payload = json!({"deal": deal}).to_string();
        js.publish(format!("{root}.deals.won"), payload.into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
    let cloudevent = json!({
        "specversion": "1.0", "id": "crm-deal-9", "source": "/crm/acme", "type": "com.example.deal.won",
        "time": "2026-12-07T10:00:00Z", "datacontenttype": "application/json", "data": {"deal": 9},
    });
    js.publish(format!("{root}.deals.won"), cloudevent.to_string().into())
        .await
        .unwrap()
        .await
        .unwrap();
    // Not the flow's subject: no run.
    js.publish(format!("{root}.invoices.paid"), "{}".into())
        .await
        .unwrap()
        .await
        .unwrap();
    let mut taken = Vec::new();
    let mut batch = consumer.fetch().max_messages(3).messages().await.unwrap();
    while let Some(message) = batch.next().await {
        taken.push(message.unwrap());
    }
    assert_eq!(taken.len(), 3);

    // Without NATS, a stream trigger is refused with the fix.
    let bare = Flows::new(runtime(test_limits()).await, options());
    let refused = bare
        .deploy("deals", &flow(&name, &format!("{root}.deals.>")), "tests")
        .await
        .unwrap_err()
        .to_string();
    assert!(refused.contains("set `[events] nats_url`"), "{refused}");

    let flows = Flows::new(runtime(test_limits()).await, options());
    flows.spawn_workers();
    let _triggers = flows.spawn_stream_triggers(Some(&nats)).unwrap();
    flows
        .deploy("deals", &flow(&name, &format!("{root}.deals.>")), "tests")
        .await
        .unwrap();
    // The dead host committed the runs of the messages it took, and died
    // before it acknowledged them.
    let epoch = stream.info().await.unwrap().created.unix_timestamp_nanos();
    let mut committed = BTreeMap::new();
    for message in &taken {
        let seq = message.info().unwrap().stream_sequence;
        let run = flows
            .start_run_for_message(
                "deals",
                &name,
                epoch,
                seq,
                message.subject.as_str(),
                &message.payload,
            )
            .await
            .unwrap()
            .unwrap();
        assert!(!run.duplicate);
        committed.insert(seq, run.run);
    }
    drop(taken);

    // JetStream delivers the dead host's messages again after their ack
    // wait; every message ends acknowledged, with one completed run each.
    drop(consumer);
    let runs = eventually(
        "every message acknowledged and its run completed",
        Duration::from_secs(60),
        Duration::from_millis(100),
        || {
            let (flows, js, name) = (flows.clone(), js.clone(), name.clone());
            async move {
                let mut consumer: consumer::PullConsumer = js
                    .get_consumer_from_stream("junction-deals", &name)
                    .await
                    .map_err(|e| e.to_string())?;
                let info = consumer.info().await.map_err(|e| e.to_string())?.clone();
                let runs = flows.runs(Some("deals"), None, 100).await.unwrap();
                let done = runs.iter().filter(|r| r.status == "completed").count();
                // Nothing pending acknowledgement: the dead host's three
                // messages were delivered again and acknowledged by this one.
                if info.num_ack_pending == 0 && info.num_pending == 0 && done == 10 {
                    Ok(runs)
                } else {
                    Err(format!(
                        "ack pending {}, pending {}, runs {} ({done} completed)",
                        info.num_ack_pending,
                        info.num_pending,
                        runs.len()
                    ))
                }
            }
        },
    )
    .await;
    assert_eq!(runs.len(), 10, "one run per message of the flow's subject");
    let mut deals = BTreeSet::new();
    for view in &runs {
        let run = flows.run(&view.id).await.unwrap();
        let trigger = &run.trigger;
        let deal = trigger["data"]["deal"].as_i64().unwrap();
        assert!(deals.insert(deal), "deal {deal} started two runs");
        let output = &run.steps.as_ref().unwrap()[0].output;
        assert_eq!(output.as_ref().unwrap()["deal"], deal);
        if deal == 9 {
            assert_eq!(*trigger, cloudevent, "a CloudEvent is the trigger as it is");
        } else {
            assert_eq!(trigger["type"], "dev.junction.stream.message");
            assert_eq!(trigger["source"], format!("/jetstream/{name}"));
            assert_eq!(trigger["subject"], format!("{root}.deals.won"));
            let seq: u64 = trigger["id"].as_str().unwrap().parse().unwrap();
            if let Some(first) = committed.get(&seq) {
                assert_eq!(&view.id, first, "the redelivery found the dead host's run");
            }
        }
    }
    assert_eq!(deals, (0..10).collect());
    let ids: BTreeSet<&str> = runs.iter().map(|r| r.id.as_str()).collect();
    for run in committed.values() {
        assert!(ids.contains(run.as_str()), "{run} is not among {ids:?}");
    }
    js.delete_stream(&name).await.unwrap();
}
