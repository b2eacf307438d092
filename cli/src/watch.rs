//! `emu get --watch` / `--watch-only`: the table, then one line per change of the objects (or
//! the object again under -o json|yaml|jsonpath=…), as kubectl prints them (each line laid out as it comes, the columns as wide as the widest cell
//! seen so far), until Ctrl-C or until the reader goes away (a closed pipe ends it quietly).

use crate::context::{api_error, Ctx};
use crate::verbs::GetArgs;
use crate::Globals;
use anyhow::bail;
use emu_api::object;
use emu_api::selector::Selector;
use emu_api::time::now;
use emu_kubectl as printers;
use emu_proto::watch_event::Type;
use serde_json::Value;
use std::collections::HashMap;
use std::io::Write;

/// What one printed line says of an event: kubectl's `--output-watch-events` names.
fn event_name(t: Type) -> &'static str {
    match t {
        Type::Added => "ADDED",
        Type::Modified => "MODIFIED",
        Type::Deleted => "DELETED",
        Type::Reset | Type::Synced => "",
    }
}

/// Writes to stdout; a reader that went away (EPIPE) ends the watch with success, as kubectl's
/// does under `| head`.
fn emit(text: &str) -> anyhow::Result<bool> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(false),
        Err(e) => Err(e.into()),
    }
}

