//! Embedding both engines with the tokio adapter, in memory: the code of the README's
//! "Embedding" section (`cargo run --example embed`). The demo (`examples/demo/`) does the same
//! over real WebSockets with storage.

use hibernating_ws::driver::tokio::{
    AppEvents, ClientOutput, GatewayDriver, GatewayIo, Outbox, QueueLimits, RunnerDriver,
    RunnerHandle, RunnerIo, TokioClock, outbox,
};
use hibernating_ws::gateway::{Frame, Gateway, GatewayConfig, OpenRequest, RouteId};
use hibernating_ws::runner::{Action, Runner, RunnerConfig};
use hibernating_ws::wire::{GatewayId, RequestId};

// Gateway side: where runner-bound frames and storage requests go. Client-bound actions go to
// each client's `ClientEvents`; the driver handles them.
struct GatewaySide {
    to_runner: Outbox<Frame>, // drained by your runner connection's writer (WebSocket, pub/sub…)
}

impl GatewayIo for GatewaySide {
    fn publish(&mut self, _route: RouteId, _request: RequestId, frame: Frame) {
        // A link that does not drain overflows its outbox: drop the link then.
        let _ = self.to_runner.push(frame);
    }
    fn request_wake(&mut self, _request: RequestId, _actor: String) {
        // Start the actor on a runner, then `gw.call(|g, now| g.wake(now, request, route))`.
    }
    fn upsert_hibernating_record(&mut self, _request: RequestId, _actor: String) {
        // Write the record, then `gw.call(|g, now| g.hibernating_record_upserted(now, request))`.
    }
    fn delete_hibernating_record(&mut self, _request: RequestId, _actor: String) {}
}

// Runner side: gateway-bound frames. Everything else goes to the app through `AppEvents`.
struct RunnerSide {
    to_gateway: Outbox<Vec<u8>>,
}

impl RunnerIo for RunnerSide {
    fn publish(&mut self, _gateway: GatewayId, frame: Vec<u8>) {
        let _ = self.to_gateway.push(frame);
    }
}

/// The actor: accepts sockets, echoes messages, persists (here: instantly) and reports it.
async fn app(runner: RunnerHandle, mut actions: AppEvents) {
    // The app, for each action of its `AppEvents`:
    while let Some(action) = actions.recv().await {
        let _ = runner.call(|r, now| match action {
            Action::Open { socket, .. } => {
                let _ = r.accept(now, socket, true);
            }
            Action::Message {
                socket,
                data,
                binary,
                ..
            } => {
                let _ = r.send(now, socket, &data, binary);
            }
            Action::Persist {
                socket,
                server_index,
                ..
            } => {
                // Write the socket's metadata and index durably, then:
                let _ = r.persisted(now, socket, server_index);
            }
            _ => {}
        });
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn core::error::Error>> {
    let clock = TokioClock::new();
    let (to_runner, mut runner_inbox) = outbox(QueueLimits::LINK);
    let (to_gateway, mut gateway_inbox) = outbox(QueueLimits::LINK);

    // Each engine runs in the task that hands it an input; one task per engine for its timer.
    let gateway = Gateway::new(GatewayConfig::default(), GatewayId(*b"gw01"), clock.now())?;
    let (gw, gw_task) = GatewayDriver::spawn(gateway, GatewaySide { to_runner }, clock);
    let runner = Runner::new(RunnerConfig::default(), clock.now())?;
    let (rn, app_events, rn_task) = RunnerDriver::spawn(runner, RunnerSide { to_gateway }, clock);

    // The transport: frames both ways, a batch at a time (here in memory; WebSockets in the
    // demo, where the reader hands each frame in place and the writer flushes once per batch).
    let rn2 = rn.clone();
    tokio::spawn(async move {
        let mut batch = Vec::new();
        while runner_inbox.recv_many(&mut batch).await > 0 {
            for frame in batch.drain(..) {
                let _ = rn2.frame(frame.as_ref()).await;
            }
        }
    });
    let gw2 = gw.clone();
    tokio::spawn(async move {
        let mut batch = Vec::new();
        while gateway_inbox.recv_many(&mut batch).await > 0 {
            for frame in batch.drain(..) {
                let _ = gw2.runner_frame(RouteId(1), &frame);
            }
        }
    });

    // The actor starts on the runner (nothing to restore), then the app runs.
    rn.call(|r, now| r.actor_starting(now, "actor-1", Vec::new()))??;
    rn.call(|r, now| r.restore(now, "actor-1", Vec::new()))??;
    tokio::spawn(app(rn.clone(), app_events));

    // A client connects. Feed what it sends to `sender` (it waits while the client must not be
    // read), write what `events` yields to it.
    let open = OpenRequest::new("actor-1", "/ws")?;
    let (mut sender, mut events) = gw.open(RequestId(*b"req1"), RouteId(1), open)?;
    sender.message(b"hello", false).await?;
    if let Some(ClientOutput::Message { data, .. }) = events.recv().await {
        println!("echo: {}", String::from_utf8_lossy(&data));
    }
    sender.close(None)?;

    gw.shutdown();
    rn.shutdown();
    let gateway = gw_task.await?;
    let runner = rn_task.await?;
    println!(
        "gateway: {} sent, {} closed; runner: {} delivered",
        gateway.stats().messages_sent,
        gateway.stats().closed,
        runner.stats().delivered
    );
    Ok(())
}
