//! Reading a template's configuration without running Terraform: its `variable` blocks and
//! its `data "coder_parameter"` and `data "coder_workspace_preset"` blocks, the way upstream's
//! newer parameter flow reads them.
//!
//! Only the root module's `*.tf` files are read (`*.tf.json` and modules are not). Values are
//! evaluated statically: literals, templates, operators, `var.*` references and a few pure
//! functions work; anything that needs Terraform (other resources, data sources, locals) does
//! not, and the attribute is then left empty with a warning.
//!
//! Over 800 lines only with its unit tests (the code is about 480).

use hcl::eval::{Context, Evaluate, FuncArgs, FuncDef, ParamType};
use hcl::{Block, Body, Expression, Value};

use crate::{Parameter, ParameterOption, Preset, PresetParameter, Variable};

/// The parameter types Coder accepts (`codersdk.TemplateVersionParameter.type`).
const PARAMETER_TYPES: [&str; 4] = ["string", "number", "bool", "list(string)"];

/// One parsed `*.tf` file.
pub(super) struct File {
    pub name: String,
    pub body: Body,
}

/// Parses the root module's files, given as (file name, contents) in the order to read them.
pub(super) fn parse(files: &[(String, String)]) -> Result<Vec<File>, String> {
    files
        .iter()
        .map(|(name, text)| {
            hcl::parse(text)
                .map(|body| File {
                    name: name.clone(),
                    body,
                })
                .map_err(|e| format!("{name}: {e}"))
        })
        .collect()
}

/// The template's `variable` blocks, in file order. `value` is the default; the caller applies
/// the user's values.
pub(super) fn variables(files: &[File]) -> Result<Vec<Variable>, String> {
    let ctx = Context::new();
    let mut out: Vec<Variable> = Vec::new();
    for (file, block) in blocks(files, "variable") {
        let [name] = block.labels() else {
            return Err(format!(
                "{}: a variable block needs exactly one label",
                file.name
            ));
        };
        let name = name.as_str();
        if out.iter().any(|v| v.name == name) {
            return Err(format!("{}: duplicate variable {name:?}", file.name));
        }
        let at = |what: &str| format!("{}: variable {name:?}: {what}", file.name);
        let default = match attribute(block, "default") {
            Some(expr) => match expr.evaluate(&ctx) {
                Ok(Value::Null) => None,
                Ok(value) => Some(value),
                Err(e) => return Err(at(&format!("default: {e}"))),
            },
            None => None,
        };
        let description = match attribute(block, "description") {
            Some(expr) => to_text(&expr.evaluate(&ctx).map_err(|e| at(&e.to_string()))?),
            None => String::new(),
        };
        let sensitive = match attribute(block, "sensitive") {
            Some(expr) => expr.evaluate(&ctx).map_err(|e| at(&e.to_string()))? == Value::Bool(true),
            None => false,
        };
        let default_value = default.as_ref().map(to_text).unwrap_or_default();
        out.push(Variable {
            name: name.to_string(),
            description,
            kind: variable_kind(attribute(block, "type"), default.as_ref()),
            value: default_value.clone(),
            default_value,
            // As upstream: an empty string is a valid default, so only a missing (or null)
            // default makes a variable required.
            required: default.is_none(),
            sensitive,
        });
    }
    Ok(out)
}

/// Coder's variable types are `string`, `number` and `bool`. Other Terraform types (lists,
/// maps, objects) are offered as `string`: their values are HCL/JSON text, which is exactly
/// what `TF_VAR_*` takes. Without a `type`, the default's kind decides.
fn variable_kind(type_expr: Option<&Expression>, default: Option<&Value>) -> String {
    let named = match type_expr {
        Some(Expression::Variable(v)) => Some(v.as_str()),
        // Terraform 0.11's quoted form, `type = "string"`.
        Some(Expression::String(s)) => Some(s.as_str()),
        Some(_) => return "string".into(),
        None => None,
    };
    match named {
        Some(kind @ ("string" | "number" | "bool")) => kind.into(),
        Some("any") | None => match default {
            Some(Value::Bool(_)) => "bool".into(),
            Some(Value::Number(_)) => "number".into(),
            _ => "string".into(),
        },
        Some(_) => "string".into(),
    }
}

