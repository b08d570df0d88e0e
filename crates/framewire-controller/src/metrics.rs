//! The controller's part of `/metrics`: its nodes, and per edge the share
//! of frames dropped over the alert window and whether that raised an
//! alert, in the Prometheus text format (appended to the node's own).

use std::fmt::Write as _;

use framewire_net::metrics::escape_label;

use crate::model::CurrentGraph;

/// The controller's metrics for `graph`.
pub fn metrics_text(graph: &CurrentGraph) -> String {
    let mut out = String::new();
    let online = graph.nodes.iter().filter(|n| n.online).count();
    family(
        &mut out,
        "framewire_controller_nodes",
        "Nodes the controller knows, by state.",
    );
    let _ = writeln!(out, "framewire_controller_nodes{{state=\"online\"}} {online}");
    let _ = writeln!(
        out,
        "framewire_controller_nodes{{state=\"offline\"}} {}",
        graph.nodes.len() - online
    );
    family(
        &mut out,
        "framewire_controller_alerts",
        "Edges in alert now: they drop more than the alert share of their frames over the alert window.",
    );
    let alerts = graph.edges.iter().filter(|e| e.alert.is_some()).count();
    let _ = writeln!(out, "framewire_controller_alerts {alerts}");
    let label = |e: &crate::model::EdgeView| {
        format!(
            "edge=\"{}\",from=\"{}\",stream=\"{}\",to=\"{}\"",
            escape_label(&e.id),
            escape_label(&e.upstream),
            escape_label(&e.stream),
            escape_label(&e.downstream)
        )
    };
    family(
        &mut out,
        "framewire_controller_edge_drop_share",
        "Frames an edge dropped over those offered in the alert window (0 to 1).",
    );
    for e in &graph.edges {
        let _ = writeln!(
            out,
            "framewire_controller_edge_drop_share{{{}}} {}",
            label(e),
            e.drop_share
        );
    }
    family(
        &mut out,
        "framewire_controller_edge_alert",
        "1 while the edge drops more than the alert share of its frames over the alert window.",
    );
    for e in &graph.edges {
        let _ = writeln!(
            out,
            "framewire_controller_edge_alert{{{}}} {}",
            label(e),
            u8::from(e.alert.is_some())
        );
    }
    out
}

fn family(out: &mut String, name: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} gauge");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{EdgeView, NodeView};

    #[test]
    fn alerts_and_drop_shares_are_gauges_per_edge() {
        let edge = |to: &str, share: f64, alert: bool| EdgeView {
            id: format!("{to}/cam"),
            upstream: "lab:src".into(),
            stream: "cam".into(),
            downstream: to.into(),
            drop_share: share,
            alert: alert.then(|| "dropped 30 %".into()),
            ..EdgeView::default()
        };
        let graph = CurrentGraph {
            nodes: vec![
                NodeView {
                    name: "lab:src".into(),
                    online: true,
                    ..NodeView::default()
                },
                NodeView::default(),
            ],
            edges: vec![edge("lab:a", 0.3, true), edge("lab:\"b\"", 0.0, false)],
            ..CurrentGraph::default()
        };
        let text = metrics_text(&graph);
        for line in [
            "framewire_controller_nodes{state=\"online\"} 1",
            "framewire_controller_nodes{state=\"offline\"} 1",
            "framewire_controller_alerts 1",
            "framewire_controller_edge_drop_share{edge=\"lab:a/cam\",from=\"lab:src\",stream=\"cam\",to=\"lab:a\"} 0.3",
            "framewire_controller_edge_alert{edge=\"lab:a/cam\",from=\"lab:src\",stream=\"cam\",to=\"lab:a\"} 1",
            "framewire_controller_edge_alert{edge=\"lab:\\\"b\\\"/cam\",from=\"lab:src\",stream=\"cam\",to=\"lab:\\\"b\\\"\"} 0",
        ] {
            assert!(text.lines().any(|l| l == line), "no `{line}` in\n{text}");
        }
    }
}