pub fn watch(a: &GetArgs, g: &Globals) -> anyhow::Result<i32> {
    let groups = crate::verbs::parse_targets(&a.targets)?;
    let [(rk, names)] = groups.as_slice() else {
        bail!("you may only specify a single resource type");
    };
    let output = a.output.clone().unwrap_or_default();
    let template = output.strip_prefix("jsonpath=").map(str::to_string);
    if !matches!(output.as_str(), "" | "wide" | "name" | "json" | "yaml") && template.is_none() {
        bail!("emu get --watch prints tables (-o wide), names, json, yaml and jsonpath; {output:?} is not supported with --watch");
    }
    if a.output_watch_events && (matches!(output.as_str(), "json" | "yaml") || template.is_some()) {
        bail!("emu get --watch --output-watch-events prints tables and names; -o {output} is not supported with it");
    }
    let selector = Selector::parse(a.scope.selector.as_deref().unwrap_or("")).map_err(|e| anyhow::anyhow!("{e}"))?;
    let namespace = if !rk.namespaced || a.scope.all_namespaces { String::new() } else { g.namespace_or_default() };
    let wanted = |o: &Value| {
        (namespace.is_empty() || object::namespace(o) == namespace)
            && (names.is_empty() || names.iter().any(|n| n == object::name(o)))
            && selector.matches(&object::labels(o))
    };
    let opts = printers::TableOptions {
        wide: output == "wide",
        all_namespaces: a.scope.all_namespaces && rk.namespaced,
        no_headers: true,
        show_labels: a.show_labels,
        label_columns: a.label_columns.clone(),
        kind_prefix: false,
    };
    let mut writer = printers::WatchWriter::new(6, 3);
    if a.output_watch_events {
        writer = writer.at_least(0, "MODIFIED".len() + 3);
    }
    let mut header_due = !a.no_headers;
    // Lines for objects, with the header the first time and the EVENT column when asked for.
    // Objects printed whole so far: kubectl's -o yaml puts `---` between them.
    let mut documents = 0;
    let mut lines = |event: Type, objs: &[Value]| -> anyhow::Result<String> {
        match output.as_str() {
            "name" => return Ok(objs.iter().map(|o| format!("{}\n", printers::resource_name(rk.kind, object::name(o)))).collect()),
            "json" => return Ok(objs.iter().map(printers::to_json).collect()),
            "yaml" => {
                let mut out = String::new();
                for o in objs {
                    if documents > 0 {
                        out.push_str("---\n");
                    }
                    documents += 1;
                    out.push_str(&printers::to_yaml(&printers::omit_managed_fields(o)));
                }
                return Ok(out);
            }
            _ => {}
        }
        if let Some(t) = &template {
            let mut out = String::new();
            for o in objs {
                out.push_str(&printers::jsonpath(t, o).map_err(|e| anyhow::anyhow!("{e}"))?);
            }
            return Ok(out);
        }
        let header_opts = printers::TableOptions { no_headers: !header_due, ..opts.clone() };
        let mut rows = printers::table_rows(rk.kind, objs, &header_opts, now());
        if a.output_watch_events {
            let header = header_due.then_some("EVENT");
            for (i, row) in rows.iter_mut().enumerate() {
                row.insert(0, if i == 0 { header.unwrap_or(event_name(event)) } else { event_name(event) }.to_string());
            }
        }
        header_due = false;
        Ok(writer.rows(&rows))
    };

    let sort_by = a.sort_by.as_deref().filter(|s| !s.is_empty());
    if sort_by.is_some() {
        eprintln!("warning: --watch requested, --sort-by will be ignored for watch events received");
    }
    let labels = a.scope.selector.clone().unwrap_or_default();
    let fields = a.field_selector.clone().unwrap_or_default();
    let ctx = Ctx::open(g)?;
    let mut client = ctx.client.clone();
    let listed = ctx
        .block_on(client.list(emu_proto::ListRequest {
            kind: rk.kind.into(),
            namespace: namespace.clone(),
            label_selector: labels.clone(),
            field_selector: fields.clone(),
        }))
        .map_err(|status| crate::verbs::selection_error(rk, &labels, &fields, status))?
        .into_inner();
    let mut from = listed.resource_version;
    // What each object's last printed version is: after a watch that could not resume, the full
    // list the controller sends again prints only what changed.
    let mut seen: HashMap<(String, String), String> = HashMap::new();
    let mut initial = Vec::new();
    for o in listed.items.iter().filter_map(|o| serde_json::from_str::<Value>(&o.json).ok()).filter(|o| wanted(o)) {
        seen.insert(
            (object::namespace(&o).to_string(), object::name(&o).to_string()),
            o["metadata"]["resourceVersion"].as_str().unwrap_or_default().to_string(),
        );
        initial.push(o);
    }
    // The first list is sorted as kubectl's sorting printer sorts a table (it leaves out a
    // table it cannot sort); the changes come as they come.
    let sorted = match sort_by.map(|field| printers::sort::sort_table(&mut initial, field)) {
        Some(Err(e @ printers::sort::SortError::Unsortable { .. })) => return Err(crate::verbs::fatal_sort_error(&e, 375)),
        Some(Err(_)) => false,
        _ => true,
    };
    if !a.watch_only && sorted && !initial.is_empty() && !emit(&lines(Type::Added, &initial)?)? {
        return Ok(0);
    }
    ctx.block_on(async {
        loop {
            let request = emu_proto::WatchRequest { kinds: vec![rk.kind.into()], node_name: String::new(), resource_version: from };
            let mut stream = client.watch(request).await.map_err(api_error)?.into_inner();
            while let Some(event) = stream.message().await.map_err(api_error)? {
                from = from.max(event.resource_version);
                let Ok(t) = Type::try_from(event.r#type) else { continue };
                let Some(o) = event.object.as_ref().and_then(|o| serde_json::from_str::<Value>(&o.json).ok()) else { continue };
                if !matches!(t, Type::Added | Type::Modified | Type::Deleted) || !wanted(&o) {
                    continue;
                }
                let key = (object::namespace(&o).to_string(), object::name(&o).to_string());
                // With a field selector, the server says whether the object matches now (the
                // selectable fields and their values are its to define). As kube-apiserver's
                // filtered watch, an object that starts matching is ADDED, one that stops is
                // DELETED, and one that never matched is not told.
                let t = if fields.is_empty() || t == Type::Deleted {
                    t
                } else {
                    let this = format!("{fields},metadata.name={}", key.1);
                    let request = emu_proto::ListRequest {
                        kind: rk.kind.into(),
                        namespace: key.0.clone(),
                        label_selector: String::new(),
                        field_selector: this,
                    };
                    let matches = !client.list(request).await.map_err(api_error)?.into_inner().items.is_empty();
                    match (matches, seen.contains_key(&key)) {
                        (true, false) => Type::Added,
                        (true, true) => t,
                        (false, true) => Type::Deleted,
                        (false, false) => continue,
                    }
                };
                if t == Type::Deleted && !fields.is_empty() && !seen.contains_key(&key) {
                    continue;
                }
                let rv = o["metadata"]["resourceVersion"].as_str().unwrap_or_default().to_string();
                if t == Type::Deleted {
                    seen.remove(&key);
                } else if seen.insert(key, rv.clone()).as_deref() == Some(rv.as_str()) {
                    continue;
                }
                if !emit(&lines(t, &[o])?)? {
                    return Ok(0);
                }
            }
            // The controller ended the stream (a restart): watch again from the last version seen.
        }
    })
}
