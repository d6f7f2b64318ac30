//! Provisioner daemons and jobs of an organization.

use std::collections::{BTreeMap, HashMap};

use axum::extract::{RawQuery, State};
use chrono::Utc;
use coderd_db::{JobFilter, JobRow};
use codersdk::{ProvisionerDaemon, ProvisionerDaemonJob, ProvisionerJob};
use uuid::Uuid;

use super::resolve;
use super::resolve::{OrgJobParam, OrgParam};
use super::routes::{Param, Routes};
use crate::authz::{Action, Actor, Object, Resource};
use crate::http::error::{ApiError, ApiResult};
use crate::http::json::{ok, Json};
use crate::http::params::{QueryErrors, QueryParams};
use crate::state::AppState;
use crate::views::jobs::JobViews;

pub fn routes(r: &mut Routes) {
    r.get("/organizations/{organization}/provisionerdaemons", daemons)
        .op(
            "Provisioning",
            "get-provisioner-daemons",
            "Get provisioner daemons",
        )
        .job_filters()
        .list::<codersdk::ProvisionerDaemon>(200);
    r.get("/organizations/{organization}/provisionerjobs", jobs)
        .op(
            "Organizations",
            "get-provisioner-jobs",
            "Get provisioner jobs",
        )
        .job_filters()
        .query("initiator", Param::Uuid, "Filter results by initiator")
        .list::<codersdk::ProvisionerJob>(200);
    r.get("/organizations/{organization}/provisionerjobs/{job}", job)
        .op(
            "Organizations",
            "get-provisioner-job",
            "Get provisioner job",
        )
        .ok::<codersdk::ProvisionerJob>(200);
}

const STATUSES: [&str; 6] = [
    "pending",
    "running",
    "succeeded",
    "canceling",
    "canceled",
    "failed",
];

struct Filters {
    limit: i64,
    ids: Vec<Uuid>,
    statuses: Vec<String>,
    tags: Option<BTreeMap<String, String>>,
}

fn filters(q: &QueryParams, statuses: &[&str]) -> ApiResult<Filters> {
    let mut errs = QueryErrors::default();
    let limit = match q.get("limit").filter(|v| !v.is_empty()) {
        None => 50,
        Some(v) => v.parse::<i64>().ok().filter(|n| *n > 0).unwrap_or_else(|| {
            errs.add("limit", "Must be a positive integer.");
            0
        }),
    };
    let list = |key: &str| -> Vec<String> {
        q.0.iter()
            .filter(|(k, _)| k == key)
            .flat_map(|(_, v)| v.split(','))
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect()
    };
    let mut ids = Vec::new();
    for raw in list("ids") {
        match Uuid::parse_str(&raw) {
            Ok(id) => ids.push(id),
            Err(_) => errs.add("ids", format!("{raw:?} is not a valid uuid")),
        }
    }
    let statuses_given = list("status");
    for s in &statuses_given {
        if !statuses.contains(&s.as_str()) {
            errs.add("status", format!("{s:?} is not a valid status"));
        }
    }
    let tags = match q.get("tags").filter(|v| !v.is_empty()) {
        None => None,
        Some(v) => match serde_json::from_str::<BTreeMap<String, String>>(v) {
            Ok(t) => Some(t),
            Err(e) => {
                errs.add("tags", format!("Must be a JSON object of strings: {e}"));
                None
            }
        },
    };
    errs.finish()?;
    Ok(Filters {
        limit,
        ids,
        statuses: statuses_given,
        tags,
    })
}

async fn daemons(
    State(state): State<AppState>,
    actor: Actor,
    OrgParam { org, .. }: OrgParam,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Vec<ProvisionerDaemon>>> {
    if !actor.can(
        Action::Read,
        Object::in_org(Resource::ProvisionerDaemon, org.id),
    ) {
        return Err(ApiError::not_found());
    }
    let q = QueryParams::parse(raw.as_deref());
    let f = filters(&q, &["offline", "idle", "busy"])?;
    let rows = state.store.list_daemons(org.id).await?;
    let job_ids: Vec<Uuid> = rows
        .iter()
        .flat_map(|d| [d.current_job_id, d.previous_job_id])
        .flatten()
        .collect();
    let jobs: HashMap<Uuid, JobRow> = state
        .store
        .jobs_by_ids(&job_ids)
        .await?
        .into_iter()
        .map(|j| (j.id, j))
        .collect();
    let refs: Vec<&JobRow> = jobs.values().collect();
    let views = JobViews::load(&state, &refs).await?;
    let summary = |id: Option<Uuid>| {
        let j = jobs.get(&id?)?;
        let m = views.render(j).metadata;
        Some(ProvisionerDaemonJob {
            id: j.id,
            status: j.status.to_string(),
            template_name: m.template_name,
            template_icon: m.template_icon,
            template_display_name: m.template_display_name,
        })
    };
    let now = Utc::now();
    let out: Vec<ProvisionerDaemon> = rows
        .iter()
        .map(|d| {
            let status =
                coderd_db::DaemonStatus::of(d.last_seen_at, d.current_job_id.is_some(), now);
            ProvisionerDaemon {
                id: d.id,
                organization_id: org.id,
                key_id: Uuid::nil(),
                key_name: "built-in".into(),
                created_at: d.created_at,
                last_seen_at: Some(d.last_seen_at),
                name: d.name.clone(),
                version: d.version.clone(),
                api_version: d.api_version.clone(),
                provisioners: d.provisioners.clone(),
                tags: d.tags.0.clone(),
                status: status.to_string(),
                current_job: summary(d.current_job_id),
                previous_job: summary(d.previous_job_id),
            }
        })
        .filter(|d| f.ids.is_empty() || f.ids.contains(&d.id))
        .filter(|d| f.statuses.is_empty() || f.statuses.contains(&d.status))
        .filter(|d| {
            f.tags
                .as_ref()
                .is_none_or(|t| t.iter().all(|(k, v)| d.tags.get(k) == Some(v)))
        })
        .take(f.limit as usize)
        .collect();
    Ok(ok(out))
}

/// Only those who may read the organization's provisioner jobs see them; others get 404.
async fn jobs(
    State(state): State<AppState>,
    actor: Actor,
    organization: OrgParam,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Vec<ProvisionerJob>>> {
    let org = organization.visible(Resource::ProvisionerJobs)?.id;
    let q = QueryParams::parse(raw.as_deref());
    let f = filters(&q, &STATUSES)?;
    let initiator = match q.get("initiator").filter(|v| !v.is_empty()) {
        None => None,
        Some(u) => Some(resolve::user(&state, Some(&actor), u).await?.id),
    };
    let rows = state
        .store
        .list_jobs(&JobFilter {
            organization_id: org,
            ids: f.ids,
            statuses: f.statuses.iter().filter_map(|s| s.parse().ok()).collect(),
            tags: f.tags,
            initiator,
            limit: f.limit,
        })
        .await?;
    let refs: Vec<&JobRow> = rows.iter().collect();
    let views = JobViews::load(&state, &refs).await?;
    Ok(ok(rows.iter().map(|j| views.render(j)).collect()))
}

async fn job(
    State(state): State<AppState>,
    OrgJobParam(job): OrgJobParam,
) -> ApiResult<Json<ProvisionerJob>> {
    Ok(ok(crate::views::jobs::render_job(&state, &job).await?))
}
