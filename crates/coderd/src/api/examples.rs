//! Template examples built into the binary (`crates/coderd/templates/`), usable with
//! `example_id` when creating a template version.

use codersdk::TemplateExample;

pub struct Example {
    pub id: &'static str,
    pub name: &'static str,
    pub description: &'static str,
    pub icon: &'static str,
    pub tags: &'static [&'static str],
    pub markdown: &'static str,
    pub files: &'static [(&'static str, &'static str)],
}

const ECHO_JSON: &str = include_str!("../../templates/echo/echo.json");
const TF_MAIN: &str = include_str!("../../templates/terraform-local/main.tf");
const TF_README: &str = include_str!("../../templates/terraform-local/README.md");

pub static EXAMPLES: &[Example] = &[
    Example {
        id: "0e0c6b2a-4b8f-4d7e-9a61-5f0c2d9e1a01",
        name: "Echo",
        description: "Replays a declared build: try templates and workspaces without infrastructure.",
        icon: "/icon/coder.svg",
        tags: &["echo", "test"],
        markdown: "# Echo\n\nA template for the `echo` provisioner, which replays what `echo.json` declares.",
        files: &[("echo.json", ECHO_JSON)],
    },
    Example {
        id: "5b6f8a0e-2c3d-4e1f-8a7b-9c0d1e2f3a02",
        name: "Local Terraform",
        description: "A Terraform template that runs offline with terraform_data and local-exec.",
        icon: "/icon/terraform.svg",
        tags: &["terraform", "local"],
        markdown: TF_README,
        files: &[("main.tf", TF_MAIN), ("README.md", TF_README)],
    },
];

pub fn find(id: &str) -> Option<&'static Example> {
    EXAMPLES.iter().find(|e| e.id == id)
}

pub fn list() -> Vec<TemplateExample> {
    EXAMPLES
        .iter()
        .map(|e| TemplateExample {
            id: e.id.into(),
            url: String::new(),
            name: e.name.into(),
            description: e.description.into(),
            icon: e.icon.into(),
            tags: e.tags.iter().map(|t| t.to_string()).collect(),
            markdown: e.markdown.into(),
        })
        .collect()
}

/// The example's files as a tar archive, as if uploaded.
pub fn archive(e: &Example) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, content) in e.files {
        let mut h = tar::Header::new_ustar();
        h.set_size(content.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(0);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, name, content.as_bytes())
            .expect("writing to memory");
    }
    b.into_inner().expect("writing to memory")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn examples_have_uuid_ids_and_archives() {
        for e in EXAMPLES {
            assert!(uuid::Uuid::parse_str(e.id).is_ok());
            assert!(!archive(e).is_empty());
        }
        let echo: serde_json::Value = serde_json::from_str(ECHO_JSON).unwrap();
        assert!(echo["parse"]["parameters"].is_array());
    }
}