/// The template's `data "coder_parameter"` blocks, evaluated with `var.*` bound to
/// `variables`' values. Also answers warnings about attributes that could not be evaluated.
pub(super) fn parameters(
    files: &[File],
    variables: &[Variable],
) -> Result<(Vec<Parameter>, Vec<String>), String> {
    let ctx = context(variables);
    let mut warnings = Vec::new();
    let mut found: Vec<(f64, Parameter)> = Vec::new();
    for (file, block) in blocks(files, "data") {
        let [kind, label] = block.labels() else {
            continue;
        };
        if kind.as_str() != "coder_parameter" {
            continue;
        }
        let address = format!("data.coder_parameter.{}", label.as_str());
        let mut reader = Reader {
            ctx: &ctx,
            address: &address,
            file: &file.name,
            warnings: &mut warnings,
        };
        // `count = 0` switches a parameter off; anything we cannot evaluate keeps it.
        if let Some(count) = reader.number(block.body(), "count") {
            if count < 1.0 {
                continue;
            }
        }
        let parameter = reader.parameter(block.body())?;
        if found.iter().any(|(_, p)| p.name == parameter.name) {
            return Err(format!(
                "{}: {address}: parameter names must be unique, {:?} is used twice",
                file.name, parameter.name
            ));
        }
        let order = reader.number(block.body(), "order").unwrap_or(0.0);
        found.push((order, parameter));
    }
    // Upstream shows parameters by `order`, then as declared; `sort_by` is stable.
    found.sort_by(|a, b| a.0.total_cmp(&b.0));
    Ok((found.into_iter().map(|(_, p)| p).collect(), warnings))
}

/// The template's `data "coder_workspace_preset"` blocks, read statically like parameters:
/// `name`, `description`, `icon`, `default` and the `parameters` map (parameter name to value).
pub(super) fn presets(
    files: &[File],
    variables: &[Variable],
) -> Result<(Vec<Preset>, Vec<String>), String> {
    let ctx = context(variables);
    let mut warnings = Vec::new();
    let mut found: Vec<Preset> = Vec::new();
    for (file, block) in blocks(files, "data") {
        let [kind, label] = block.labels() else {
            continue;
        };
        if kind.as_str() != "coder_workspace_preset" {
            continue;
        }
        let address = format!("data.coder_workspace_preset.{}", label.as_str());
        let mut reader = Reader {
            ctx: &ctx,
            address: &address,
            file: &file.name,
            warnings: &mut warnings,
        };
        let body = block.body();
        let name = match reader.text(body, "name") {
            Some(name) if !name.is_empty() => name,
            _ => return Err(reader.error("name must be a non-empty string")),
        };
        if found.iter().any(|p| p.name == name) {
            return Err(reader.error(&format!(
                "preset names must be unique, {name:?} is used twice"
            )));
        }
        let parameters = match reader.value(body, "parameters") {
            Some(Value::Object(map)) => map
                .iter()
                .map(|(name, value)| PresetParameter {
                    name: name.to_string(),
                    value: to_text(value),
                })
                .collect(),
            _ => Vec::new(),
        };
        found.push(Preset {
            description: reader.text(body, "description").unwrap_or_default(),
            icon: reader.text(body, "icon").unwrap_or_default(),
            default: reader.flag(body, "default"),
            parameters,
            name,
        });
    }
    if found.iter().filter(|p| p.default).count() > 1 {
        return Err("only one coder_workspace_preset may be the default".into());
    }
    Ok((found, warnings))
}

/// Evaluates one `coder_parameter` block's attributes.
struct Reader<'a> {
    ctx: &'a Context<'a>,
    address: &'a str,
    file: &'a str,
    warnings: &'a mut Vec<String>,
}

