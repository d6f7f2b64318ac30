//! Rich parameter values of a build: resolved from the request, the previous build and the
//! defaults, and validated against the template version's parameters as Coder does.

use std::collections::HashMap;

use coderd_db::model::Parameter;
use codersdk::WorkspaceBuildParameter;

use crate::http::error::{ApiError, ErrorKind};

fn invalid(name: &str, detail: impl Into<String>) -> ApiError {
    ApiError::bad_request(format!("Unable to validate parameter {name:?}"))
        .with_detail(detail)
        .with_kind(ErrorKind::InvalidParameter)
}

/// The values a build gets. `previous` are the last build's values (empty for a first build).
pub fn resolve(
    params: &[Parameter],
    previous: &HashMap<String, String>,
    requested: &[WorkspaceBuildParameter],
    first_build: bool,
) -> Result<Vec<(String, String)>, ApiError> {
    for r in requested {
        if !params.iter().any(|p| p.name == r.name) {
            return Err(ApiError::bad_request(format!(
                "Parameter {:?} is not present in the template.",
                r.name
            )));
        }
    }
    let mut out = Vec::with_capacity(params.len());
    for p in params {
        let asked = requested
            .iter()
            .rev()
            .find(|r| r.name == p.name)
            .map(|r| r.value.clone());
        let before = previous.get(&p.name);
        if let (Some(v), Some(old), false, false) = (&asked, before, first_build, p.mutable) {
            if v != old {
                return Err(ApiError::bad_request(format!(
                    "Parameter {:?} is not mutable, so it can't be updated after creating a workspace.",
                    p.name
                )));
            }
        }
        // Ephemeral values last one build: they are never carried over.
        let carried = if p.ephemeral { None } else { before.cloned() };
        let value = asked.or(carried).unwrap_or_else(|| p.default_value.clone());
        if value.is_empty() && p.required {
            return Err(invalid(&p.name, "parameter value is required"));
        }
        validate(p, &value, before.map(String::as_str)).map_err(|d| invalid(&p.name, d))?;
        out.push((p.name.clone(), value));
    }
    Ok(out)
}

