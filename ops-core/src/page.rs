//! Pagination: what a repository's `list` takes ([`PageRequest`]) and returns ([`Page`]).
//!
//! Pages are numbered from 1. Sort columns are named by string so that a request can come straight
//! from a query string; the integration checks every name against the entity's columns and never
//! splices it into SQL, so an unknown name is a programming error, not an injection.

use std::fmt;

/// The direction of one sort key.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum SortDirection {
    /// Smallest first.
    #[default]
    Asc,
    /// Largest first.
    Desc,
}

impl SortDirection {
    /// `"asc"` or `"desc"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            SortDirection::Asc => "asc",
            SortDirection::Desc => "desc",
        }
    }
}

impl fmt::Display for SortDirection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One sort key: a column, named as in the database or as the model's field, and a direction.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Sort {
    /// The column's name, e.g. `created_at`.
    pub column: String,
    /// Ascending or descending.
    #[cfg_attr(feature = "serde", serde(default))]
    pub direction: SortDirection,
}

impl Sort {
    /// Ascending by `column`.
    pub fn asc(column: impl Into<String>) -> Self {
        Sort {
            column: column.into(),
            direction: SortDirection::Asc,
        }
    }

    /// Descending by `column`.
    pub fn desc(column: impl Into<String>) -> Self {
        Sort {
            column: column.into(),
            direction: SortDirection::Desc,
        }
    }
}

/// Which page of a listing to fetch, how large pages are, and how rows are ordered.
///
/// Rows are always ordered by the primary key after the requested sort keys, so that pages are
/// stable: a row never shows up on two pages, and none is skipped, while the table is unchanged.
///
/// ```
/// use ops_core::page::PageRequest;
///
/// let request = PageRequest::new(2, 50).desc("created_at").asc("title");
/// assert_eq!(request.offset(), Some(50));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct PageRequest {
    /// The page number, starting at 1.
    pub page: u64,
    /// The number of rows per page, at least 1.
    pub size: u64,
    /// Sort keys, most significant first; the primary key is always appended.
    #[cfg_attr(feature = "serde", serde(default))]
    pub sort: Vec<Sort>,
}

impl Default for PageRequest {
    /// The first page of [`PageRequest::DEFAULT_SIZE`] rows, in primary-key order.
    fn default() -> Self {
        PageRequest::new(1, Self::DEFAULT_SIZE)
    }
}

impl PageRequest {
    /// The page size of [`PageRequest::default`].
    pub const DEFAULT_SIZE: u64 = 20;

    /// Page `page` (1-based) of `size` rows, in primary-key order.
    pub fn new(page: u64, size: u64) -> Self {
        PageRequest {
            page,
            size,
            sort: Vec::new(),
        }
    }

    /// The first page of `size` rows.
    pub fn first(size: u64) -> Self {
        PageRequest::new(1, size)
    }

    /// Adds a sort key.
    pub fn sort(mut self, sort: Sort) -> Self {
        self.sort.push(sort);
        self
    }

    /// Adds an ascending sort key.
    pub fn asc(self, column: impl Into<String>) -> Self {
        self.sort(Sort::asc(column))
    }

    /// Adds a descending sort key.
    pub fn desc(self, column: impl Into<String>) -> Self {
        self.sort(Sort::desc(column))
    }

    /// The request for the page after this one, with the same size and sort.
    pub fn next(&self) -> Self {
        PageRequest {
            page: self.page.saturating_add(1),
            size: self.size,
            sort: self.sort.clone(),
        }
    }

    /// The number of rows before this page, or `None` when the request is invalid or the offset
    /// does not fit in a `u64`.
    pub fn offset(&self) -> Option<u64> {
        if self.size == 0 {
            return None;
        }
        self.page.checked_sub(1)?.checked_mul(self.size)
    }

