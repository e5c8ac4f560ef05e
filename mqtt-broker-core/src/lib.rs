//! Embeddable tokio MQTT broker (work in progress).