impl Reader<'_> {
    fn parameter(&mut self, body: &Body) -> Result<Parameter, String> {
        let name = match body_attribute(body, "name").map(|e| e.evaluate(self.ctx)) {
            Some(Ok(Value::String(name))) if !name.is_empty() => name,
            Some(Ok(_)) | None => return Err(self.error("name must be a non-empty string")),
            Some(Err(e)) => return Err(self.error(&format!("name: {e}"))),
        };
        let kind = self
            .text(body, "type")
            .filter(|t| !t.is_empty())
            .unwrap_or_else(|| "string".into());
        if !PARAMETER_TYPES.contains(&kind.as_str()) {
            return Err(self.error(&format!(
                "type {kind:?} is not supported (use one of {})",
                PARAMETER_TYPES.join(", ")
            )));
        }
        let options = body
            .blocks()
            .filter(|b| b.identifier() == "option")
            .map(|b| ParameterOption {
                name: self.text(b.body(), "name").unwrap_or_default(),
                description: self.text(b.body(), "description").unwrap_or_default(),
                value: self.text(b.body(), "value").unwrap_or_default(),
                icon: self.text(b.body(), "icon").unwrap_or_default(),
            })
            .collect::<Vec<_>>();
        let form_type = form_type(
            &kind,
            !options.is_empty(),
            &self.text(body, "form_type").unwrap_or_default(),
        )
        .map_err(|e| self.error(&e))?;
        let default = self.value(body, "default");
        let mut parameter = Parameter {
            display_name: self.text(body, "display_name").unwrap_or_default(),
            description: self.text(body, "description").unwrap_or_default(),
            form_type,
            mutable: self.flag(body, "mutable"),
            // As the provider: a parameter without a default needs a value.
            required: matches!(default, None | Some(Value::Null)),
            default_value: default.as_ref().map(to_text).unwrap_or_default(),
            icon: self.text(body, "icon").unwrap_or_default(),
            options,
            ephemeral: self.flag(body, "ephemeral"),
            name,
            kind,
            ..Default::default()
        };
        if let Some(validation) = body.blocks().find(|b| b.identifier() == "validation") {
            let v = validation.body();
            parameter.validation_min = self.number(v, "min").map(|n| n as i32);
            parameter.validation_max = self.number(v, "max").map(|n| n as i32);
            parameter.validation_regex = self.text(v, "regex").unwrap_or_default();
            parameter.validation_error = self.text(v, "error").unwrap_or_default();
            parameter.validation_monotonic = self.text(v, "monotonic").unwrap_or_default();
            if !matches!(
                parameter.validation_monotonic.as_str(),
                "" | "increasing" | "decreasing"
            ) {
                return Err(self.error(&format!(
                    "validation monotonic {:?} must be \"increasing\" or \"decreasing\"",
                    parameter.validation_monotonic
                )));
            }
        }
        Ok(parameter)
    }

    fn error(&self, what: &str) -> String {
        format!("{}: {}: {what}", self.file, self.address)
    }

    /// The attribute's value; `None` when it is absent or cannot be evaluated statically (then
    /// with a warning).
    fn value(&mut self, body: &Body, key: &str) -> Option<Value> {
        let expr = body_attribute(body, key)?;
        match expr.evaluate(self.ctx) {
            Ok(value) => Some(value),
            Err(e) => {
                self.warnings.push(format!(
                    "{}: {}: {key} cannot be evaluated without running Terraform and is left \
                     empty: {e}",
                    self.file, self.address
                ));
                None
            }
        }
    }

    fn text(&mut self, body: &Body, key: &str) -> Option<String> {
        self.value(body, key)
            .filter(|v| *v != Value::Null)
            .map(|v| to_text(&v))
    }

    fn flag(&mut self, body: &Body, key: &str) -> bool {
        match self.value(body, key) {
            Some(Value::Bool(b)) => b,
            Some(Value::String(s)) => s == "true",
            _ => false,
        }
    }

    fn number(&mut self, body: &Body, key: &str) -> Option<f64> {
        match self.value(body, key)? {
            Value::Number(n) => n.as_f64(),
            Value::String(s) => s.parse().ok(),
            _ => None,
        }
    }
}

/// The provider's `form_type` rules: which form types a type allows (with or without options),
/// the first being the default. `list(string)` without options is `tag-select` as Coder's API
/// names it (the provider spells it `tag-input`).
fn form_type(kind: &str, has_options: bool, given: &str) -> Result<String, String> {
    let allowed: &[&str] = match (kind, has_options) {
        ("string", true) | ("number", true) => &["radio", "dropdown"],
        ("string", false) => &["input", "textarea"],
        ("number", false) => &["input", "slider"],
        ("bool", true) => &["radio"],
        ("bool", false) => &["checkbox", "switch"],
        ("list(string)", true) => &["radio", "multi-select"],
        ("list(string)", false) => &["tag-select"],
        _ => &[],
    };
    let given = if given == "tag-input" {
        "tag-select"
    } else {
        given
    };
    match given {
        "" => Ok(allowed.first().copied().unwrap_or_default().to_string()),
        g if allowed.contains(&g) => Ok(g.to_string()),
        g => Err(format!(
            "form_type {g:?} is not supported for type {kind:?}{} (allowed: {})",
            if has_options { " with options" } else { "" },
            allowed.join(", ")
        )),
    }
}

