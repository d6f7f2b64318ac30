//! Templates for tests and benches: echo archives, versions, waiting for their imports.

use std::time::{Duration, Instant};

use codersdk::{
    Client, CreateTemplateRequest, CreateTemplateVersionRequest, Template, TemplateVersion,
};
use serde_json::Value;
use uuid::Uuid;

/// A tar archive holding `echo.json` (see docs/echo-provisioner.md).
pub fn echo_tar(echo: &Value) -> Vec<u8> {
    let data = serde_json::to_vec(echo).unwrap();
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_ustar();
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_entry_type(tar::EntryType::Regular);
    b.append_data(&mut h, "echo.json", data.as_slice()).unwrap();
    b.into_inner().unwrap()
}

/// Uploads an echo archive and creates a version from it (not waiting for the import).
pub async fn create_version(
    client: &Client,
    org: Uuid,
    echo: &Value,
    template: Option<Uuid>,
) -> TemplateVersion {
    create_version_with(client, org, echo, |r| r.template_id = template).await
}

pub async fn create_version_with(
    client: &Client,
    org: Uuid,
    echo: &Value,
    configure: impl FnOnce(&mut CreateTemplateVersionRequest),
) -> TemplateVersion {
    let (_, file) = client
        .upload("application/x-tar", echo_tar(echo))
        .await
        .expect("uploading");
    let mut req = CreateTemplateVersionRequest {
        storage_method: "file".into(),
        provisioner: "echo".into(),
        file_id: Some(file.hash),
        ..Default::default()
    };
    configure(&mut req);
    client
        .create_template_version(org, &req)
        .await
        .expect("creating a template version")
}

/// Polls the version until its import job has ended.
pub async fn wait_import(client: &Client, version: Uuid) -> TemplateVersion {
    let started = Instant::now();
    loop {
        let v = client
            .template_version(version)
            .await
            .expect("reading the version");
        if matches!(v.job.status.as_str(), "succeeded" | "failed" | "canceled") {
            return v;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "import did not finish: {:?}",
            v.job
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls until the version's job reaches `status`.
pub async fn wait_status(client: &Client, version: Uuid, status: &str) -> TemplateVersion {
    let started = Instant::now();
    loop {
        let v = client
            .template_version(version)
            .await
            .expect("reading the version");
        if v.job.status == status {
            return v;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "job never became {status}: {:?}",
            v.job
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// An imported version and a template made from it.
pub async fn create_template(
    client: &Client,
    org: Uuid,
    name: &str,
    echo: &Value,
) -> (Template, TemplateVersion) {
    let v = create_version(client, org, echo, None).await;
    let v = wait_import(client, v.id).await;
    assert_eq!(v.job.status, "succeeded", "{:?}", v.job);
    let t = template_from(client, org, name, v.id).await;
    (t, v)
}

/// A template `name` whose active version is `version`.
pub async fn template_from(client: &Client, org: Uuid, name: &str, version: Uuid) -> Template {
    client
        .create_template(
            org,
            &CreateTemplateRequest {
                name: name.into(),
                template_version_id: Some(version),
                ..Default::default()
            },
        )
        .await
        .unwrap_or_else(|e| panic!("creating template {name}: {e}"))
}
