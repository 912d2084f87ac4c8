//! Role definitions in and out: the JSON shape `az role definition` prints, the role file
//! `az role definition create --role-definition` reads, and the role-assignment shape.

use coffer_client::proto::{RoleAssignment, RoleDefinition};
use serde_json::{Map, Value, json};

use super::output::{self, Table};

pub fn role_json(role: &RoleDefinition) -> Value {
    json!({
        "id": role.id,
        "roleName": role.name,
        "description": role.description,
        "roleType": if role.built_in { "BuiltInRole" } else { "CustomRole" },
        "permissions": [{
            "actions": role.actions,
            "notActions": role.not_actions,
            "dataActions": role.data_actions,
            "notDataActions": role.not_data_actions,
        }],
        "assignableScopes": role.assignable_scopes,
    })
}

pub fn role_table(roles: &[RoleDefinition]) -> Table {
    Table {
        headers: vec!["RoleName", "RoleType", "Id"],
        rows: roles
            .iter()
            .map(|r| {
                vec![
                    r.name.clone(),
                    if r.built_in {
                        "BuiltInRole"
                    } else {
                        "CustomRole"
                    }
                    .to_owned(),
                    r.id.clone(),
                ]
            })
            .collect(),
    }
}

pub fn assignment_json(assignment: &RoleAssignment) -> Value {
    json!({
        "id": assignment.id,
        "principalId": assignment.principal_id,
        "roleDefinitionId": assignment.role_definition_id,
        "roleDefinitionName": assignment.role_name,
        "scope": assignment.scope,
        "createdOn": output::time_json(assignment.created),
        "createdBy": assignment.created_by,
    })
}

pub fn assignment_table(assignments: &[RoleAssignment]) -> Table {
    Table {
        headers: vec!["Id", "Principal", "Role", "Scope"],
        rows: assignments
            .iter()
            .map(|a| {
                vec![
                    a.id.clone(),
                    a.principal_id.clone(),
                    a.role_name.clone(),
                    a.scope.clone(),
                ]
            })
            .collect(),
    }
}

/// Where a member of the role file goes. Names compare case-insensitively, so Azure's
/// PascalCase file (`Name`, `Actions`, `AssignableScopes`) and the camelCase shape `az role
/// definition list` prints (`roleName`, `permissions: [{actions, …}]`) both load.
enum Field {
    Id,
    Name,
    Description,
    Actions,
    NotActions,
    DataActions,
    NotDataActions,
    AssignableScopes,
    Permissions,
    /// Accepted and not used: `IsCustom` (every role made here is custom), `roleType`, `type`.
    Ignored,
}

fn field(key: &str) -> Option<Field> {
    Some(match key.to_ascii_lowercase().as_str() {
        "id" => Field::Id,
        "name" | "rolename" => Field::Name,
        "description" => Field::Description,
        "actions" => Field::Actions,
        "notactions" => Field::NotActions,
        "dataactions" => Field::DataActions,
        "notdataactions" => Field::NotDataActions,
        "assignablescopes" => Field::AssignableScopes,
        "permissions" => Field::Permissions,
        "iscustom" | "roletype" | "type" => Field::Ignored,
        _ => return None,
    })
}

fn strings(key: &str, value: &Value) -> Result<Vec<String>, String> {
    let items = value
        .as_array()
        .ok_or_else(|| format!("{key} must be a list of strings"))?;
    items
        .iter()
        .map(|item| {
            item.as_str()
                .map(str::to_owned)
                .ok_or_else(|| format!("{key} must be a list of strings"))
        })
        .collect()
}

fn text(key: &str, value: &Value) -> Result<String, String> {
    match value {
        Value::String(s) => Ok(s.clone()),
        Value::Null => Ok(String::new()),
        _ => Err(format!("{key} must be a string")),
    }
}

/// Reads one object's members into `role`; `nested` is set inside `permissions`, where only the
/// four action lists may appear.
fn apply(role: &mut RoleDefinition, map: &Map<String, Value>, nested: bool) -> Result<(), String> {
    for (key, value) in map {
        let field = field(key).ok_or_else(|| format!("unknown field {key:?}"))?;
        match field {
            Field::Actions => role.actions.extend(strings(key, value)?),
            Field::NotActions => role.not_actions.extend(strings(key, value)?),
            Field::DataActions => role.data_actions.extend(strings(key, value)?),
            Field::NotDataActions => role.not_data_actions.extend(strings(key, value)?),
            _ if nested => return Err(format!("{key:?} cannot appear inside permissions")),
            Field::Id => role.id = text(key, value)?,
            Field::Name => role.name = text(key, value)?,
            Field::Description => role.description = text(key, value)?,
            Field::AssignableScopes => role.assignable_scopes = strings(key, value)?,
            Field::Permissions => {
                let blocks = value
                    .as_array()
                    .ok_or_else(|| format!("{key} must be a list of objects"))?;
                for block in blocks {
                    let block = block
                        .as_object()
                        .ok_or_else(|| format!("{key} must be a list of objects"))?;
                    apply(role, block, true)?;
                }
            }
            Field::Ignored => {}
        }
    }
    Ok(())
}