/// The evaluation context: `var.<name>` and a few pure functions templates use in parameter
/// attributes (`jsonencode` above all, for `list(string)` defaults).
fn context(variables: &[Variable]) -> Context<'static> {
    let mut ctx = Context::new();
    let vars: hcl::Map<String, Value> = variables
        .iter()
        .map(|v| (v.name.clone(), typed_value(&v.kind, &v.value)))
        .collect();
    ctx.declare_var("var", Value::Object(vars));
    let one = |param: ParamType, f: hcl::eval::Func| FuncDef::builder().param(param).build(f);
    ctx.declare_func("jsonencode", one(ParamType::Any, jsonencode));
    ctx.declare_func("tostring", one(ParamType::Any, tostring));
    ctx.declare_func("tonumber", one(ParamType::Any, tonumber));
    ctx.declare_func("lower", one(ParamType::String, lower));
    ctx.declare_func("upper", one(ParamType::String, upper));
    ctx.declare_func("trimspace", one(ParamType::String, trimspace));
    ctx
}

fn jsonencode(args: FuncArgs) -> Result<Value, String> {
    serde_json::to_string(&args[0])
        .map(Value::String)
        .map_err(|e| e.to_string())
}

fn tostring(args: FuncArgs) -> Result<Value, String> {
    match &args[0] {
        Value::Array(_) | Value::Object(_) => Err("cannot convert a collection to a string".into()),
        Value::Null => Ok(Value::Null),
        v => Ok(Value::String(to_text(v))),
    }
}

fn tonumber(args: FuncArgs) -> Result<Value, String> {
    match &args[0] {
        Value::Number(_) | Value::Null => Ok(args[0].clone()),
        Value::String(s) => s
            .trim()
            .parse::<f64>()
            .ok()
            .and_then(hcl::Number::from_f64)
            .map(Value::Number)
            .ok_or_else(|| format!("{s:?} is not a number")),
        _ => Err("cannot convert to a number".into()),
    }
}

fn lower(args: FuncArgs) -> Result<Value, String> {
    Ok(Value::String(to_text(&args[0]).to_lowercase()))
}

fn upper(args: FuncArgs) -> Result<Value, String> {
    Ok(Value::String(to_text(&args[0]).to_uppercase()))
}

fn trimspace(args: FuncArgs) -> Result<Value, String> {
    Ok(Value::String(to_text(&args[0]).trim().to_string()))
}

/// A variable's value as Terraform would type it, for `var.*` references.
fn typed_value(kind: &str, value: &str) -> Value {
    match kind {
        "number" => value
            .parse::<f64>()
            .ok()
            .and_then(hcl::Number::from_f64)
            .map(Value::Number)
            .unwrap_or_else(|| Value::String(value.into())),
        "bool" => match value {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ => Value::String(value.into()),
        },
        // Complex values are stored as JSON text.
        _ => match serde_json::from_str::<Value>(value) {
            Ok(v @ (Value::Array(_) | Value::Object(_))) => v,
            _ => Value::String(value.into()),
        },
    }
}

/// A value as Coder stores it: strings verbatim, numbers and bools in their literal form,
/// collections as JSON (as upstream does for variable defaults).
pub(super) fn to_text(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        Value::Array(_) | Value::Object(_) => serde_json::to_string(value).unwrap_or_default(),
    }
}

fn blocks<'a>(
    files: &'a [File],
    identifier: &'a str,
) -> impl Iterator<Item = (&'a File, &'a Block)> {
    files.iter().flat_map(move |file| {
        file.body
            .blocks()
            .filter(move |b| b.identifier() == identifier)
            .map(move |b| (file, b))
    })
}

fn attribute<'a>(block: &'a Block, key: &str) -> Option<&'a Expression> {
    body_attribute(block.body(), key)
}

