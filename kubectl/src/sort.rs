//! `kubectl get --sort-by=FIELD`: kubectl's `RuntimeSort` (objects for `-o name|json|yaml|…`)
//! and `TableSorter` (the rows of one table), with its ordering: integers and floats by value,
//! strings byte by byte (`p-10` before `p-2`, as kubectl 1.32 orders them) unless both parse
//! as quantities (`100m` before `9` before `10`), a missing field first; maps, lists and
//! booleans cannot be sorted.
//! Pure: the CLI lists the objects and prints them in the order this returns.

use crate::jsonpath::Template;
use serde_json::Value;
use std::cmp::Ordering;

/// Why kubectl refuses a sort, in its words (the CLI prefixes `error: `, but for
/// [`SortError::Unsortable`], which kubectl reports as a fatal log line).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SortError {
    /// `RelaxedJSONPathExpression` refused the field.
    #[error("unexpected path string, expected a 'name1.name2' or '.name1.name2' or '{{name1.name2}}' or '{{.name1.name2}}'")]
    Path,
    /// The JSONPath parser refused the field.
    #[error("sorting error: {0}")]
    Parse(String),
    /// No object has the field.
    #[error("couldn't find any field with path {0:?} in the list of objects")]
    NotFound(String),
    /// Values that cannot be compared (kubectl's `klog.Exitf`).
    #[error("Field {field} in {container} is an unsortable type: interface, err: {reason}")]
    Unsortable { field: String, container: &'static str, reason: String },
}

/// kubectl's `RelaxedJSONPathExpression`: `a.b`, `.a.b`, `{a.b}` and `{.a.b}` all mean `{.a.b}`.
pub fn relaxed_field(sort_by: &str) -> Result<String, SortError> {
    if sort_by.is_empty() {
        return Ok(String::new());
    }
    // ^\{\.?([^{}]+)\}$|^\.?([^{}]+)$
    let inner = match sort_by.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
        Some(braced) => braced.strip_prefix('.').unwrap_or(braced),
        None => sort_by.strip_prefix('.').unwrap_or(sort_by),
    };
    if inner.is_empty() || inner.contains(['{', '}']) {
        return Err(SortError::Path);
    }
    Ok(format!("{{.{inner}}}"))
}

/// `SortObjects`: the objects `-o name|json|yaml|jsonpath|custom-columns` print, sorted by
/// `sort_by`; at least one of them must have the field.
pub fn sort_objects(objects: &mut Vec<Value>, sort_by: &str) -> Result<(), SortError> {
    if objects.is_empty() {
        return Ok(());
    }
    let field = relaxed_field(sort_by)?;
    let template = Template::parse(&field).map_err(SortError::Parse)?;
    sort_by_field(objects, &template, &field, "*unstructured.Unstructured")
}

/// `TableSorter`: the rows of one kind's table (given as their objects), sorted when there
/// are two or more. A field kubectl cannot parse (it then tries the text as given) is a
/// [`SortError::Parse`].
pub fn sort_table(objects: &mut Vec<Value>, sort_by: &str) -> Result<(), SortError> {
    if objects.len() < 2 {
        return Ok(());
    }
    let field = relaxed_field(sort_by).unwrap_or_else(|_| sort_by.to_string());
    let template = Template::parse(&field).map_err(SortError::Parse)?;
    sort_by_field(objects, &template, &field, "[][][]reflect.Value")
}