/// Parses a role file. The message of an error names the member at fault.
pub fn parse_role_file(text: &str) -> Result<RoleDefinition, String> {
    let value: Value =
        serde_json::from_str(text).map_err(|err| format!("the file is not JSON: {err}"))?;
    let map = value
        .as_object()
        .ok_or("the file must hold one JSON object")?;
    let mut role = RoleDefinition::default();
    apply(&mut role, map, false)?;
    if role.name.trim().is_empty() {
        return Err("the role needs a Name".to_owned());
    }
    Ok(role)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn azure_pascal_case_role_files_load() {
        let role = parse_role_file(
            r#"{
              "Name": "Secret Reader Plus",
              "IsCustom": true,
              "Description": "Reads secrets.",
              "Actions": ["Microsoft.KeyVault/vaults/read"],
              "NotActions": [],
              "DataActions": ["Microsoft.KeyVault/vaults/secrets/getSecret/action"],
              "NotDataActions": ["Microsoft.KeyVault/vaults/secrets/delete"],
              "AssignableScopes": ["/vaults/kv1"]
            }"#,
        )
        .unwrap();
        assert_eq!(role.name, "Secret Reader Plus");
        assert_eq!(role.description, "Reads secrets.");
        assert_eq!(role.actions, vec!["Microsoft.KeyVault/vaults/read"]);
        assert_eq!(
            role.data_actions,
            vec!["Microsoft.KeyVault/vaults/secrets/getSecret/action"]
        );
        assert_eq!(
            role.not_data_actions,
            vec!["Microsoft.KeyVault/vaults/secrets/delete"]
        );
        assert_eq!(role.assignable_scopes, vec!["/vaults/kv1"]);
        assert!(role.id.is_empty());
    }

    #[test]
    fn the_camel_case_shape_that_list_prints_loads_back() {
        let original = RoleDefinition {
            id: "r-1".into(),
            name: "Custom".into(),
            description: "d".into(),
            actions: vec!["a".into()],
            not_actions: vec!["na".into()],
            data_actions: vec!["da".into()],
            not_data_actions: vec!["nda".into()],
            assignable_scopes: vec!["/".into()],
            built_in: false,
        };
        let printed = role_json(&original).to_string();
        assert_eq!(parse_role_file(&printed).unwrap(), original);
        // camelCase top-level lists too.
        let role =
            parse_role_file(r#"{"roleName":"R","dataActions":["x"],"assignableScopes":["/"]}"#)
                .unwrap();
        assert_eq!((role.name.as_str(), role.data_actions.len()), ("R", 1));
    }

    #[test]
    fn mistakes_are_named() {
        for (text, expected) in [
            ("[]", "one JSON object"),
            ("{", "not JSON"),
            (r#"{"Description":"no name"}"#, "needs a Name"),
            (
                r#"{"Name":"r","DataAction":["x"]}"#,
                "unknown field \"DataAction\"",
            ),
            (r#"{"Name":"r","Actions":"x"}"#, "list of strings"),
            (r#"{"Name":"r","Actions":[1]}"#, "list of strings"),
            (
                r#"{"Name":"r","permissions":[{"Name":"x"}]}"#,
                "inside permissions",
            ),
            (r#"{"Name":7}"#, "must be a string"),
        ] {
            let err = parse_role_file(text).unwrap_err();
            assert!(err.contains(expected), "{text}: {err}");
        }
    }

    #[test]
    fn role_and_assignment_json_shapes() {
        let role = RoleDefinition {
            name: "Key Vault Secrets Officer".into(),
            built_in: true,
            ..RoleDefinition::default()
        };
        let json = role_json(&role);
        assert_eq!(json["roleType"], "BuiltInRole");
        assert_eq!(json["roleName"], "Key Vault Secrets Officer");
        let assignment = RoleAssignment {
            id: "a-1".into(),
            principal_id: "oid".into(),
            role_definition_id: "r-1".into(),
            role_name: "Reader".into(),
            scope: "/vaults/kv1".into(),
            created: 0,
            created_by: "admin".into(),
        };
        assert_eq!(
            assignment_json(&assignment),
            json!({
                "id": "a-1", "principalId": "oid", "roleDefinitionId": "r-1",
                "roleDefinitionName": "Reader", "scope": "/vaults/kv1",
                "createdOn": "1970-01-01T00:00:00Z", "createdBy": "admin"
            })
        );
    }
}
