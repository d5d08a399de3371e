//! Validation: resolves the columns `#[ops]` names and checks that `find_by` keys are unique.
//!
//! A key that fails is reported at its token and left out of the plan, so the rest of the
//! repository is still generated and one mistake gives one message.

use std::collections::BTreeSet;

use super::attr::KeySpec;
use super::model::Model;
use crate::errors::Errors;
use crate::suggest;

/// What to generate, as indices into `Model::fields`.
pub(crate) struct Plan {
    /// The keys of `find_by_*` functions.
    pub(crate) find_by: Vec<Vec<usize>>,
    /// The keys of `list_by_*` functions.
    pub(crate) list_by: Vec<Vec<usize>>,
    /// The columns `upsert` resolves conflicts on; empty when no key can conflict.
    pub(crate) upsert_key: Vec<usize>,
}

/// Checks the model's `#[ops]` keys, recording each problem.
pub(crate) fn validate(model: &Model<'_>, errors: &mut Errors) -> Plan {
    let mut find_by: Vec<Vec<usize>> = Vec::new();
    for spec in &model.ops.find_by {
        let Some(key) = resolve(model, spec, "find_by", &find_by, errors) else {
            continue;
        };
        if !is_unique(model, &key) {
            errors.push(syn::Error::new(spec.span, not_unique(model, &key)));
            continue;
        }
        find_by.push(key);
    }
    let mut list_by: Vec<Vec<usize>> = Vec::new();
    for spec in &model.ops.list_by {
        if let Some(key) = resolve(model, spec, "list_by", &list_by, errors) {
            list_by.push(key);
        }
    }
    let upsert_key = upsert_key(model, &find_by);
    Plan {
        find_by,
        list_by,
        upsert_key,
    }
}

/// The field indices of a key, or `None` after recording why it names no valid key.
fn resolve(
    model: &Model<'_>,
    spec: &KeySpec,
    attribute: &str,
    earlier: &[Vec<usize>],
    errors: &mut Errors,
) -> Option<Vec<usize>> {
    let mut key = Vec::with_capacity(spec.columns.len());
    let mut ok = true;
    for column in &spec.columns {
        let name = column.to_string();
        let name = name.trim_start_matches("r#");
        match model.column(name) {
            Some(index) if key.contains(&index) => {
                errors.spanned(
                    column,
                    format!("`{name}` appears twice in this key; name each column once"),
                );
                ok = false;
            }
            Some(index) => key.push(index),
            None => {
                let names = model.fields.iter().map(|field| field.name.as_str());
                let hint = match suggest::closest(name, names) {
                    Some(near) => format!("did you mean `{near}`?"),
                    None => format!(
                        "the columns are: {}",
                        model
                            .fields
                            .iter()
                            .map(|field| format!("`{}`", field.name))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                };
                errors.spanned(
                    column,
                    format!(
                        "`{}` has no column `{name}`; {hint}",
                        model.table_name.value()
                    ),
                );
                ok = false;
            }
        }
    }
    if !ok {
        return None;
    }
    if earlier.contains(&key) {
        errors.push(syn::Error::new(
            spec.span,
            format!(
                "{attribute}({}) is declared twice; keep one",
                describe(model, &key)
            ),
        ));
        return None;
    }
    Some(key)
}

/// Whether the columns of `key` are guaranteed to identify at most one row.
fn is_unique(model: &Model<'_>, key: &[usize]) -> bool {
    let columns: BTreeSet<usize> = key.iter().copied().collect();
    let primary: BTreeSet<usize> = model
        .fields
        .iter()
        .enumerate()
        .filter(|(_, field)| field.primary_key)
        .map(|(index, _)| index)
        .collect();
    // A superset of a unique key is unique too.
    if primary.is_subset(&columns) || key.iter().any(|&index| model.fields[index].unique) {
        return true;
    }
    model
        .fields
        .iter()
        .filter_map(|field| field.unique_key.as_deref())
        .any(|group| {
            let members: BTreeSet<usize> = model
                .fields
                .iter()
                .enumerate()
                .filter(|(_, field)| field.unique_key.as_deref() == Some(group))
                .map(|(index, _)| index)
                .collect();
            members.is_subset(&columns)
        })
}

fn not_unique(model: &Model<'_>, key: &[usize]) -> String {
    let described = describe(model, key);
    if key.len() == 1 {
        format!(
            "`{described}` is not unique, so several rows may match; use `list_by({described})` \
             to get them all, or mark the column #[sea_orm(unique)] if the table has a unique \
             index on it"
        )
    } else {
        format!(
            "({described}) is not a unique key, so several rows may match; use \
             `list_by(({described}))` to get them all, or give each of its columns the same \
             #[sea_orm(unique_key = \"...\")] if the table has a unique index on them"
        )
    }
}

/// `a` or `a, b`: the key's columns as written in `#[ops]`.
fn describe(model: &Model<'_>, key: &[usize]) -> String {
    key.iter()
        .map(|&index| model.fields[index].name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The conflict target of `upsert`: a key the caller supplies a value for.
///
/// An auto-increment primary key is not in `New`, so it can never conflict; then the first unique
/// key wins: a `find_by` key, a `#[sea_orm(unique)]` column, or a `unique_key` group, in that order.
fn upsert_key(model: &Model<'_>, find_by: &[Vec<usize>]) -> Vec<usize> {
    let primary: Vec<usize> = model
        .fields
        .iter()
        .enumerate()
        .filter(|(_, field)| field.primary_key)
        .map(|(index, _)| index)
        .collect();
    if !model.auto_increment {
        return primary;
    }
    if let Some(key) = find_by.iter().find(|key| **key != primary) {
        return key.clone();
    }
    if let Some(index) = model.fields.iter().position(|field| field.unique) {
        return vec![index];
    }
    if let Some(group) = model
        .fields
        .iter()
        .find_map(|field| field.unique_key.as_deref())
    {
        return model
            .fields
            .iter()
            .enumerate()
            .filter(|(_, field)| field.unique_key.as_deref() == Some(group))
            .map(|(index, _)| index)
            .collect();
    }
    Vec::new()
}
