//! Tokio MQTT client (work in progress).