/// Checks one value against its parameter's type, options and validation rules.
pub fn validate(p: &Parameter, value: &str, previous: Option<&str>) -> Result<(), String> {
    let message = |default: String| {
        if p.validation_error.is_empty() {
            default
        } else {
            p.validation_error.clone()
        }
    };
    match p.kind.as_str() {
        "number" => {
            let n: f64 = value
                .parse()
                .map_err(|_| format!("{value:?} is not a number"))?;
            if let Some(min) = p.validation_min {
                if n < f64::from(min) {
                    return Err(message(format!(
                        "value {value} is less than the minimum {min}"
                    )));
                }
            }
            if let Some(max) = p.validation_max {
                if n > f64::from(max) {
                    return Err(message(format!(
                        "value {value} is more than the maximum {max}"
                    )));
                }
            }
            if let Some(old) = previous.and_then(|o| o.parse::<f64>().ok()) {
                match p.validation_monotonic.as_str() {
                    "increasing" if n < old => {
                        return Err(format!(
                            "parameter value must be equal or greater than previous value: {old}"
                        ))
                    }
                    "decreasing" if n > old => {
                        return Err(format!(
                            "parameter value must be equal or lower than previous value: {old}"
                        ))
                    }
                    _ => {}
                }
            }
        }
        "bool" if value != "true" && value != "false" => {
            return Err(format!("{value:?} is not a bool (true or false)"))
        }
        "list(string)" => {
            let items: Vec<String> = serde_json::from_str(value)
                .map_err(|_| format!("{value:?} is not a JSON list of strings"))?;
            if !p.options.is_empty() {
                for item in &items {
                    if !p.options.iter().any(|o| &o.value == item) {
                        return Err(format!("{item:?} is not one of the options"));
                    }
                }
            }
            return Ok(());
        }
        _ => {}
    }
    if !p.options.is_empty() && !p.options.iter().any(|o| o.value == value) {
        return Err(format!("{value:?} is not one of the options"));
    }
    if p.kind == "string" && !p.validation_regex.is_empty() {
        let re = regex::Regex::new(&p.validation_regex)
            .map_err(|e| format!("invalid validation regex: {e}"))?;
        if !re.is_match(value) {
            return Err(message(format!(
                "{value:?} does not match {:?}",
                p.validation_regex
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use coderd_db::model::ParameterOption;

    fn num(name: &str) -> Parameter {
        Parameter {
            name: name.into(),
            kind: "number".into(),
            default_value: "2".into(),
            mutable: true,
            validation_min: Some(1),
            validation_max: Some(8),
            ..Default::default()
        }
    }

    fn req(name: &str, value: &str) -> WorkspaceBuildParameter {
        WorkspaceBuildParameter {
            name: name.into(),
            value: value.into(),
        }
    }

    #[test]
    fn defaults_previous_and_requested() {
        let params = [num("cpu")];
        let prev = HashMap::from([("cpu".to_string(), "4".to_string())]);
        assert_eq!(
            resolve(&params, &HashMap::new(), &[], true).unwrap(),
            [("cpu".into(), "2".into())]
        );
        assert_eq!(
            resolve(&params, &prev, &[], false).unwrap(),
            [("cpu".into(), "4".into())]
        );
        assert_eq!(
            resolve(&params, &prev, &[req("cpu", "6")], false).unwrap(),
            [("cpu".into(), "6".into())]
        );
        assert!(resolve(&params, &prev, &[req("cpu", "9")], false).is_err());
        assert!(resolve(&params, &prev, &[req("gpu", "1")], false).is_err());
    }

    #[test]
    fn immutable_monotonic_ephemeral_required() {
        let mut p = num("disk");
        p.mutable = false;
        let prev = HashMap::from([("disk".to_string(), "4".to_string())]);
        assert!(resolve(&[p.clone()], &prev, &[req("disk", "5")], false).is_err());
        assert!(resolve(&[p.clone()], &prev, &[req("disk", "5")], true).is_ok());
        let mut m = num("mem");
        m.validation_monotonic = "increasing".into();
        let prev = HashMap::from([("mem".to_string(), "4".to_string())]);
        assert!(resolve(&[m.clone()], &prev, &[req("mem", "3")], false).is_err());
        assert!(resolve(&[m], &prev, &[req("mem", "5")], false).is_ok());
        let mut e = num("once");
        e.ephemeral = true;
        let prev = HashMap::from([("once".to_string(), "7".to_string())]);
        assert_eq!(resolve(&[e], &prev, &[], false).unwrap()[0].1, "2");
        let r = Parameter {
            name: "must".into(),
            kind: "string".into(),
            required: true,
            ..Default::default()
        };
        let err = resolve(&[r], &HashMap::new(), &[], true).unwrap_err();
        assert_eq!(err.body.message, "Unable to validate parameter \"must\"");
        assert_eq!(err.kind, ErrorKind::InvalidParameter);
    }

    #[test]
    fn types_options_and_regex() {
        let mut s = Parameter {
            name: "s".into(),
            kind: "string".into(),
            validation_regex: "^[a-z]+$".into(),
            ..Default::default()
        };
        assert!(validate(&s, "abc", None).is_ok());
        assert!(validate(&s, "ABC", None).is_err());
        s.validation_error = "lowercase please".into();
        assert_eq!(validate(&s, "ABC", None).unwrap_err(), "lowercase please");
        let b = Parameter {
            kind: "bool".into(),
            ..Default::default()
        };
        assert!(validate(&b, "true", None).is_ok() && validate(&b, "yes", None).is_err());
        let opts = vec![
            ParameterOption {
                name: "A".into(),
                value: "a".into(),
                ..Default::default()
            },
            ParameterOption {
                name: "B".into(),
                value: "b".into(),
                ..Default::default()
            },
        ];
        let o = Parameter {
            kind: "string".into(),
            options: opts.clone(),
            ..Default::default()
        };
        assert!(validate(&o, "a", None).is_ok() && validate(&o, "c", None).is_err());
        let l = Parameter {
            kind: "list(string)".into(),
            options: opts,
            ..Default::default()
        };
        assert!(validate(&l, r#"["a","b"]"#, None).is_ok());
        assert!(validate(&l, r#"["a","z"]"#, None).is_err());
        assert!(validate(&l, "a", None).is_err());
    }
}
