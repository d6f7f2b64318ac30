use std::io::{Cursor, Read, Write};

use reqwest::Method;

use crate::harness::{expect_error, raw_json, TestServer};

pub fn tar_with(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in files {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, name, *data).unwrap();
    }
    b.into_inner().unwrap()
}

#[tokio::test]
async fn upload_dedupe_and_download() {
    let srv = TestServer::start().await;
    let (owner, _) = srv.owner().await;
    let (member, _) = srv.member(&owner, "fay").await;
    let tar = tar_with(&[("main.tf", b"# hello")]);

    let (status, first) = owner
        .upload("application/x-tar", tar.clone())
        .await
        .unwrap();
    assert_eq!(status, 201);
    let (status, again) = owner
        .upload("application/x-tar", tar.clone())
        .await
        .unwrap();
    assert_eq!(
        (status.as_u16(), again.hash),
        (200, first.hash),
        "same bytes, same uploader: same file"
    );
    let (status, theirs) = member
        .upload("application/x-tar", tar.clone())
        .await
        .unwrap();
    assert_eq!(status, 201, "deduplicated per uploader only");
    assert_ne!(theirs.hash, first.hash);

    let raw = owner
        .send(
            Method::GET,
            &format!("/api/v2/files/{}", first.hash),
            None,
            &[],
        )
        .await
        .unwrap();
    assert_eq!(raw.status, 200);
    assert_eq!(
        raw.headers.get("content-type").unwrap(),
        "application/x-tar"
    );
    assert_eq!(raw.body, tar);

    let raw = owner
        .send(
            Method::GET,
            &format!("/api/v2/files/{}?format=zip", first.hash),
            None,
            &[],
        )
        .await
        .unwrap();
    assert_eq!(raw.headers.get("content-type").unwrap(), "application/zip");
    let mut zip = zip::ZipArchive::new(Cursor::new(raw.body)).unwrap();
    let mut content = String::new();
    zip.by_name("main.tf")
        .unwrap()
        .read_to_string(&mut content)
        .unwrap();
    assert_eq!(content, "# hello");

    // Nobody else's file is visible to a member; bad and unknown ids.
    let (status, _) = raw_json(
        &member,
        "GET",
        &format!("/api/v2/files/{}", first.hash),
        None,
    )
    .await;
    assert_eq!(status, 404);
    let (status, body) = raw_json(&owner, "GET", "/api/v2/files/xyz", None).await;
    assert_eq!(
        (status, body["message"].as_str()),
        (400, Some("Invalid UUID \"xyz\"."))
    );
    let (status, _) = raw_json(
        &owner,
        "GET",
        &format!("/api/v2/files/{}", uuid::Uuid::new_v4()),
        None,
    )
    .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn zip_uploads_are_stored_as_tar_and_other_types_refused() {
    let srv = TestServer::start().await;
    let (owner, _) = srv.owner().await;
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    w.start_file("echo.json", zip::write::SimpleFileOptions::default())
        .unwrap();
    w.write_all(b"{}").unwrap();
    let zip = w.finish().unwrap().into_inner();
    let (status, up) = owner.upload("application/zip", zip).await.unwrap();
    assert_eq!(status, 201);
    let raw = owner
        .send(
            Method::GET,
            &format!("/api/v2/files/{}", up.hash),
            None,
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        raw.headers.get("content-type").unwrap(),
        "application/x-tar"
    );
    let mut a = tar::Archive::new(Cursor::new(raw.body));
    let names: Vec<String> = a
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect();
    assert_eq!(names, ["echo.json"]);

    expect_error(
        owner
            .upload("application/json", b"{}".to_vec())
            .await
            .unwrap_err(),
        400,
        "Unsupported content type header \"application/json\".",
    );
    expect_error(
        owner
            .upload("application/zip", b"not a zip".to_vec())
            .await
            .unwrap_err(),
        400,
        "Failed to convert zip file to tar.",
    );
    let (status, _) = raw_json(&srv.client, "POST", "/api/v2/files", None).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn uploads_over_100_mib_are_refused() {
    let srv = TestServer::start().await;
    let (owner, _) = srv.owner().await;
    let err = owner
        .upload("application/x-tar", vec![0u8; (100 << 20) + 1])
        .await
        .unwrap_err();
    expect_error(err, 413, "File is too large.");
}