fn body_attribute<'a>(body: &'a Body, key: &str) -> Option<&'a Expression> {
    body.attributes().find(|a| a.key() == key).map(|a| a.expr())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(text: &str) -> Vec<File> {
        parse(&[("main.tf".into(), text.into())]).unwrap()
    }

    #[test]
    fn variables_map_types_defaults_and_flags() {
        let f = files(
            r#"
            variable "region" {
              type        = string
              description = "Where"
              default     = "eu"
            }
            variable "count_cpu" {
              type    = number
              default = 2
            }
            variable "enabled" { default = true }
            variable "token" {
              type      = string
              sensitive = true
            }
            variable "tags" {
              type    = list(string)
              default = ["a", "b"]
            }
            variable "empty" {
              type    = string
              default = ""
            }
            variable "nothing" { default = null }
            "#,
        );
        let vars = variables(&f).unwrap();
        let got: Vec<(&str, &str, &str, bool, bool)> = vars
            .iter()
            .map(|v| {
                (
                    v.name.as_str(),
                    v.kind.as_str(),
                    v.default_value.as_str(),
                    v.required,
                    v.sensitive,
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("region", "string", "eu", false, false),
                ("count_cpu", "number", "2", false, false),
                ("enabled", "bool", "true", false, false),
                ("token", "string", "", true, true),
                ("tags", "string", r#"["a","b"]"#, false, false),
                ("empty", "string", "", false, false),
                ("nothing", "string", "", true, false),
            ]
        );
        assert_eq!(vars[0].description, "Where");
        assert_eq!(vars[0].value, "eu", "the value starts as the default");
    }

    #[test]
    fn duplicate_variables_are_an_error() {
        let f = parse(&[
            ("a.tf".into(), r#"variable "x" {}"#.into()),
            ("b.tf".into(), r#"variable "x" {}"#.into()),
        ])
        .unwrap();
        assert_eq!(
            variables(&f).unwrap_err(),
            r#"b.tf: duplicate variable "x""#
        );
    }

    #[test]
    fn syntax_errors_name_the_file() {
        let err = parse(&[("broken.tf".into(), "resource \"x\" {\n  a = \n}\n".into())])
            .err()
            .unwrap();
        assert!(err.starts_with("broken.tf: "), "{err}");
    }

    #[test]
    fn presets_are_read_statically() {
        let f = files(
            r#"
            variable "big" { default = 8 }
            data "coder_workspace_preset" "small" {
              name        = "Small"
              description = "For reading code"
              default     = true
              parameters  = { cpu = 2, region = "eu" }
            }
            data "coder_workspace_preset" "big" {
              name       = "Big"
              icon       = "/emojis/1f418.png"
              parameters = { "cpu" = var.big }
            }
            "#,
        );
        let vars = variables(&f).unwrap();
        let (presets, warnings) = presets(&f, &vars).unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        let pair = |n: &str, v: &str| PresetParameter {
            name: n.into(),
            value: v.into(),
        };
        assert_eq!(
            presets,
            [
                Preset {
                    name: "Small".into(),
                    description: "For reading code".into(),
                    icon: String::new(),
                    default: true,
                    parameters: vec![pair("cpu", "2"), pair("region", "eu")],
                },
                Preset {
                    name: "Big".into(),
                    description: String::new(),
                    icon: "/emojis/1f418.png".into(),
                    default: false,
                    parameters: vec![pair("cpu", "8")],
                },
            ]
        );
    }

    #[test]
    fn parameters_are_read_statically() {
        let f = files(
            r#"
            variable "default_region" { default = "us" }
            data "coder_parameter" "region" {
              name         = "region"
              display_name = "Region"
              description  = "Where the workspace runs"
              icon         = "/emojis/1f30e.png"
              default      = var.default_region
              option {
                name  = "Europe"
                value = "eu"
              }
              option {
                name        = "America"
                value       = "us"
                description = "The US"
                icon        = "/emojis/1f1fa.png"
              }
            }
            data "coder_parameter" "cpu" {
              name    = "cpu"
              type    = "number"
              mutable = true
              default = 2
              order   = -1
              validation {
                min       = 1
                max       = 8
                monotonic = "increasing"
                error     = "Between 1 and 8"
              }
            }
            data "coder_parameter" "secret" {
              name      = "secret"
              mutable   = true
              ephemeral = true
              form_type = "textarea"
              validation { regex = "^[a-z]+$" }
            }
            data "coder_parameter" "repos" {
              name    = "repos"
              type    = "list(string)"
              default = jsonencode(["a", "b"])
            }
            data "coder_parameter" "off" {
              count = 0
              name  = "off"
            }
            data "coder_workspace" "me" {}
            resource "terraform_data" "x" {}
            "#,
        );
        let vars = variables(&f).unwrap();
        let (params, warnings) = parameters(&f, &vars).unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        let names: Vec<&str> = params.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            ["cpu", "region", "secret", "repos"],
            "by order, then declared"
        );

        let cpu = &params[0];
        assert_eq!(
            (
                cpu.kind.as_str(),
                cpu.default_value.as_str(),
                cpu.form_type.as_str()
            ),
            ("number", "2", "input")
        );
        assert!(cpu.mutable && !cpu.required && !cpu.ephemeral);
        assert_eq!((cpu.validation_min, cpu.validation_max), (Some(1), Some(8)));
        assert_eq!(cpu.validation_monotonic, "increasing");
        assert_eq!(cpu.validation_error, "Between 1 and 8");

        let region = &params[1];
        assert_eq!(region.display_name, "Region");
        assert_eq!(region.description, "Where the workspace runs");
        assert_eq!(region.icon, "/emojis/1f30e.png");
        assert_eq!(region.default_value, "us", "var.* references are resolved");
        assert_eq!(region.form_type, "radio");
        assert!(!region.mutable);
        assert_eq!(
            region.options[1],
            ParameterOption {
                name: "America".into(),
                description: "The US".into(),
                value: "us".into(),
                icon: "/emojis/1f1fa.png".into(),
            }
        );
        assert_eq!(region.validation_min, None);

        let secret = &params[2];
        assert!(secret.required && secret.ephemeral && secret.mutable);
        assert_eq!(secret.kind, "string");
        assert_eq!(secret.form_type, "textarea");
        assert_eq!(secret.validation_regex, "^[a-z]+$");

        let repos = &params[3];
        assert_eq!(repos.default_value, r#"["a","b"]"#);
        assert_eq!(repos.form_type, "tag-select");
    }

    #[test]
    fn unevaluable_attributes_warn_and_stay_empty() {
        let f = files(
            r#"
            data "coder_parameter" "p" {
              name        = "p"
              description = "for ${data.coder_workspace.me.name}"
              default     = "x"
            }
            "#,
        );
        let (params, warnings) = parameters(&f, &[]).unwrap();
        assert_eq!(params[0].description, "");
        assert_eq!(params[0].default_value, "x");
        assert_eq!(warnings.len(), 1);
        assert!(
            warnings[0].contains("data.coder_parameter.p: description"),
            "{warnings:?}"
        );
    }

    #[test]
    fn parameter_errors() {
        let cases = [
            (
                r#"data "coder_parameter" "p" {}"#,
                "name must be a non-empty string",
            ),
            (
                r#"data "coder_parameter" "p" {
                  name = "p"
                  type = "map(string)"
                }"#,
                "type \"map(string)\" is not supported",
            ),
            (
                r#"data "coder_parameter" "p" {
                  name      = "p"
                  type      = "bool"
                  form_type = "dropdown"
                }"#,
                "form_type \"dropdown\" is not supported for type \"bool\"",
            ),
            (
                r#"data "coder_parameter" "a" { name = "same" }
                data "coder_parameter" "b" { name = "same" }"#,
                "parameter names must be unique",
            ),
            (
                r#"data "coder_parameter" "p" {
                  name = "p"
                  validation { monotonic = "up" }
                }"#,
                "validation monotonic \"up\"",
            ),
        ];
        for (text, want) in cases {
            let err = parameters(&files(text), &[]).unwrap_err();
            assert!(err.contains(want), "{err} should contain {want}");
            assert!(err.starts_with("main.tf: data.coder_parameter."), "{err}");
        }
    }

    #[test]
    fn form_type_defaults_follow_the_provider() {
        let cases = [
            ("string", false, "input"),
            ("string", true, "radio"),
            ("number", false, "input"),
            ("bool", false, "checkbox"),
            ("bool", true, "radio"),
            ("list(string)", false, "tag-select"),
            ("list(string)", true, "radio"),
        ];
        for (kind, options, want) in cases {
            assert_eq!(
                form_type(kind, options, "").unwrap(),
                want,
                "{kind} {options}"
            );
        }
        assert_eq!(
            form_type("list(string)", false, "tag-input").unwrap(),
            "tag-select"
        );
        assert_eq!(form_type("number", false, "slider").unwrap(), "slider");
    }
}