fn sort_by_field(objects: &mut Vec<Value>, template: &Template, field: &str, container: &'static str) -> Result<(), SortError> {
    let keys = objects
        .iter()
        .map(|o| template.first_values(o).map(|v| v.into_iter().next()))
        .collect::<Result<Vec<Option<Value>>, String>>()
        .map_err(SortError::Parse)?;
    if keys.iter().all(Option::is_none) {
        return Err(SortError::NotFound(field.to_string()));
    }
    // The order is decided on positions, so that a failed sort leaves the objects as they were.
    let mut order: Vec<usize> = (0..objects.len()).collect();
    let less = |a: &usize, b: &usize| -> Result<bool, String> {
        match (&keys[*a], &keys[*b]) {
            (None, _) => Ok(true),
            (_, None) => Ok(false),
            (Some(a), Some(b)) => is_less(a, b),
        }
    };
    go_sort(&mut order, less).map_err(|reason| SortError::Unsortable { field: field.to_string(), container, reason })?;
    let mut slots: Vec<Option<Value>> = std::mem::take(objects).into_iter().map(Some).collect();
    *objects = order.into_iter().filter_map(|i| slots[i].take()).collect();
    Ok(())
}

/// Go's `sort.Sort` as far as its order can be seen: an insertion sort up to 12 elements (what
/// pdqsort does with so few, so that ties and missing fields land where kubectl puts them), a
/// stable sort by the same `less` beyond.
fn go_sort<T>(items: &mut [T], less: impl Fn(&T, &T) -> Result<bool, String>) -> Result<(), String> {
    if items.len() <= 12 {
        for i in 1..items.len() {
            let mut j = i;
            while j > 0 && less(&items[j], &items[j - 1])? {
                items.swap(j, j - 1);
                j -= 1;
            }
        }
        return Ok(());
    }
    let mut failure = None;
    items.sort_by(|a, b| {
        let mut order = |x: &T, y: &T| match less(x, y) {
            Ok(l) => l,
            Err(e) => {
                failure.get_or_insert(e);
                false
            }
        };
        if order(a, b) {
            Ordering::Less
        } else if order(b, a) {
            Ordering::Greater
        } else {
            Ordering::Equal
        }
    });
    failure.map_or(Ok(()), Err)
}

/// kubectl's `isLess` on two decoded JSON values (Go's `interface{}`).
fn is_less(a: &Value, b: &Value) -> Result<bool, String> {
    match (a, b) {
        (Value::Null, Value::Null) => Ok(false),
        (Value::Null, _) => Ok(true),
        (_, Value::Null) => Ok(false),
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(x), Some(y)) => Ok(x < y),
            _ if x.is_f64() && y.is_f64() => Ok(x.as_f64() < y.as_f64()),
            _ => Err("unsortable interface: interface".into()),
        },
        (Value::String(x), Value::String(y)) => match (quantity(x), quantity(y)) {
            (Some(qx), Some(qy)) => Ok(qx < qy),
            _ => Ok(x < y),
        },
        (Value::Number(_) | Value::String(_), _) => Err("unsortable interface: interface".into()),
        (Value::Bool(_), _) => Err("unsortable type: bool".into()),
        (Value::Object(_), _) => Err("unsortable type: map[string]interface {}".into()),
        (Value::Array(_), _) => Err("unsortable type: []interface {}".into()),
    }
}

