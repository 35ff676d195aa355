//! `community.general.json_query` (also `json_query`, as ansible-core routes the short
//! name): a JMESPath expression evaluated over the value, with the `jmespath` crate.

use super::{add_filters, alias_filter, invalid, to_json};
use minijinja::value::Value as JValue;
use minijinja::{Environment, Error};

fn json_query(data: JValue, expr: JValue) -> Result<JValue, Error> {
    let json = to_json(&data, "json_query")?;
    let expr_text = super::py_str(&expr);
    let compiled = jmespath::compile(&expr_text)
        .map_err(|e| invalid(format!("JMESPathError in json_query filter plugin:\n{e}")))?;
    let found = compiled
        .search(&json)
        .map_err(|e| invalid(format!("JMESPathError in json_query filter plugin:\n{e}")))?;
    let value = serde_json::to_value(&*found).map_err(|e| {
        invalid(format!(
            "Error in jmespath.search in json_query filter plugin:\n{e}"
        ))
    })?;
    Ok(JValue::from_serialize(value))
}

/// Registers `community.general.json_query` and its short name.
pub(crate) fn register(env: &mut Environment<'static>) {
    add_filters(
        env,
        &[("community.general.json_query", |a| {
            let (v, o) = super::opts(a)?;
            let expr = o.req(0, "expr", "json_query")?;
            o.done("json_query", 1)?;
            json_query(v, expr)
        })],
    );
    alias_filter(
        env,
        "json_query".to_string(),
        "community.general.json_query",
    );
}

#[cfg(test)]
mod tests {
    use super::super::check::{errors, table};
    use serde_json::json;

    // Expected values: ansible-core 2.18.19 (ansible 11.13.0, with netaddr 1.3.0 and
    // jmespath 1.1.0 for the collections), each expression evaluated as
    //   init_plugin_loader(); Templar(loader=DataLoader(), variables={'nl': '\n'})
    //       .template('{{ (EXPR) | to_json }}')
    // and an error's text matched by the part of Ansible's message shown.
    #[test]
    fn json_query_matches_community_general() {
        let vars = json!({"nl": "\n"});
        table(
            &vars,
            &[
                (
                    r#"{"a":[1,2]} | community.general.json_query("a[1]")"#,
                    r#"2"#,
                ),
                (r#"{"a":[1,2]} | json_query("a")"#, r#"[1, 2]"#),
                (
                    r#"{'domain': {'server': [{'name': 'a', 'cluster': 'c1', 'port': 80}, {'name': 'b', 'cluster': 'c2', 'port': 8080}]}} | json_query("domain.server[?cluster=='c1'].port")"#,
                    r#"[80]"#,
                ),
                (
                    r#"{'domain': {'server': [{'name': 'a', 'cluster': 'c1', 'port': 80}, {'name': 'b', 'cluster': 'c2', 'port': 8080}]}} | json_query("domain.server[*].{n: name, p: port}")"#,
                    r#"[{"n": "a", "p": 80}, {"n": "b", "p": 8080}]"#,
                ),
                (
                    r#"[{'n': 'x', 'v': 2.5}, {'n': 'y', 'v': 1}] | json_query("[?v > `1`].n")"#,
                    r#"["x"]"#,
                ),
                (
                    r#"[{'n': 'x', 'v': 2.5}, {'n': 'y', 'v': 1}] | json_query("max_by(@, &v).n")"#,
                    r#""x""#,
                ),
                (
                    r#"[{'n': 'x', 'v': 2.5}, {'n': 'y', 'v': 1}] | json_query("sort_by(@, &v)[*].n")"#,
                    r#"["y", "x"]"#,
                ),
                (
                    r#"[{'n': 'x', 'v': 2.5}, {'n': 'y', 'v': 1}] | json_query("length(@)")"#,
                    r#"2"#,
                ),
                (r#"{'a': {'b': 'c'}} | json_query("a.missing")"#, r#"null"#),
                (r#"[1, 2, 3] | json_query("[?@ > `1`]")"#, r#"[2, 3]"#),
                (r#"[1, 2, 3] | json_query("avg(@)")"#, r#"2.0"#),
                (r#"['a', 'b'] | json_query("join(',', @)")"#, r#""a,b""#),
                (r#"{'a': 'x'} | json_query("contains(a, 'x')")"#, r#"true"#),
                (r#"{'a': 'x'} | json_query("keys(@)")"#, r#"["a"]"#),
                (r#"[[1, 2], [3]] | json_query("[]")"#, r#"[1, 2, 3]"#),
                (r#"{'a': 1} | json_query("to_string(a)")"#, r#""1""#),
                (
                    r#"[{'k': 'a', 'v': 1}] | json_query("[].[k, v]")"#,
                    r#"[["a", 1]]"#,
                ),
                (
                    r#"{'people': [{'first': 'James', 'age': 30}, {'first': 'Jacob', 'age': 25}]} | json_query("people[?age > `20`].first | [0]")"#,
                    r#""James""#,
                ),
                (r#"{'a': 1.0} | json_query("a")"#, r#"1.0"#),
                (r#"{'a': 10} | json_query("a")"#, r#"10"#),
            ],
        );
        errors(
            &vars,
            &[(
                r#"{'a': 1} | json_query("a[")"#,
                "JMESPathError in json_query filter plugin",
            )],
        );
    }
}
