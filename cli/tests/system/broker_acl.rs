//! The same rider rules on an external Mosquitto: a private broker started on
//! `docs/brokers/mosquitto.conf` and `mosquitto.acl`, with a password file;
//! ingest logs in through `TRACKER_MQTT_URL`'s `user:password@`, riders with
//! their own passwords, and no rider can publish for another.

use crate::backends::backend_url;
use crate::helpers::*;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A private Mosquitto, stopped (by PID) when dropped.
struct Mosquitto {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts Mosquitto on the documented configuration with `users`
/// (name, password); `None` when the machine has no Mosquitto and the
/// real-backend suites are not required.
async fn mosquitto(users: &[(&str, &str)]) -> Option<Mosquitto> {
    // The machine's Mosquitto is what CI requires; this test needs its binaries.
    backend_url("TRACKER_TEST_MQTT_URL")?;
    let dir = tempfile::tempdir().unwrap();
    // Mosquitto started as root writes its persistence file as the user `mosquitto`.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let passwd = dir.path().join("tracker.passwd");
    for (i, (user, password)) in users.iter().enumerate() {
        let mut cmd = Command::new("mosquitto_passwd");
        cmd.arg("-b");
        if i == 0 {
            cmd.arg("-c");
        }
        let ok = cmd
            .arg(&passwd)
            .arg(user)
            .arg(password)
            .stdout(Stdio::null())
            .status()
            .expect("mosquitto_passwd runs (Debian's mosquitto package)")
            .success();
        assert!(ok, "mosquitto_passwd for {user}");
    }
    let acl = dir.path().join("tracker.acl");
    std::fs::write(&acl, include_str!("../../../docs/brokers/mosquitto.acl")).unwrap();
    let port = free_port();
    let conf = include_str!("../../../docs/brokers/mosquitto.conf")
        .replace("listener 1883", &format!("listener {port} 127.0.0.1"))
        .replace(
            "/etc/mosquitto/tracker.passwd",
            &passwd.display().to_string(),
        )
        .replace("/etc/mosquitto/tracker.acl", &acl.display().to_string())
        .replace("/var/lib/mosquitto/", &format!("{}/", dir.path().display()));
    let conf_path = dir.path().join("mosquitto.conf");
    std::fs::write(&conf_path, conf).unwrap();
    let child = Command::new("mosquitto")
        .arg("-c")
        .arg(&conf_path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("mosquitto runs");
    wait_for_port(port, "mosquitto").await;
    Some(Mosquitto {
        child,
        port,
        _dir: dir,
    })
}

/// A 3.1.1 client logged in as `user`; the first CONNACK decides.
async fn phone(port: u16, user: Option<(&str, &str)>) -> Result<rumqttc::AsyncClient, String> {
    let mut o = rumqttc::MqttOptions::new(unique("acl-phone"), "127.0.0.1", port);
    if let Some((u, p)) = user {
        o.set_credentials(u, p);
    }
    let (client, mut ev) = rumqttc::AsyncClient::new(o, 64);
    let first = tokio::time::timeout(PATIENCE, async {
        loop {
            match ev.poll().await {
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(_))) => return Ok(()),
                Ok(_) => {}
                Err(e) => return Err(e.to_string()),
            }
        }
    })
    .await
    .expect("an answer to CONNECT");
    first?;
    tokio::spawn(async move { while ev.poll().await.is_ok() {} });
    Ok(client)
}

#[tokio::test]
async fn mosquitto_with_the_documented_acl_lets_riders_write_only_their_own_topics() {
    let (r1, r2) = (unique("r"), unique("r"));
    let users = [
        ("ingest", "ingest-secret"),
        (r1.as_str(), "r1-secret"),
        (r2.as_str(), "r2-secret"),
    ];
    let Some(broker) = mosquitto(&users).await else {
        return;
    };
    let url = format!("mqtt://ingest:ingest-secret@127.0.0.1:{}", broker.port);
    let group = unique("acl-ingest");
    let app = spawn_app_with(&[
        ("TRACKER_MQTT_URL", url.as_str()),
        ("TRACKER_MQTT_SHARE_GROUP", group.as_str()),
    ])
    .await;
    let (order1, _) = app.assigned_order("c1", &r1).await;
    let (order2, _) = app.assigned_order("c1", &r2).await;
    let mut ws1 = app.watch(&app.admin(), &order1).await;
    let mut ws2 = app.watch(&app.admin(), &order2).await;

    assert!(
        phone(broker.port, None).await.is_err(),
        "anonymous is refused"
    );
    assert!(
        phone(broker.port, Some((&r1, "wrong"))).await.is_err(),
        "a wrong password is refused"
    );
    let p1 = phone(broker.port, Some((&r1, "r1-secret"))).await.unwrap();

    // Ingest subscribes after its CONNACK: publish until the first fix lands.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        publish_fix(&p1, &r1, 23.13, 113.26, now_ms()).await;
        if let Ok(v) = tokio::time::timeout(Duration::from_millis(300), ws1.next()).await {
            assert_eq!(v["t"], "pos", "{v}");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no fix came through ingest's login"
        );
    }

    // r1 writing r2's topic: the broker drops it.
    publish_fix(&p1, &r2, 23.14, 113.27, now_ms()).await;
    ws2.silent_for(500).await;
    let p2 = phone(broker.port, Some((&r2, "r2-secret"))).await.unwrap();
    publish_fix(&p2, &r2, 23.15, 113.28, now_ms()).await;
    let v = ws2.next().await;
    assert_eq!(
        (v["t"].as_str(), v["lat"].as_f64()),
        (Some("pos"), Some(23.15)),
        "{v}"
    );
    app.running.shutdown().await.unwrap();
}
