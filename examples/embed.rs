//! Embedding both engines with the tokio adapter, in memory: the code of the README's
//! "Embedding" section (`cargo run --example embed`). The demo (`examples/demo/`) does the same
//! over real WebSockets with storage.

use hibernating_ws::driver::tokio::{
    ClientOutput, GatewayDriver, GatewayIo, RunnerDriver, RunnerHandle, RunnerIo, TokioClock,
};
use hibernating_ws::gateway::{Frame, Gateway, GatewayConfig, OpenRequest, RouteId};
use hibernating_ws::runner::{Action, Runner, RunnerConfig};
use hibernating_ws::wire::{GatewayId, RequestId};
use tokio::sync::mpsc::{UnboundedSender, unbounded_channel};

// Gateway side: where runner-bound frames and storage requests go. Client-bound actions go to
// each client's `ClientEvents`; the driver handles them.
struct GatewaySide {
    to_runner: UnboundedSender<Vec<u8>>,
}

impl GatewayIo for GatewaySide {
    fn publish(&mut self, _route: RouteId, _request: RequestId, frame: Frame) {
        let _ = self.to_runner.send(frame.into_vec()); // your runner connection (pub/sub, WebSocket…)
    }
    fn request_wake(&mut self, _request: RequestId, _actor: String) {
        // Start the actor on a runner, then call `GatewayHandle::wake(request, route)`.
    }
    fn upsert_hibernating_record(&mut self, _request: RequestId, _actor: String) {
        // Write the record, then call `GatewayHandle::record_upserted(request)`.
    }
    fn delete_hibernating_record(&mut self, _request: RequestId, _actor: String) {}
}

// Runner side: gateway-bound frames, and everything else for the app.
struct RunnerSide {
    to_gateway: UnboundedSender<Vec<u8>>,
    app: UnboundedSender<Action>,
}

impl RunnerIo for RunnerSide {
    fn publish(&mut self, _gateway: GatewayId, frame: Vec<u8>) {
        let _ = self.to_gateway.send(frame);
    }
    fn app(&mut self, action: Action) {
        let _ = self.app.send(action);
    }
}

/// The actor: accepts sockets, echoes messages, persists (here: instantly) and reports it.
async fn app(runner: RunnerHandle, mut actions: tokio::sync::mpsc::UnboundedReceiver<Action>) {
    while let Some(action) = actions.recv().await {
        match action {
            Action::Open { socket, .. } => {
                let _ = runner.accept(socket, true).await;
            }
            Action::Message {
                socket,
                data,
                binary,
                ..
            } => {
                let _ = runner.send(socket, data, binary).await;
            }
            Action::Persist {
                socket,
                server_index,
                ..
            } => {
                // Write the socket's metadata and index durably, then:
                let _ = runner.persisted(socket, server_index).await;
            }
            _ => {}
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn core::error::Error>> {
    let clock = TokioClock::new();
    let (to_runner, mut runner_inbox) = unbounded_channel();
    let (to_gateway, mut gateway_inbox) = unbounded_channel();
    let (app_tx, app_rx) = unbounded_channel();

    // One task per engine.
    let gateway = Gateway::new(GatewayConfig::default(), GatewayId(*b"gw01"), clock.now())?;
    let (gw, gw_task) = GatewayDriver::spawn(gateway, GatewaySide { to_runner }, clock);
    let runner = Runner::new(RunnerConfig::default(), clock.now())?;
    let io = RunnerSide {
        to_gateway,
        app: app_tx,
    };
    let (rn, rn_task) = RunnerDriver::spawn(runner, io, clock);

    // The transport: frames both ways (here channels; WebSockets in the demo).
    let rn2 = rn.clone();
    tokio::spawn(async move {
        while let Some(frame) = runner_inbox.recv().await {
            let _ = rn2.frame(frame).await;
        }
    });
    let gw2 = gw.clone();
    tokio::spawn(async move {
        while let Some(frame) = gateway_inbox.recv().await {
            let _ = gw2.runner_frame(RouteId(1), frame).await;
        }
    });

    // The actor starts on the runner (nothing to restore), then the app runs.
    rn.actor_starting("actor-1", Vec::new()).await?;
    rn.restore("actor-1", Vec::new()).await?;
    tokio::spawn(app(rn.clone(), app_rx));

    // A client connects. Feed what it sends to `sender` (it waits while the client must not be
    // read), write what `events` yields to it.
    let open = OpenRequest {
        actor_id: "actor-1".into(),
        path: "/ws".into(),
        ..OpenRequest::default()
    };
    let (mut sender, mut events) = gw.open(RequestId(*b"req1"), RouteId(1), open).await?;
    sender.message(b"hello".to_vec(), false).await?;
    if let Some(ClientOutput::Message { data, .. }) = events.recv().await {
        println!("echo: {}", String::from_utf8_lossy(&data));
    }
    sender.close(None).await?;

    gw.shutdown().await;
    rn.shutdown().await;
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