    /// Checks the page number and size.
    pub fn validate(&self) -> Result<(), InvalidPageRequest> {
        if self.page == 0 {
            return Err(InvalidPageRequest(
                "page numbers start at 1; ask for page 1 to get the first page".into(),
            ));
        }
        if self.size == 0 {
            return Err(InvalidPageRequest(
                "a page size of 0 returns nothing; ask for at least 1 row per page".into(),
            ));
        }
        if self.offset().is_none() {
            return Err(InvalidPageRequest(format!(
                "page {} of {} rows is past any table's end; ask for a smaller page number",
                self.page, self.size
            )));
        }
        Ok(())
    }
}

/// Why a [`PageRequest`] cannot be served.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidPageRequest(pub String);

/// One page of a listing.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Page<T> {
    /// The rows of this page; fewer than `size` on the last page, none past the end.
    pub items: Vec<T>,
    /// The page number, starting at 1.
    pub page: u64,
    /// The requested page size.
    pub size: u64,
    /// The number of rows in the whole listing.
    pub total: u64,
}

impl<T> Page<T> {
    /// The number of pages the listing has: 0 for an empty listing.
    pub fn pages(&self) -> u64 {
        if self.size == 0 {
            0
        } else {
            self.total.div_ceil(self.size)
        }
    }

    /// Whether a page follows this one.
    pub fn has_next(&self) -> bool {
        self.page < self.pages()
    }

    /// Whether a page precedes this one.
    pub fn has_previous(&self) -> bool {
        self.page > 1
    }

    /// Whether this page holds no rows.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The same page with every item mapped, e.g. from a model to a response type.
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page {
            items: self.items.into_iter().map(f).collect(),
            page: self.page,
            size: self.size,
            total: self.total,
        }
    }
}

impl<T> IntoIterator for Page<T> {
    type Item = T;
    type IntoIter = std::vec::IntoIter<T>;

    fn into_iter(self) -> Self::IntoIter {
        self.items.into_iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_are_one_based() {
        assert_eq!(PageRequest::new(1, 10).offset(), Some(0));
        assert_eq!(PageRequest::new(3, 10).offset(), Some(20));
        assert_eq!(PageRequest::new(0, 10).offset(), None);
        assert_eq!(PageRequest::new(1, 0).offset(), None);
        assert_eq!(PageRequest::new(u64::MAX, 2).offset(), None);
    }

    #[test]
    fn validation_names_the_fix() {
        assert!(PageRequest::new(1, 1).validate().is_ok());
        let zero_page = PageRequest::new(0, 10).validate().unwrap_err();
        assert!(zero_page.0.contains("start at 1"), "{zero_page}");
        let zero_size = PageRequest::new(1, 0).validate().unwrap_err();
        assert!(zero_size.0.contains("at least 1"), "{zero_size}");
        assert!(PageRequest::new(u64::MAX, 2).validate().is_err());
    }

    #[test]
    fn builders_append_sort_keys_in_order() {
        let request = PageRequest::first(5).desc("b").asc("a");
        assert_eq!(request.sort, vec![Sort::desc("b"), Sort::asc("a")]);
        assert_eq!(request.next().page, 2);
        assert_eq!(PageRequest::default().size, PageRequest::DEFAULT_SIZE);
    }

    #[test]
    fn page_counts() {
        let page = |total, page| Page::<u8> {
            items: Vec::new(),
            page,
            size: 10,
            total,
        };
        assert_eq!(page(0, 1).pages(), 0);
        assert!(!page(0, 1).has_next());
        assert_eq!(page(10, 1).pages(), 1);
        assert_eq!(page(11, 1).pages(), 2);
        assert!(page(11, 1).has_next());
        assert!(!page(11, 2).has_next());
        assert!(page(11, 2).has_previous());
        let mapped = Page {
            items: vec![1, 2],
            page: 1,
            size: 2,
            total: 2,
        }
        .map(|x| x * 10);
        assert_eq!(mapped.items, vec![10, 20]);
    }
}