/// `resource.ParseQuantity`'s value of `text` (`100m`, `1Gi`, `2e3`, `5`), or None when it is
/// not a quantity. A float is precise enough to order them.
fn quantity(text: &str) -> Option<f64> {
    let body = text.strip_prefix(['+', '-']).unwrap_or(text);
    let number_len = body.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(body.len());
    let (number, suffix) = body.split_at(number_len);
    if !number.bytes().any(|b| b.is_ascii_digit()) || number.matches('.').count() > 1 {
        return None;
    }
    let value: f64 = number.parse().ok()?;
    let scale = match suffix {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024f64,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        e => {
            let exponent = e.strip_prefix(['e', 'E'])?;
            let digits = exponent.strip_prefix(['+', '-']).unwrap_or(exponent);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            10f64.powi(exponent.parse().ok()?)
        }
    };
    let sign = if text.starts_with('-') { -1.0 } else { 1.0 };
    Some(sign * value * scale)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn names(objects: &[Value]) -> Vec<&str> {
        objects.iter().map(|o| o["metadata"]["name"].as_str().unwrap_or("")).collect()
    }

    fn pod(name: &str, extra: Value) -> Value {
        let mut p = json!({"metadata": {"name": name}});
        if let (Some(p), Some(extra)) = (p.as_object_mut(), extra.as_object()) {
            p.extend(extra.clone());
        }
        p
    }

    #[test]
    fn fields_are_relaxed_as_kubectl_relaxes_them() {
        for given in [".metadata.name", "metadata.name", "{.metadata.name}", "{metadata.name}"] {
            assert_eq!(relaxed_field(given).unwrap(), "{.metadata.name}", "{given}");
        }
        assert_eq!(relaxed_field("{.metadata.name").unwrap_err(), SortError::Path);
        assert_eq!(
            SortError::Path.to_string(),
            "unexpected path string, expected a 'name1.name2' or '.name1.name2' or '{name1.name2}' or '{.name1.name2}'"
        );
    }

    #[test]
    fn strings_sort_byte_by_byte_and_quantities_by_value() {
        let mut objs = vec![pod("a", json!({"q": "a9"})), pod("b", json!({"q": "A1"})), pod("c", json!({"q": "a10"}))];
        sort_objects(&mut objs, ".q").unwrap();
        assert_eq!(names(&objs), ["b", "c", "a"]);
        assert_eq!(quantity("100m"), Some(0.1));
        assert_eq!(quantity("1Gi"), Some(1024f64.powi(3)));
        assert_eq!(quantity("2e3"), Some(2000.0));
        for not in ["10.244.0.2", "Running", "2026-12-07T19:13:00Z", "", ".", "1K", "e5"] {
            assert_eq!(quantity(not), None, "{not}");
        }
        let mut objs = vec![pod("a", json!({"q": "1"})), pod("b", json!({"q": "100m"})), pod("c", json!({"q": "2Ki"}))];
        sort_objects(&mut objs, ".q").unwrap();
        assert_eq!(names(&objs), ["b", "a", "c"]);
    }

    #[test]
    fn objects_sort_by_numbers_times_and_names_missing_ones_first() {
        let mut objs = vec![
            pod("web-10", json!({"status": {"podIP": "10.244.0.10"}, "n": 3})),
            pod("web-2", json!({"status": {"podIP": "10.244.1.2"}, "n": 20})),
            pod("web-1", json!({"n": 1})),
        ];
        sort_objects(&mut objs, ".metadata.name").unwrap();
        assert_eq!(names(&objs), ["web-1", "web-10", "web-2"]);
        sort_objects(&mut objs, "{.n}").unwrap();
        assert_eq!(names(&objs), ["web-1", "web-10", "web-2"]);
        sort_objects(&mut objs, ".status.podIP").unwrap();
        assert_eq!(names(&objs), ["web-1", "web-10", "web-2"]);
        let err = sort_objects(&mut objs, ".foo.bar").unwrap_err();
        assert_eq!(err.to_string(), "couldn't find any field with path \"{.foo.bar}\" in the list of objects");
        let err = sort_objects(&mut objs, ".metadata").unwrap_err();
        assert_eq!(
            err.to_string(),
            "Field {.metadata} in *unstructured.Unstructured is an unsortable type: interface, err: unsortable type: map[string]interface {}"
        );
        // One row of a table is not sorted, so nothing can be wrong with its field.
        let mut one = vec![pod("x", json!({}))];
        sort_table(&mut one, ".foo").unwrap();
        assert_eq!(sort_table(&mut objs, "{.metadata.name"), Err(SortError::Parse("unclosed action".into())));
    }

    #[test]
    fn larger_lists_sort_the_same_way() {
        let mut objs: Vec<Value> = (0..30).rev().map(|i| pod(&format!("p-{i:02}"), json!({}))).collect();
        sort_objects(&mut objs, ".metadata.name").unwrap();
        let expected: Vec<String> = (0..30).map(|i| format!("p-{i:02}")).collect();
        assert_eq!(names(&objs), expected);
    }
}
