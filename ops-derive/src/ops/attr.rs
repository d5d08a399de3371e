//! Attribute parsing: our `#[ops(...)]` and the parts of SeaORM's `#[sea_orm(...)]` we need.
//!
//! Every parsed value keeps the token it came from, so later stages can point errors at it.
//! `#[sea_orm]` is read leniently: SeaORM's own derive reports malformed input, and reporting it a
//! second time would only add noise.

use proc_macro2::{Span, TokenStream};
use syn::meta::ParseNestedMeta;
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::{Attribute, Ident, LitBool, LitStr, Token};

use crate::errors::Errors;
use crate::suggest;

/// The keys `#[ops(...)]` accepts.
const OPS_KEYS: [&str; 4] = ["name", "find_by", "list_by", "crate"];

/// What `#[ops(...)]` on the model said.
#[derive(Default)]
pub(crate) struct OpsAttrs {
    /// `name = "..."`: the repository struct's name, spanned at the string.
    pub(crate) name: Option<Ident>,
    /// `crate = "..."`: the path to `ops_sea`.
    pub(crate) krate: Option<syn::Path>,
    /// `find_by(...)` keys, in order.
    pub(crate) find_by: Vec<KeySpec>,
    /// `list_by(...)` keys, in order.
    pub(crate) list_by: Vec<KeySpec>,
}

/// One key named in `find_by` or `list_by`: a column, or `(a, b)` for a composite key.
pub(crate) struct KeySpec {
    /// The columns, as written.
    pub(crate) columns: Vec<Ident>,
    /// The whole key's span: the column, or the parentheses of a composite key.
    pub(crate) span: Span,
}

impl Parse for KeySpec {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        if input.peek(syn::token::Paren) {
            let content;
            let paren = syn::parenthesized!(content in input);
            let columns = Punctuated::<Ident, Token![,]>::parse_terminated(&content)?;
            if columns.is_empty() {
                return Err(syn::Error::new(
                    paren.span.join(),
                    "a composite key needs at least one column, e.g. `(tenant_id, name)`",
                ));
            }
            Ok(KeySpec {
                columns: columns.into_iter().collect(),
                span: paren.span.join(),
            })
        } else {
            let column: Ident = input.parse()?;
            Ok(KeySpec {
                span: column.span(),
                columns: vec![column],
            })
        }
    }
}

