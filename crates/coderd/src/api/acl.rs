//! Access-control lists of templates and workspaces: user and group ids mapped to a role
//! (`use` or `admin`), patched by requests where an empty role removes an entry.

use std::collections::HashMap;

use coderd_db::StoreResultExt;
use uuid::Uuid;

use crate::http::error::{ApiError, ApiResult};
use crate::state::AppState;

/// Applies `perms` (id → role, `""` removes) to `acl`; problems are added to `bad` under `field`.
fn apply(
    acl: &mut HashMap<Uuid, String>,
    perms: &HashMap<String, String>,
    field: &str,
    bad: &mut Vec<(String, String)>,
) {
    for (raw, role) in perms {
        let Ok(id) = Uuid::parse_str(raw) else {
            bad.push((field.into(), format!("{raw:?} is not a valid uuid")));
            continue;
        };
        match role.as_str() {
            "" => {
                acl.remove(&id);
            }
            "use" | "admin" => {
                acl.insert(id, role.clone());
            }
            other => bad.push((
                field.into(),
                format!("{other:?} is not a valid role (use, admin)"),
            )),
        }
    }
}

/// Adds the members of the body's `field` map that are `null` to `perms` as `""`: Go decodes
/// them as entries with the zero role (a removal), so their keys are checked like any other.
pub fn null_roles(body: &[u8], field: &str, perms: &mut HashMap<String, String>) {
    let Ok(serde_json::Value::Object(doc)) = serde_json::from_slice::<serde_json::Value>(body)
    else {
        return;
    };
    if let Some(serde_json::Value::Object(map)) = doc.get(field) {
        for (k, v) in map {
            if v.is_null() {
                perms.entry(k.clone()).or_default();
            }
        }
    }
}

/// The ACLs after a patch, once every user in them is a member of `org` and every group is
/// one of its groups. `fields` names the request's user and group fields for error reports.
pub async fn patched(
    state: &AppState,
    org: Uuid,
    current: (&HashMap<Uuid, String>, &HashMap<Uuid, String>),
    perms: (&HashMap<String, String>, &HashMap<String, String>),
    fields: (&str, &str),
    message: &str,
) -> ApiResult<(HashMap<Uuid, String>, HashMap<Uuid, String>)> {
    let (mut users, mut groups) = (current.0.clone(), current.1.clone());
    let mut bad = Vec::new();
    apply(&mut users, perms.0, fields.0, &mut bad);
    apply(&mut groups, perms.1, fields.1, &mut bad);
    let fail = |bad: Vec<(String, String)>| {
        bad.into_iter()
            .fold(ApiError::bad_request(message), |e, (f, d)| {
                e.with_validation(f, d)
            })
    };
    if !bad.is_empty() {
        return Err(fail(bad));
    }
    for id in users.keys() {
        if state.store.membership(org, *id).await.optional()?.is_none() {
            return Err(fail(vec![(
                fields.0.into(),
                format!("User {id} is not a member of the organization."),
            )]));
        }
    }
    for id in groups.keys() {
        let group = state.store.group(*id).await.optional()?;
        if group.filter(|g| g.organization_id == org).is_none() {
            return Err(fail(vec![(
                fields.1.into(),
                format!("Group {id} does not exist in the organization."),
            )]));
        }
    }
    Ok((users, groups))
}