/// Parses every `#[ops(...)]` attribute, recording problems in `errors` and going on after each.
pub(crate) fn parse_ops(attrs: &[Attribute], errors: &mut Errors) -> OpsAttrs {
    let mut out = OpsAttrs::default();
    for attr in attrs.iter().filter(|attr| attr.path().is_ident("ops")) {
        let result = attr.parse_nested_meta(|meta| {
            let path = &meta.path;
            if path.is_ident("name") {
                let lit: LitStr = meta.value()?.parse()?;
                if out.name.is_some() {
                    errors.spanned(path, "duplicate `name`; keep one `name = \"...\"`");
                    return Ok(());
                }
                match syn::parse_str::<Ident>(&lit.value()) {
                    Ok(mut ident) => {
                        ident.set_span(lit.span());
                        out.name = Some(ident);
                    }
                    Err(_) => errors.spanned(
                        &lit,
                        format!(
                            "`{}` is not a Rust identifier; name the repository like a struct, \
                             e.g. `name = \"ConversationOps\"`",
                            lit.value()
                        ),
                    ),
                }
            } else if path.is_ident("crate") {
                let lit: LitStr = meta.value()?.parse()?;
                if out.krate.is_some() {
                    errors.spanned(path, "duplicate `crate`; keep one `crate = \"...\"`");
                    return Ok(());
                }
                match lit.parse::<syn::Path>() {
                    Ok(krate) => out.krate = Some(krate),
                    Err(_) => errors.spanned(
                        &lit,
                        format!(
                            "`{}` is not a path; give the path to ops_sea, e.g. \
                             `crate = \"::my_ops\"`",
                            lit.value()
                        ),
                    ),
                }
            } else if path.is_ident("find_by") || path.is_ident("list_by") {
                let content;
                syn::parenthesized!(content in meta.input);
                let keys = Punctuated::<KeySpec, Token![,]>::parse_terminated(&content)?;
                if keys.is_empty() {
                    errors.spanned(path, "name at least one column, e.g. `find_by(email)`");
                }
                let target = if path.is_ident("find_by") {
                    &mut out.find_by
                } else {
                    &mut out.list_by
                };
                target.extend(keys);
            } else {
                let written = path
                    .get_ident()
                    .map_or_else(|| quote::quote!(#path).to_string(), Ident::to_string);
                let hint = match suggest::closest(&written, OPS_KEYS) {
                    Some(near) => format!("did you mean `{near}`? "),
                    None => String::new(),
                };
                errors.spanned(
                    path,
                    format!(
                        "unknown ops attribute `{written}`; {hint}#[ops(...)] accepts `name`, \
                         `find_by`, `list_by` and `crate`"
                    ),
                );
                skip_value(&meta)?;
            }
            Ok(())
        });
        if let Err(err) = result {
            errors.push(err);
        }
    }
    out
}

/// What `#[sea_orm(...)]` on the struct said.
#[derive(Default)]
pub(crate) struct SeaStruct {
    /// `table_name = "..."`.
    pub(crate) table_name: Option<LitStr>,
}

/// Reads the struct-level `#[sea_orm(...)]` attributes.
pub(crate) fn parse_sea_struct(attrs: &[Attribute]) -> SeaStruct {
    let mut out = SeaStruct::default();
    for attr in attrs.iter().filter(|attr| attr.path().is_ident("sea_orm")) {
        let _ = attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("table_name") {
                out.table_name = Some(meta.value()?.parse()?);
            } else {
                skip_value(&meta)?;
            }
            Ok(())
        });
    }
    out
}

/// What `#[sea_orm(...)]` on a field said.
#[derive(Default)]
pub(crate) struct SeaField {
    pub(crate) primary_key: bool,
    pub(crate) auto_increment: Option<bool>,
    pub(crate) unique: bool,
    pub(crate) unique_key: Option<String>,
    pub(crate) column_name: Option<String>,
    pub(crate) enum_name: Option<String>,
    pub(crate) ignore: bool,
}

/// Reads a field's `#[sea_orm(...)]` attributes.
pub(crate) fn parse_sea_field(attrs: &[Attribute]) -> SeaField {
    let mut out = SeaField::default();
    for attr in attrs.iter().filter(|attr| attr.path().is_ident("sea_orm")) {
        let _ = attr.parse_nested_meta(|meta| {
            let path = &meta.path;
            if path.is_ident("primary_key") {
                out.primary_key = true;
            } else if path.is_ident("unique") {
                out.unique = true;
            } else if path.is_ident("ignore") {
                out.ignore = true;
            } else if path.is_ident("auto_increment") {
                out.auto_increment = Some(meta.value()?.parse::<LitBool>()?.value());
            } else if path.is_ident("unique_key") {
                out.unique_key = Some(meta.value()?.parse::<LitStr>()?.value());
            } else if path.is_ident("column_name") {
                out.column_name = Some(meta.value()?.parse::<LitStr>()?.value());
            } else if path.is_ident("enum_name") {
                out.enum_name = Some(meta.value()?.parse::<LitStr>()?.value());
            } else {
                skip_value(&meta)?;
            }
            Ok(())
        });
    }
    out
}

/// Consumes the value of a key we do not interpret: `= expr`, `(...)`, or nothing.
fn skip_value(meta: &ParseNestedMeta<'_>) -> syn::Result<()> {
    if meta.input.peek(Token![=]) {
        meta.value()?.parse::<syn::Expr>()?;
    } else if meta.input.peek(syn::token::Paren) {
        let content;
        syn::parenthesized!(content in meta.input);
        content.parse::<TokenStream>()?;
    }
    Ok(())
}
